package agentstatus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Coalescer bounds status writes: at most one per object per interval, however often what the
// object should say changes. A writer asks Hold before writing; while it returns a wait, the
// writer writes nothing and comes back after that wait (RequeueAfter), recomputing what to write:
// the write at the interval's end then carries every change made meanwhile, so none is lost.
// Safe for concurrent use; keys are the writer's (an object's name).
type Coalescer struct {
	Clock clock.PassiveClock
	mu    sync.Mutex
	last  map[string]time.Time
}

// Hold returns how long a write to key must wait: the rest of the interval since its last write
// (0: it may write now).
func (c *Coalescer) Hold(key string, interval time.Duration) time.Duration {
	now := c.clock().Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	last, wrote := c.last[key]
	if !wrote {
		return 0
	}
	return max(last.Add(interval).Sub(now), 0)
}

// Wrote records a write to key, now.
func (c *Coalescer) Wrote(key string) {
	now := c.clock().Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]time.Time{}
	}
	c.last[key] = now
}

// Forget drops what the coalescer remembers of a deleted object.
func (c *Coalescer) Forget(key string) {
	c.mu.Lock()
	delete(c.last, key)
	c.mu.Unlock()
}

func (c *Coalescer) clock() clock.PassiveClock {
	if c.Clock == nil {
		return clock.RealClock{}
	}
	return c.Clock
}

// Reporter writes agent summaries to MemberClusters' status, coalesced: at most one write per
// MemberCluster per interval, however often the summary changes. A change that comes within the
// interval after a write waits for its end (the caller requeues for the wait Report returns) and
// is written then, folded with every change after it.
type Reporter struct {
	HubClient client.Client
	Coalescer
}

// Report makes mc's status.agents say want. It returns how long to wait before calling again
// when the write is held back by the interval (0: written, or nothing to write).
func (r *Reporter) Report(ctx context.Context, mc *fleetv1alpha1.MemberCluster, want *fleetv1alpha1.AgentSummary, interval time.Duration) (time.Duration, error) {
	if equality.Semantic.DeepEqual(mc.Status.Agents, want) {
		return 0, nil
	}
	if wait := r.Hold(mc.Name, interval); wait > 0 {
		return wait, nil
	}
	before := mc.DeepCopy()
	mc.Status.Agents = want
	if err := r.HubClient.Status().Patch(ctx, mc, client.MergeFrom(before)); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return 0, nil
		}
		return 0, fmt.Errorf("patch agents status of MemberCluster %s: %w", mc.Name, err)
	}
	r.Wrote(mc.Name)
	return 0, nil
}
