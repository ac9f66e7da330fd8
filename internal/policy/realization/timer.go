// Package realization measures how long each member takes to realize a GlobalNetworkPolicy: from
// the hub's first pass over a new generation of the policy to the pass that sees the member's
// phase Realized for that generation (meridian_policy_realization_seconds).
package realization

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// seconds has no policy label: a fleet's policies times its members would make a series per
// pair. By member and form it answers what an operator asks (which member, which enforcer is
// slow); which policy is slow is in the policy's status.
var seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name: "meridian_policy_realization_seconds",
	Help: "Time from the hub's first pass over a new GlobalNetworkPolicy generation to the pass that saw a member realize it, by member (cluster) and the form it enforces the policy with.",
	// 0.1s to about 27 minutes.
	Buckets: prometheus.ExponentialBuckets(0.1, 2, 15),
}, []string{"cluster", "form"})

func init() {
	metrics.Registry.MustRegister(seconds)
}

// Timer remembers, per policy, the generation its passes work on and when each member was first
// seen under it. It holds no objects: a few bytes per policy and member.
type Timer struct {
	clock    clock.PassiveClock
	observed *prometheus.HistogramVec

	mu       sync.Mutex
	policies map[string]*generationState
	// clusters have series in observed.
	clusters map[string]bool
}

type generationState struct {
	number  int64
	members map[string]*member
}

type member struct {
	since time.Time
	// done: observed once already, or not to be timed.
	done bool
}

// New returns a Timer that reads the time from c and reports to meridian_policy_realization_seconds.
func New(c clock.PassiveClock) *Timer { return newTimer(c, seconds) }

func newTimer(c clock.PassiveClock, observed *prometheus.HistogramVec) *Timer {
	return &Timer{clock: c, observed: observed, policies: map[string]*generationState{}, clusters: map[string]bool{}}
}

// Observe takes the clusters' status a pass over a policy computed. generation is the policy's
// metadata.generation, statusGeneration its status.observedGeneration as the pass read it.
//
// A member is timed from the first pass that places it under the generation (the generation's
// first pass, or a later one when a placement change adds the member) to the first pass that sees
// it Realized; it is observed once per generation, never again (a member that falls back to
// Pending and recovers is not timed twice). A member that has not realized a generation when the
// next one comes is not observed for it.
//
// A process cannot know when a generation it finds already in the status began: the first pass
// of this process over a policy whose status already describes its generation (a restart, a
// new leader) times none of the members it finds there, so a restart yields no sample rather
// than a wrong one. A generation the status did not yet describe is timed from this process's
// first pass over it, which may be later than its creation if the manager was down: an
// undercount, never a sample longer than the process has watched it.
func (t *Timer) Observe(policy string, generation, statusGeneration int64, clusters []policyv1alpha1.ClusterPolicyStatus) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.policies[policy]
	fresh := g == nil
	if g != nil && generation < g.number {
		return // a stale read of an older generation
	}
	if g == nil || g.number != generation {
		g = &generationState{number: generation, members: map[string]*member{}}
		t.policies[policy] = g
	}
	for _, c := range clusters {
		m := g.members[c.Cluster]
		if m == nil {
			m = &member{since: now, done: fresh && statusGeneration == generation}
			g.members[c.Cluster] = m
		}
		if m.done || c.Phase != policyv1alpha1.PhaseRealized {
			continue
		}
		m.done = true
		t.clusters[c.Cluster] = true
		t.observed.WithLabelValues(c.Cluster, string(c.Form)).Observe(now.Sub(m.since).Seconds())
	}
}

// Forget drops a deleted policy.
func (t *Timer) Forget(policy string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.policies, policy)
}

// Retain keeps the series and state of these member clusters only: the others are gone.
func (t *Timer) Retain(clusters []string) {
	keep := make(map[string]bool, len(clusters))
	for _, c := range clusters {
		keep[c] = true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.clusters {
		if !keep[c] {
			t.observed.DeletePartialMatch(prometheus.Labels{"cluster": c})
			delete(t.clusters, c)
		}
	}
	for _, g := range t.policies {
		for c := range g.members {
			if !keep[c] {
				delete(g.members, c)
			}
		}
	}
}
