package membercache

import (
	"context"
	"slices"
	"sync"

	"k8s.io/client-go/tools/cache"
)

// PerMemberFuncs say what a PerMember keeps for each member.
type PerMemberFuncs[T any] struct {
	// New makes a member's value on its new connection: its informers made and their handlers
	// added, nothing started yet. ctx ends when the connection does, when the member
	// disconnects or is connected again (new credentials), or when the PerMember stops.
	New func(ctx context.Context, m *Member) T
	// Run starts the value's informers (see RunInformers). It is called once the value is what
	// Get returns, so that a handler the informers wake finds it.
	Run func(ctx context.Context, v T)
	// Gone, when set, is told that a member's value was dropped (the member disconnected). It is
	// called on its own goroutine, never holding up the member cache, and not after Stop.
	Gone func(name string)
}

// PerMember is a Subscriber that keeps one value per connected member, typically the member's
// informers: made and started on MemberConnected, cancelled and forgotten on MemberDisconnected
// (a change of credentials is a disconnect followed by a connect: the old value's context ends
// before the new one is made). It is also a manager Runnable: Start stops every member's value
// when the manager stops. The policy inventory, the agent aggregator and service discovery's
// inventory are built on it.
type PerMember[T any] struct {
	funcs PerMemberFuncs[T]

	mu      sync.RWMutex
	stopped bool
	members map[string]*perMemberEntry[T]
	// gone are the goroutines telling Gone.
	gone sync.WaitGroup
}

type perMemberEntry[T any] struct {
	value  T
	cancel context.CancelFunc
}

var _ Subscriber = (*PerMember[int])(nil)

// NewPerMember returns an empty PerMember; subscribe it to the Cache.
func NewPerMember[T any](f PerMemberFuncs[T]) *PerMember[T] {
	return &PerMember[T]{funcs: f, members: map[string]*perMemberEntry[T]{}}
}

// MemberConnected makes and starts the member's value, replacing (and cancelling) any older one.
func (p *PerMember[T]) MemberConnected(m *Member) {
	ctx, cancel := context.WithCancel(m.Context())
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		cancel()
		return
	}
	if old := p.members[m.Name]; old != nil {
		old.cancel()
	}
	e := &perMemberEntry[T]{value: p.funcs.New(ctx, m), cancel: cancel}
	p.members[m.Name] = e
	p.mu.Unlock()
	if p.funcs.Run != nil {
		p.funcs.Run(ctx, e.value)
	}
}

// MemberHealthChanged does nothing: informers reconnect by themselves.
func (p *PerMember[T]) MemberHealthChanged(string, Health) {}

// MemberDisconnected cancels the member's value and forgets it, then tells Gone.
func (p *PerMember[T]) MemberDisconnected(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.members[name]
	if e == nil {
		return
	}
	e.cancel()
	delete(p.members, name)
	if p.stopped || p.funcs.Gone == nil {
		return
	}
	p.gone.Add(1)
	go func() {
		defer p.gone.Done()
		p.funcs.Gone(name)
	}()
}

// Get returns the member's value while it is connected.
func (p *PerMember[T]) Get(name string) (T, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	e := p.members[name]
	if e == nil {
		var zero T
		return zero, false
	}
	return e.value, true
}

// Names lists the connected members, sorted.
func (p *PerMember[T]) Names() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.members))
	for n := range p.members {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Stop cancels every member's value, makes later connections do nothing, and waits for the Gone
// notices under way.
func (p *PerMember[T]) Stop() {
	p.mu.Lock()
	p.stopped = true
	for name, e := range p.members {
		e.cancel()
		delete(p.members, name)
	}
	p.mu.Unlock()
	p.gone.Wait()
}

// Start blocks until ctx ends, then stops; it makes a PerMember a manager Runnable.
func (p *PerMember[T]) Start(ctx context.Context) error {
	<-ctx.Done()
	p.Stop()
	return nil
}

// RunInformers runs the informers until ctx ends and calls synced (when set) once all of them
// have synced; it returns at once.
func RunInformers(ctx context.Context, synced func(), informers ...cache.SharedIndexInformer) {
	waits := make([]cache.InformerSynced, len(informers))
	for i, inf := range informers {
		go inf.RunWithContext(ctx)
		waits[i] = inf.HasSynced
	}
	if synced == nil {
		return
	}
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), waits...) {
			synced()
		}
	}()
}
