package work

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/meridian-io/meridian/internal/membercache"
)

// Engine holds one MemberSyncer per connected member: its own queue, workers and caches, so that
// a member that hangs only holds its own workers. It is a membercache.Subscriber: a syncer is
// made from the member cache's clients when a member connects, and stopped when it disconnects
// (or its credentials are replaced, which the cache announces as a disconnect and a connect).
type Engine struct {
	process ProcessFunc
	workers int

	mu       sync.Mutex
	stopped  bool
	members  map[string]*MemberSyncer
	stopping sync.WaitGroup
}

var _ membercache.Subscriber = (*Engine)(nil)

// NewEngine returns an Engine that runs process on workers goroutines per member.
func NewEngine(workers int, process ProcessFunc) *Engine {
	return &Engine{process: process, workers: workers, members: map[string]*MemberSyncer{}}
}

// Start blocks until ctx ends, then stops every member's workers; it makes the Engine a Runnable.
func (e *Engine) Start(ctx context.Context) error {
	<-ctx.Done()
	e.Stop()
	return nil
}

// Stop ends every member's workers and caches and waits for them.
func (e *Engine) Stop() {
	e.mu.Lock()
	e.stopped = true
	members := e.members
	e.members = map[string]*MemberSyncer{}
	e.mu.Unlock()
	for _, s := range members {
		s.Stop()
	}
	e.stopping.Wait()
}

// MemberConnected starts a syncer on the member's new clients, replacing any older one.
func (e *Engine) MemberConnected(m *membercache.Member) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.stopLocked(m.Name)
	e.members[m.Name] = newMemberSyncer(m, e.workers, e.process)
}

// MemberDisconnected stops the member's syncer.
func (e *Engine) MemberDisconnected(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopLocked(name)
	forgetMemberMetrics(name)
}

// MemberHealthChanged does nothing: the ClusterWork controller reads health per pass.
func (e *Engine) MemberHealthChanged(string, membercache.Health) {}

// stopLocked ends a syncer without waiting for its workers here: the member's context has ended,
// so their requests return at once, and Stop waits for them.
func (e *Engine) stopLocked(name string) {
	s := e.members[name]
	if s == nil {
		return
	}
	delete(e.members, name)
	s.cancel()
	e.stopping.Add(1)
	go func() {
		defer e.stopping.Done()
		s.Stop()
	}()
}

// Enqueue queues a Work on its member's queue. It returns false when the member is not connected
// (it has no syncer), in which case the caller reports that on the Work itself.
func (e *Engine) Enqueue(member string, work types.NamespacedName) bool {
	s := e.syncer(member)
	if s == nil {
		return false
	}
	s.Enqueue(work)
	return true
}

func (e *Engine) syncer(member string) *MemberSyncer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members[member]
}
