package membercache

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
	ctrl "sigs.k8s.io/controller-runtime"
)

// DefaultFailureThreshold is how many probes in a row must fail before a member that answered is
// called unreachable.
const DefaultFailureThreshold = 3

// Options bound the clients and the probing of one member.
type Options struct {
	// Interval between two probes.
	Interval time.Duration
	// Timeout of each request to the member, connecting included (watches excepted).
	Timeout time.Duration
	// QPS and Burst of all the member's clients together; QPS < 0 means no client-side limit
	// (the member apiserver's priority and fairness is then the real limit).
	QPS   float32
	Burst int
	// FailureThreshold is how many probes in a row must fail before a reachable member is called
	// unreachable; below 1 means DefaultFailureThreshold. A member that never answered, or is
	// already unreachable, reports each failure at once.
	FailureThreshold int
}

func (o Options) threshold() int {
	if o.FailureThreshold < 1 {
		return DefaultFailureThreshold
	}
	return o.FailureThreshold
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

// Subscriber is told about members' connections. The Cache calls it from one goroutine per
// change and in order per member: Connected, then any number of HealthChanged, then Disconnected;
// a new Connected only after the Disconnected of the previous connection. Calls must return
// quickly (queue work, start goroutines owned by the member's Context); they must not call back
// into the Cache's Ensure or Remove.
type Subscriber interface {
	// MemberConnected hands over a member's new clients. They serve until its Context ends.
	MemberConnected(m *Member)
	// MemberHealthChanged says that a member's health changed other than in its probe time.
	MemberHealthChanged(name string, h Health)
	// MemberDisconnected says that a member's clients are gone: the member's Context has ended,
	// and nothing may use the clients of that connection any more.
	MemberDisconnected(name string)
}

// Funcs is a Subscriber made of functions; nil ones are skipped.
type Funcs struct {
	Connected     func(m *Member)
	HealthChanged func(name string, h Health)
	Disconnected  func(name string)
}

func (f Funcs) MemberConnected(m *Member) {
	if f.Connected != nil {
		f.Connected(m)
	}
}

func (f Funcs) MemberHealthChanged(name string, h Health) {
	if f.HealthChanged != nil {
		f.HealthChanged(name, h)
	}
}

func (f Funcs) MemberDisconnected(name string) {
	if f.Disconnected != nil {
		f.Disconnected(name)
	}
}

// Cache holds the connection and latest Health of every member the hub knows.
type Cache struct {
	prober Prober

	// ops serialises connects, disconnects and the notices they send, so that subscribers see
	// every member's notices in order.
	ops         sync.Mutex
	subscribers []Subscriber

	mu      sync.Mutex
	members map[string]*entry
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type entry struct {
	member   *Member
	opts     Options
	cancel   context.CancelFunc
	health   Health
	failures int
}

// New returns an empty Cache; MemberCluster reconciliation adds members with Ensure.
func New() *Cache {
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{prober: probe, members: map[string]*entry{}, ctx: ctx, cancel: cancel}
}

// Subscribe adds a subscriber. Members already connected are announced to it at once.
func (c *Cache) Subscribe(s Subscriber) {
	c.ops.Lock()
	defer c.ops.Unlock()
	c.subscribers = append(c.subscribers, s)
	c.mu.Lock()
	var current []*entry
	for _, e := range c.members {
		current = append(current, e)
	}
	c.mu.Unlock()
	for _, e := range current {
		s.MemberConnected(e.member)
		if h := c.healthOf(e); !h.ProbeTime.IsZero() {
			s.MemberHealthChanged(e.member.Name, h)
		}
	}
}

func (c *Cache) healthOf(e *entry) Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return e.health
}

// Start blocks until ctx ends, then stops; it makes the Cache a manager Runnable.
func (c *Cache) Start(ctx context.Context) error {
	<-ctx.Done()
	c.Stop()
	return nil
}

// Stop disconnects every member, telling the subscribers, and waits for the probers.
func (c *Cache) Stop() {
	c.ops.Lock()
	c.mu.Lock()
	c.cancel()
	names := make([]string, 0, len(c.members))
	for n := range c.members {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, n := range names {
		c.disconnectLocked(n)
	}
	c.ops.Unlock()
	c.wg.Wait()
}

// Ensure connects to a member with the given kubeconfig, or keeps the existing connection when
// neither the kubeconfig nor the options changed. A changed kubeconfig replaces the connection:
// the subscribers are told Disconnected, then Connected with the new clients, and the probe
// starts again. An unusable kubeconfig returns an InvalidKubeconfigError and disconnects the
// member, so that nothing keeps talking with credentials the user replaced.
func (c *Cache) Ensure(name string, kubeconfig []byte, opts Options) (changed bool, err error) {
	fp := fingerprint(kubeconfig, opts)
	c.ops.Lock()
	defer c.ops.Unlock()
	c.mu.Lock()
	old, ok := c.members[name]
	stopped := c.ctx.Err() != nil
	c.mu.Unlock()
	if ok && old.member.Fingerprint == fp {
		return false, nil
	}
	if stopped {
		return false, errors.New("the member cache is stopped")
	}
	cfg, err := RESTConfigFromKubeconfig(kubeconfig)
	if err == nil {
		cfg.Timeout = opts.Timeout
		cfg.QPS = opts.QPS
		cfg.Burst = opts.Burst
		cfg.UserAgent = "meridian-manager"
	}
	ctx, cancel := context.WithCancel(c.ctx)
	var m *Member
	if err == nil {
		m, err = newMember(ctx, name, fp, cfg)
	}
	c.disconnectLocked(name)
	if err != nil {
		cancel()
		return true, err
	}
	e := &entry{member: m, opts: opts, cancel: cancel,
		health: Health{Reason: ReasonPending, Message: "The member has not been probed yet."}}
	c.mu.Lock()
	c.members[name] = e
	c.mu.Unlock()
	for _, s := range c.subscribers {
		s.MemberConnected(m)
	}
	c.wg.Add(1)
	go c.run(ctx, e)
	return true, nil
}

// Remove disconnects a member, telling the subscribers, and stops its prober.
func (c *Cache) Remove(name string) {
	c.ops.Lock()
	defer c.ops.Unlock()
	c.disconnectLocked(name)
}

// disconnectLocked ends a member's connection; c.ops must be held.
func (c *Cache) disconnectLocked(name string) {
	c.mu.Lock()
	e, ok := c.members[name]
	delete(c.members, name)
	c.mu.Unlock()
	if !ok {
		return
	}
	e.cancel()
	e.member.closeIdle()
	forgetMember(name)
	for _, s := range c.subscribers {
		s.MemberDisconnected(name)
	}
}

// Health returns the latest Health of a member, and false when the member is not connected.
func (c *Cache) Health(name string) (Health, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.members[name]
	if !ok {
		return Health{}, false
	}
	return e.health, true
}

// Verified says whether the member's current connection uses this kubeconfig and its latest
// probe, made with it, succeeded: the credentials are known to work, not just believed to.
func (c *Cache) Verified(name string, kubeconfig []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.members[name]
	return ok && e.member.Fingerprint == fingerprint(kubeconfig, e.opts) && e.health.Reachable && !e.health.ProbeTime.IsZero()
}

// Member returns the member's current connection, or nil when it is not connected.
func (c *Cache) Member(name string) *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.members[name]; ok {
		return e.member
	}
	return nil
}

func (c *Cache) run(ctx context.Context, e *entry) {
	defer c.wg.Done()
	ticker := time.NewTicker(e.opts.Interval)
	defer ticker.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
		h := c.prober(pctx, e.member.Kubernetes)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.record(ctx, e, h)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// record keeps a probe's result, applying the failure threshold, and tells the subscribers when
// the member's health changed.
func (c *Cache) record(ctx context.Context, e *entry, h Health) {
	c.ops.Lock()
	defer c.ops.Unlock()
	c.mu.Lock()
	if c.members[e.member.Name] != e || ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	if h.Reachable {
		e.failures = 0
	} else {
		e.failures++
		if e.health.Reachable && e.failures < e.opts.threshold() {
			// A blip: the member answered before; it stays reachable until the threshold.
			c.mu.Unlock()
			ctrl.Log.WithName("membercache").V(1).Info("Probe of member failed, below the failure threshold",
				"member", e.member.Name, "failures", e.failures, "threshold", e.opts.threshold(), "reason", h.Reason)
			observeProbe(e.member.Name, Health{Reachable: true, Reason: h.Reason, Duration: h.Duration,
				NodesTotal: e.health.NodesTotal, NodesReady: e.health.NodesReady})
			return
		}
	}
	changed := !e.health.SameResult(h)
	wasReachable := e.health.Reachable
	e.health = h
	c.mu.Unlock()
	observeProbe(e.member.Name, h)
	if !changed {
		return
	}
	if wasReachable != h.Reachable {
		ctrl.Log.WithName("membercache").Info("Member reachability changed", "member", e.member.Name,
			"reachable", h.Reachable, "reason", h.Reason)
	}
	for _, s := range c.subscribers {
		s.MemberHealthChanged(e.member.Name, h)
	}
}

func fingerprint(kubeconfig []byte, opts Options) string {
	h := sha256.New()
	h.Write(kubeconfig)
	fmt.Fprintf(h, "|%s|%s|%g|%d|%d", opts.Interval, opts.Timeout, opts.QPS, opts.Burst, opts.threshold())
	return hex.EncodeToString(h.Sum(nil))
}
