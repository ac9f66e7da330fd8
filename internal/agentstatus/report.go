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

// Reporter writes agent summaries to MemberClusters' status, coalesced: at most one write per
// MemberCluster per interval, however often the summary changes. A change that comes within the
// interval after a write waits for its end (the caller requeues for the wait Report returns) and
// is written then, folded with every change after it.
type Reporter struct {
	HubClient client.Client
	Clock     clock.PassiveClock
	mu        sync.Mutex
	last      map[string]time.Time
}

// Report makes mc's status.agents say want. It returns how long to wait before calling again
// when the write is held back by the interval (0: written, or nothing to write).
func (r *Reporter) Report(ctx context.Context, mc *fleetv1alpha1.MemberCluster, want *fleetv1alpha1.AgentSummary, interval time.Duration) (time.Duration, error) {
	if equality.Semantic.DeepEqual(mc.Status.Agents, want) {
		return 0, nil
	}
	now := r.clock().Now()
	r.mu.Lock()
	if r.last == nil {
		r.last = map[string]time.Time{}
	}
	last, wrote := r.last[mc.Name]
	r.mu.Unlock()
	if wrote {
		if wait := last.Add(interval).Sub(now); wait > 0 {
			return wait, nil
		}
	}
	before := mc.DeepCopy()
	mc.Status.Agents = want
	if err := r.HubClient.Status().Patch(ctx, mc, client.MergeFrom(before)); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return 0, nil
		}
		return 0, fmt.Errorf("patch agents status of MemberCluster %s: %w", mc.Name, err)
	}
	r.mu.Lock()
	r.last[mc.Name] = now
	r.mu.Unlock()
	return 0, nil
}

// Forget drops what the reporter remembers of a deleted MemberCluster.
func (r *Reporter) Forget(name string) {
	r.mu.Lock()
	delete(r.last, name)
	r.mu.Unlock()
}

func (r *Reporter) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}
