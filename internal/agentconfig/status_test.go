package agentconfig

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestConditionsFollowKstatus(t *testing.T) {
	for _, tc := range []struct {
		name                string
		plan                Plan
		conflicts, contests []string
		ready, recon, stall metav1.ConditionStatus
		degraded            metav1.ConditionStatus
	}{
		{"complete", Plan{Phase: fleetv1alpha1.RolloutComplete, Reason: fleetv1alpha1.RolloutCompleteReason}, nil, nil, "True", "False", "False", "False"},
		{"progressing", Plan{Phase: fleetv1alpha1.RolloutProgressing, Reason: fleetv1alpha1.RolloutProgressingReason}, nil, nil, "False", "True", "False", "False"},
		{"paused", Plan{Phase: fleetv1alpha1.RolloutPaused, Reason: fleetv1alpha1.RolloutPausedReason}, nil, nil, "False", "True", "False", "False"},
		{"stalled", Plan{Phase: fleetv1alpha1.RolloutStalled, Reason: fleetv1alpha1.ClusterFailedReason, Failed: map[string]string{"a": "x"}}, nil, nil, "False", "False", "True", "True"},
		{"complete but lost clusters to an older one", Plan{Phase: fleetv1alpha1.RolloutComplete}, []string{"a"}, nil, "False", "False", "False", "True"},
		{"complete and keeps contested clusters", Plan{Phase: fleetv1alpha1.RolloutComplete}, nil, []string{"a"}, "True", "False", "False", "True"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := &fleetv1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
			SetConditions(ac, tc.plan, tc.conflicts, tc.contests)
			for typ, want := range map[string]metav1.ConditionStatus{
				fleetv1alpha1.ReadyCondition: tc.ready, fleetv1alpha1.ReconcilingCondition: tc.recon,
				fleetv1alpha1.StalledCondition: tc.stall, fleetv1alpha1.DegradedCondition: tc.degraded,
			} {
				c := meta.FindStatusCondition(ac.Status.Conditions, typ)
				if c == nil && want == metav1.ConditionFalse && (typ == fleetv1alpha1.ReconcilingCondition || typ == fleetv1alpha1.StalledCondition) {
					continue // present only while True: Flux allows one of the two at a time
				}
				if c == nil || c.Status != want || c.ObservedGeneration != 4 {
					t.Errorf("%s: %+v, want %s", typ, c, want)
				}
			}
		})
	}
}

func TestStateFromWork(t *testing.T) {
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{Generation: 2, Annotations: map[string]string{RevisionAnnotation: "r2", SinceAnnotation: since.Format(time.RFC3339)}},
		Status: fleetv1alpha1.ClusterWorkStatus{ObservedGeneration: 2, Objects: []fleetv1alpha1.ObjectStatus{{
			Kind: "DaemonSet", Name: AgentName, State: fleetv1alpha1.ObjectApplied, AppliedGeneration: 5,
			Feedback: []fleetv1alpha1.FeedbackValue{{Name: FeedbackGeneration, Value: "5"}, {Name: FeedbackObservedGeneration, Value: "5"},
				{Name: FeedbackDesired, Value: "3"}, {Name: FeedbackUpdated, Value: "3"}, {Name: FeedbackReady, Value: "3"}},
		}}},
	}
	agents := &fleetv1alpha1.AgentSummary{AgentConfig: "ac", Version: "v1", ConfigHash: "h2", Desired: 3, UpToDate: 3, Ready: 3}
	if s := StateFromWork("a", "r2", w).WithAgents(agents, "ac", "v1", "h2"); !s.Done() || !s.Since.Equal(since) {
		t.Fatalf("a Work on the revision with every agent ready: %+v", s)
	}
	if s := StateFromWork("a", "r2", w); s.Done() {
		t.Fatal("done by the DaemonSet alone, without the agents' own reports")
	}
	if s := StateFromWork("a", "r2", w).WithAgents(agents, "ac", "v1", "h1"); s.Done() || s.Agents != nil {
		t.Fatal("a summary counted against another config hash counts for this revision")
	}
	refused := agents.DeepCopy()
	refused.ConfigInvalid, refused.UpToDate, refused.Message = 1, 2, "The agent of node n1 refused its config: bad gate"
	if s := StateFromWork("a", "r2", w).WithAgents(refused, "ac", "v1", "h2"); !s.Failed || s.Done() || !strings.Contains(s.Message, "1 of 3 agents refused the config") || !strings.Contains(s.Message, "bad gate") {
		t.Fatalf("agents refusing the revision's config do not fail the cluster: %+v", s)
	}
	if s := StateFromWork("a", "r3", w).WithAgents(refused, "ac", "v1", "h2"); s.Failed {
		t.Fatal("a cluster not handed the revision fails by the agents' refusal")
	}
	if s := StateFromWork("a", "r3", w); s.HasRevision {
		t.Fatal("a Work on another revision counts as having it")
	}
	stale := w.DeepCopy()
	stale.Status.Objects[0].Feedback[1].Value = "4" // the DaemonSet controller has not seen the new generation
	if s := StateFromWork("a", "r2", stale); s.Done() {
		t.Fatal("counts from before the DaemonSet controller saw the change count as done")
	}
	lagging := w.DeepCopy()
	lagging.Generation = 3 // the syncer has not applied the Work's latest spec
	if s := StateFromWork("a", "r2", lagging); s.Done() {
		t.Fatal("a Work the syncer has not caught up with counts as done")
	}
}
