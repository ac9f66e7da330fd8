package agentconfig

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestConditionsFollowKstatus(t *testing.T) {
	lost := []Conflict{{AgentConfig: "fleet", Clusters: []string{"a", "b"}}}
	contested := []Conflict{{AgentConfig: "fleet-2", Clusters: []string{"a"}}}
	progressing := Plan{Phase: fleetv1alpha1.RolloutProgressing, Reason: fleetv1alpha1.RolloutProgressingReason, Message: "Rolling out wave 1 of 2: clusters c."}
	stalled := Plan{Phase: fleetv1alpha1.RolloutStalled, Reason: fleetv1alpha1.ConfigInvalidReason, Message: "The rollout stopped at wave 1 of 1: cluster c failed.", Failed: map[string]string{"c": "x"}}
	for _, tc := range []struct {
		name                string
		plan                Plan
		lost, contested     []Conflict
		ready, recon, stall metav1.ConditionStatus
		degraded            metav1.ConditionStatus
		progressing         metav1.ConditionStatus
		// readyReason and readyMessage (a part of it) when set.
		readyReason, readyMessage string
	}{
		{name: "complete", plan: Plan{Phase: fleetv1alpha1.RolloutComplete, Reason: fleetv1alpha1.RolloutCompleteReason},
			ready: "True", recon: "False", stall: "False", degraded: "False", progressing: "False"},
		{name: "progressing", plan: progressing, ready: "False", recon: "True", stall: "False", degraded: "False", progressing: "True"},
		{name: "paused", plan: Plan{Phase: fleetv1alpha1.RolloutPaused, Reason: fleetv1alpha1.RolloutPausedReason},
			ready: "False", recon: "True", stall: "False", degraded: "False", progressing: "False"},
		{name: "stalled", plan: stalled, ready: "False", recon: "False", stall: "True", degraded: "True", progressing: "False",
			readyReason: fleetv1alpha1.ConfigInvalidReason},
		// A conflict is not resolved by waiting: Stalled, so kstatus reads Failed, not InProgress forever.
		{name: "every cluster held by an older one", plan: Plan{Phase: fleetv1alpha1.RolloutComplete, Reason: fleetv1alpha1.RolloutCompleteReason}, lost: lost,
			ready: "False", recon: "False", stall: "True", degraded: "True", progressing: "False",
			readyReason: fleetv1alpha1.AgentConfigConflictReason, readyMessage: "held by an older one: AgentConfig fleet (clusters a, b)"},
		{name: "rolling out its own clusters while an older one holds others", plan: progressing, lost: lost,
			ready: "False", recon: "False", stall: "True", degraded: "True", progressing: "True",
			readyReason: fleetv1alpha1.AgentConfigConflictReason, readyMessage: "AgentConfig fleet (clusters a, b)"},
		{name: "its rollout stalled and an older one holds clusters", plan: stalled, lost: lost,
			ready: "False", recon: "False", stall: "True", degraded: "True", progressing: "False",
			readyReason: fleetv1alpha1.AgentConfigConflictReason, readyMessage: "The rollout stopped at wave 1 of 1: cluster c failed."},
		{name: "complete and keeps contested clusters", plan: Plan{Phase: fleetv1alpha1.RolloutComplete}, contested: contested,
			ready: "True", recon: "False", stall: "False", degraded: "False", progressing: "False"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := &fleetv1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
			SetConditions(ac, tc.plan, tc.lost, tc.contested)
			for typ, want := range map[string]metav1.ConditionStatus{
				fleetv1alpha1.ReadyCondition: tc.ready, fleetv1alpha1.ReconcilingCondition: tc.recon,
				fleetv1alpha1.StalledCondition: tc.stall, fleetv1alpha1.DegradedCondition: tc.degraded,
				fleetv1alpha1.ProgressingCondition: tc.progressing,
			} {
				c := meta.FindStatusCondition(ac.Status.Conditions, typ)
				if typ == fleetv1alpha1.ReconcilingCondition || typ == fleetv1alpha1.StalledCondition {
					if want == metav1.ConditionFalse && c == nil {
						continue // present only while True: Flux allows one of the two at a time
					}
					if want == metav1.ConditionFalse {
						t.Errorf("%s present while not True: %+v", typ, c)
						continue
					}
				}
				if c == nil || c.Status != want || c.ObservedGeneration != 4 {
					t.Errorf("%s: %+v, want %s", typ, c, want)
				}
			}
			ready := meta.FindStatusCondition(ac.Status.Conditions, fleetv1alpha1.ReadyCondition)
			if tc.readyReason != "" && ready.Reason != tc.readyReason {
				t.Errorf("Ready reason %s, want %s", ready.Reason, tc.readyReason)
			}
			if !strings.Contains(ready.Message, tc.readyMessage) {
				t.Errorf("Ready message %q lacks %q", ready.Message, tc.readyMessage)
			}
			if stall := meta.FindStatusCondition(ac.Status.Conditions, fleetv1alpha1.StalledCondition); stall != nil && (stall.Reason != ready.Reason || stall.Message != ready.Message) {
				t.Errorf("Stalled %s %q and Ready %s %q disagree", stall.Reason, stall.Message, ready.Reason, ready.Message)
			}
		})
	}
}

func TestPartitionGivesEachClusterToTheOldest(t *testing.T) {
	at := func(name string, sec int, clusters ...string) fleetv1alpha1.AgentConfig {
		return fleetv1alpha1.AgentConfig{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC))},
			Spec:       fleetv1alpha1.AgentConfigSpec{Placement: fleetv1alpha1.Placement{ClusterNames: clusters}},
		}
	}
	var members []fleetv1alpha1.MemberCluster
	for _, n := range []string{"a", "b", "c", "d"} {
		members = append(members, fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	deleted := at("gone", 0, "a", "b", "c", "d")
	deleted.DeletionTimestamp = ptr.To(metav1.Now())
	all := []fleetv1alpha1.AgentConfig{
		at("first", 1, "a"),
		at("second", 2, "a", "b"), // loses a to first
		at("mine", 3, "a", "b", "c", "d"),
		at("later", 4, "c"),
		at("last", 5, "c", "d"),
		deleted,                      // older than all, but going: it holds nothing
		at("zz-same-second", 3, "d"), // same second as mine, later by name: younger
	}
	mine := &all[2]
	selected, err := Select(mine, members)
	if err != nil {
		t.Fatal(err)
	}
	held, lost, contested := Partition(mine, selected, all, members)
	if got := strings.Join(held, ","); got != "c,d" {
		t.Errorf("held %s, want c,d", got)
	}
	wantLost := []Conflict{{AgentConfig: "first", Clusters: []string{"a"}}, {AgentConfig: "second", Clusters: []string{"b"}}}
	if !equality.Semantic.DeepEqual(lost, wantLost) {
		t.Errorf("lost %+v, want %+v", lost, wantLost)
	}
	wantContested := []Conflict{{AgentConfig: "last", Clusters: []string{"c", "d"}}, {AgentConfig: "later", Clusters: []string{"c"}},
		{AgentConfig: "zz-same-second", Clusters: []string{"d"}}}
	if !equality.Semantic.DeepEqual(contested, wantContested) {
		t.Errorf("contested %+v, want %+v", contested, wantContested)
	}
	if got := lostMessage(lost); !strings.Contains(got, "AgentConfig first (cluster a); AgentConfig second (cluster b)") {
		t.Errorf("lost message %q does not name each holder and its clusters", got)
	}

	// The oldest is told only of the younger ones; it loses nothing.
	held, lost, contested = Partition(&all[0], []string{"a"}, all, members)
	if len(held) != 1 || lost != nil || len(contested) != 2 {
		t.Errorf("oldest: held %v, lost %+v, contested %+v", held, lost, contested)
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

func TestClusterStatusCountsWavesFromOne(t *testing.T) {
	plan := Plan{Waves: [][]string{{"a"}, {"b"}, {"c"}}, Wave: 1, Failed: map[string]string{}}
	got := ClusterStatus(ClusterState{Name: "b"}, 2, "v1", "h", plan, nil)
	if got.Wave != 2 || got.Phase != fleetv1alpha1.AgentClusterPending || got.Message != "Waiting for wave 2 of 3; the cluster keeps its previous agents." {
		t.Errorf("pending cluster of the second wave: %+v", got)
	}
	lost := LostClusterStatus("d", "fleet")
	if lost.Wave != 0 || lost.Phase != fleetv1alpha1.AgentClusterConflict || !strings.Contains(lost.Message, "The older AgentConfig fleet holds this cluster") {
		t.Errorf("a cluster another AgentConfig holds: %+v", lost)
	}
}
