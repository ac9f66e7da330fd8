package testbed

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
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
// webhooks) against the hub, and waits until it is ready as its readiness probe says: /readyz on
// loopback answers 200 (its webhook server listens and the default Tiers exist on the hub).
func (b *Bed) StartManager(opts controllers.Options) (*Manager, error) {
	return b.StartManagerServingMetrics(opts, "0")
}

// StartManagerServingMetrics is StartManager with the metrics endpoint on metricsAddr (plain
// HTTP, /metrics), as the manager binary serves it; "0" turns it off.
func (b *Bed) StartManagerServingMetrics(opts controllers.Options, metricsAddr string) (*Manager, error) {
	opts.EnableWebhooks = b.Hub.Webhook != nil
	probeAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	mgrOpts := ctrl.Options{
		Scheme:                 b.Hub.Client.Scheme(),
		Cache:                  controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
	}
	if w := b.Hub.Webhook; w != nil {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: w.Host, Port: w.Port, CertDir: w.CertDir})
	}
	mgr, err := ctrl.NewManager(b.Hub.Config, mgrOpts)
	if err != nil {
		return nil, err
	}
	// The manager binary's checks (cmd/manager): the webhook server listens, and Meridian's own.
	if opts.EnableWebhooks {
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return nil, err
		}
	}
	if err := controllers.AddReadinessChecks(mgr); err != nil {
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
	if err := m.waitReady(ctx, probeAddr); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// waitReady polls the manager's /readyz until it answers 200; a manager that stopped ends the
// wait at once.
func (m *Manager) waitReady(ctx context.Context, probeAddr string) error {
	url := "http://" + probeAddr + "/readyz"
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-m.done:
			m.done <- err // for Stop
			return false, fmt.Errorf("the manager stopped before it was ready: %w", err)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"?verbose", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		last = string(body)
		return resp.StatusCode == http.StatusOK, nil
	})
	if wait.Interrupted(err) {
		return fmt.Errorf("the manager was not ready within 60s; its /readyz said: %s", last)
	}
	return err
}

// freeLoopbackAddr is a loopback address with a port that nothing listens on now.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
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
