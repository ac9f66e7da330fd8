package testbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/membercache"
)

// Manager is Meridian's manager running in the test process against the bed's hub.
type Manager struct {
	ctrl.Manager
	Members *membercache.Cache
	cancel  context.CancelFunc
	done    chan error
}

// StartManager runs the manager with every controller (and, when the bed serves webhooks, the
// webhooks) against the hub, and waits until its webhook server answers.
func (b *Bed) StartManager(opts controllers.Options) (*Manager, error) {
	return b.StartManagerServingMetrics(opts, "0")
}

// StartManagerServingMetrics is StartManager with the metrics endpoint on metricsAddr (plain
// HTTP, /metrics), as the manager binary serves it; "0" turns it off.
func (b *Bed) StartManagerServingMetrics(opts controllers.Options, metricsAddr string) (*Manager, error) {
	opts.EnableWebhooks = b.Hub.Webhook != nil
	mgrOpts := ctrl.Options{
		Scheme:  b.Hub.Client.Scheme(),
		Cache:   controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: metricsAddr},
	}
	if w := b.Hub.Webhook; w != nil {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: w.Host, Port: w.Port, CertDir: w.CertDir})
	}
	mgr, err := ctrl.NewManager(b.Hub.Config, mgrOpts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	members, err := controllers.Setup(ctx, mgr, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	m := &Manager{Manager: mgr, Members: members, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- mgr.Start(ctx) }()
	if opts.EnableWebhooks {
		// The webhook server answers its started check once it listens; a manager that failed to
		// start ends the wait at once.
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			select {
			case err := <-m.done:
				m.done <- err // for Stop
				return false, fmt.Errorf("the manager stopped before its webhook server started: %w", err)
			default:
			}
			return mgr.GetWebhookServer().StartedChecker()(nil) == nil, nil
		})
		if err != nil {
			m.Stop()
			if wait.Interrupted(err) {
				err = errors.New("the manager's webhook server did not start within 30s")
			}
			return nil, err
		}
	}
	return m, nil
}

// Stop stops the manager and waits for it, at most 30s.
func (m *Manager) Stop() error {
	m.cancel()
	select {
	case err := <-m.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the manager did not stop within 30s")
	}
}
