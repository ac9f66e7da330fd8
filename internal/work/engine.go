package work

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// ConfigSource gives the REST config of a connected member and a fingerprint that changes when
// the connection is replaced (a new kubeconfig).
type ConfigSource interface {
	RESTConfig(member string) (*rest.Config, bool)
	Fingerprint(member string) (string, bool)
}

// Engine holds one MemberSyncer per connected member: its own queue, workers and caches, so that
// a member that hangs only holds its own workers.
type Engine struct {
	configs ConfigSource
	process ProcessFunc
	workers int

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	members map[string]*MemberSyncer
}

// NewEngine returns an Engine that runs process on workers goroutines per member.
func NewEngine(configs ConfigSource, workers int, process ProcessFunc) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{configs: configs, process: process, workers: workers, ctx: ctx, cancel: cancel, members: map[string]*MemberSyncer{}}
}

// Start blocks until ctx ends, then stops every member's workers; it makes the Engine a Runnable.
func (e *Engine) Start(ctx context.Context) error {
	<-ctx.Done()
	e.Stop()
	return nil
}

// Stop ends every member's workers and caches.
func (e *Engine) Stop() {
	e.cancel()
	e.mu.Lock()
	members := e.members
	e.members = map[string]*MemberSyncer{}
	e.mu.Unlock()
	for _, s := range members {
		s.Stop()
	}
}

// Enqueue queues a Work on its member's queue. It returns false when the member is not connected
// (no syncer can be made), in which case the caller reports that on the Work itself.
func (e *Engine) Enqueue(member string, work types.NamespacedName) bool {
	s, err := e.syncer(member)
	if err != nil || s == nil {
		return false
	}
	s.Enqueue(work)
	return true
}

// Remove stops the syncer of a member that left.
func (e *Engine) Remove(member string) {
	e.mu.Lock()
	s := e.members[member]
	delete(e.members, member)
	e.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// syncer returns the member's syncer, replacing it when the member's connection changed (new
// credentials: new clients and caches) and dropping it when the member is not connected.
func (e *Engine) syncer(member string) (*MemberSyncer, error) {
	fp, connected := e.configs.Fingerprint(member)
	cfg, _ := e.configs.RESTConfig(member)
	e.mu.Lock()
	old := e.members[member]
	if old != nil && connected && old.fingerprint == fp {
		e.mu.Unlock()
		return old, nil
	}
	delete(e.members, member)
	var s *MemberSyncer
	var err error
	if connected && cfg != nil && e.ctx.Err() == nil {
		if s, err = newMemberSyncer(e.ctx, member, fp, cfg, e.workers, e.process); err == nil {
			e.members[member] = s
		}
	}
	e.mu.Unlock()
	if old != nil {
		old.Stop() // outside the lock: it waits for the old workers
	}
	return s, err
}
