package memberconn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options bound the probing of one member.
type Options struct {
	// Interval between two probes.
	Interval time.Duration
	// Timeout of each request to the member, connecting included.
	Timeout time.Duration
	// QPS and Burst of the member client. client-go's defaults (5/10) would throttle the work
	// engine; the member apiserver's priority and fairness is the real limit.
	QPS   float32
	Burst int
}

// InvalidKubeconfigError says that a kubeconfig cannot be used; retrying will not help.
type InvalidKubeconfigError struct{ Err error }

func (e *InvalidKubeconfigError) Error() string { return "invalid kubeconfig: " + e.Err.Error() }
func (e *InvalidKubeconfigError) Unwrap() error { return e.Err }

// IsInvalidKubeconfig tells whether err says that a kubeconfig cannot be used.
func IsInvalidKubeconfig(err error) bool {
	var target *InvalidKubeconfigError
	return errors.As(err, &target)
}

// RESTConfigFromKubeconfig parses a kubeconfig into a REST config that uses its current context.
func RESTConfigFromKubeconfig(kubeconfig []byte) (*rest.Config, error) {
	if len(kubeconfig) == 0 {
		return nil, &InvalidKubeconfigError{Err: errors.New("the kubeconfig is empty")}
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, &InvalidKubeconfigError{Err: err}
	}
	if cfg.Host == "" {
		return nil, &InvalidKubeconfigError{Err: errors.New("the current context names no cluster server")}
	}
	return cfg, nil
}

// Registry holds the connection and latest Health of every member the hub knows.
type Registry struct {
	notify func(member string)
	prober Prober

	mu      sync.Mutex
	members map[string]*member
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type member struct {
	fingerprint string
	config      *rest.Config
	cancel      context.CancelFunc
	done        chan struct{}
	health      Health
}

// NewRegistry returns a Registry that calls notify (from a prober goroutine; it must not block
// for long) whenever a member's Health changes other than in its probe time.
func NewRegistry(notify func(member string)) *Registry {
	ctx, cancel := context.WithCancel(context.Background())
	return &Registry{
		notify:  notify,
		prober:  probe,
		members: map[string]*member{},
		ctx:     ctx,
		cancel:  cancel,
	}
}

// Start blocks until ctx ends, then stops every prober; it makes the Registry a manager Runnable.
func (r *Registry) Start(ctx context.Context) error {
	<-ctx.Done()
	r.Stop()
	return nil
}

// Stop ends every prober and waits for them.
func (r *Registry) Stop() {
	r.cancel()
	r.wg.Wait()
}

// Ensure connects to a member with the given kubeconfig, or keeps the existing connection when
// neither the kubeconfig nor the options changed. A changed kubeconfig replaces the connection and
// its probe starts again. An unusable kubeconfig returns an InvalidKubeconfigError and removes any
// previous connection, so that nothing keeps talking with credentials the user replaced.
func (r *Registry) Ensure(name string, kubeconfig []byte, opts Options) (changed bool, err error) {
	fp := fingerprint(kubeconfig, opts)
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.members[name]; ok && m.fingerprint == fp {
		return false, nil
	}
	cfg, err := RESTConfigFromKubeconfig(kubeconfig)
	if err != nil {
		r.removeLocked(name)
		return true, err
	}
	cfg.Timeout = opts.Timeout
	cfg.QPS = opts.QPS
	cfg.Burst = opts.Burst
	cfg.UserAgent = "meridian-manager"
	r.removeLocked(name)
	if r.ctx.Err() != nil {
		return false, errors.New("the member registry is stopped")
	}
	ctx, cancel := context.WithCancel(r.ctx)
	m := &member{
		fingerprint: fp,
		config:      cfg,
		cancel:      cancel,
		done:        make(chan struct{}),
		health:      Health{Reason: ReasonPending, Message: "The member has not been probed yet."},
	}
	r.members[name] = m
	r.wg.Add(1)
	go r.run(ctx, name, m, opts)
	return true, nil
}

// Remove disconnects a member and stops its prober.
func (r *Registry) Remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(name)
}

func (r *Registry) removeLocked(name string) {
	m, ok := r.members[name]
	if !ok {
		return
	}
	m.cancel()
	delete(r.members, name)
	forgetMember(name)
}

// Health returns the latest Health of a member, and false when the member is not connected.
func (r *Registry) Health(name string) (Health, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[name]
	if !ok {
		return Health{}, false
	}
	return m.health, true
}

// Fingerprint identifies the member's current connection; it changes when the connection is
// replaced (a new kubeconfig or new options).
func (r *Registry) Fingerprint(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[name]
	if !ok {
		return "", false
	}
	return m.fingerprint, true
}

// RESTConfig returns a copy of the REST config the hub uses for a member.
func (r *Registry) RESTConfig(name string) (*rest.Config, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[name]
	if !ok {
		return nil, false
	}
	return rest.CopyConfig(m.config), true
}

func (r *Registry) run(ctx context.Context, name string, m *member, opts Options) {
	defer r.wg.Done()
	defer close(m.done)
	client, err := newProbeClient(m.config)
	if err != nil {
		r.record(ctx, name, m, Health{Reason: ReasonInvalidKubeconfig, Message: err.Error(), ProbeTime: time.Now()})
		return
	}
	ticker := time.NewTicker(opts.Interval)
	defer ticker.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		h := r.prober(pctx, client)
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.record(ctx, name, m, h)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (r *Registry) record(ctx context.Context, name string, m *member, h Health) {
	r.mu.Lock()
	if r.members[name] != m || ctx.Err() != nil {
		r.mu.Unlock()
		return
	}
	changed := !m.health.SameResult(h)
	m.health = h
	r.mu.Unlock()
	observeProbe(name, h)
	if changed && r.notify != nil {
		r.notify(name)
	}
}

func fingerprint(kubeconfig []byte, opts Options) string {
	h := sha256.New()
	h.Write(kubeconfig)
	fmt.Fprintf(h, "|%s|%s|%g|%d", opts.Interval, opts.Timeout, opts.QPS, opts.Burst)
	return hex.EncodeToString(h.Sum(nil))
}
