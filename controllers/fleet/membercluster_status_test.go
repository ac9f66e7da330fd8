package fleet

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/memberconn"
)

func TestSetStatus(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	healthy := memberconn.Health{Reachable: true, Reason: memberconn.ReasonSucceeded, Message: "ok",
		KubernetesVersion: "v1.36.3", NodesTotal: 3, NodesReady: 2, ProbeTime: now}
	down := memberconn.Health{Reason: memberconn.ReasonUnreachable, Message: "connection refused", ProbeTime: now}

	tests := []struct {
		name                       string
		scope                      scope
		passSucceeded              bool
		wantReachable, wantReady   metav1.ConditionStatus
		wantReason                 string
		wantNodes                  string
		wantObservedGenerationMove bool
	}{
		{name: "healthy member", scope: scope{connected: true, health: healthy}, passSucceeded: true,
			wantReachable: metav1.ConditionTrue, wantReady: metav1.ConditionTrue, wantReason: fleetv1alpha1.MemberReadyReason,
			wantNodes: "2/3", wantObservedGenerationMove: true},
		{name: "unreachable member keeps last inventory", scope: scope{connected: true, health: down}, passSucceeded: true,
			wantReachable: metav1.ConditionFalse, wantReady: metav1.ConditionFalse, wantReason: fleetv1alpha1.MemberUnreachableReason,
			wantNodes: "1/1", wantObservedGenerationMove: true},
		{name: "bad kubeconfig", scope: scope{connReason: fleetv1alpha1.InvalidKubeconfigReason, connMessage: "bad"}, passSucceeded: true,
			wantReachable: metav1.ConditionFalse, wantReady: metav1.ConditionFalse, wantReason: fleetv1alpha1.InvalidKubeconfigReason,
			wantNodes: "1/1", wantObservedGenerationMove: true},
		{name: "not probed yet", scope: scope{connected: true, health: memberconn.Health{Reason: memberconn.ReasonPending, Message: "wait"}}, passSucceeded: true,
			wantReachable: metav1.ConditionUnknown, wantReady: metav1.ConditionUnknown, wantReason: fleetv1alpha1.ProbePendingReason,
			wantNodes: "1/1", wantObservedGenerationMove: true},
		{name: "failed pass keeps observedGeneration", scope: scope{connected: true, health: healthy}, passSucceeded: false,
			wantReachable: metav1.ConditionTrue, wantReady: metav1.ConditionTrue, wantReason: fleetv1alpha1.MemberReadyReason,
			wantNodes: "2/3", wantObservedGenerationMove: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "m", Generation: 4}}
			m.Status.ObservedGeneration = 3
			m.Status.Nodes = &fleetv1alpha1.NodeSummary{Total: 1, Ready: 1, Summary: "1/1"}
			setStatus(m, &tt.scope, now, 5*time.Minute, tt.passSucceeded)

			if got := meta.FindStatusCondition(m.Status.Conditions, fleetv1alpha1.ReachableCondition); got.Status != tt.wantReachable {
				t.Errorf("Reachable = %s, want %s", got.Status, tt.wantReachable)
			}
			ready := meta.FindStatusCondition(m.Status.Conditions, fleetv1alpha1.ReadyCondition)
			if ready.Status != tt.wantReady || ready.Reason != tt.wantReason {
				t.Errorf("Ready = %s/%s, want %s/%s", ready.Status, ready.Reason, tt.wantReady, tt.wantReason)
			}
			if ready.ObservedGeneration != 4 {
				t.Errorf("Ready.observedGeneration = %d, want 4", ready.ObservedGeneration)
			}
			if m.Status.Nodes.Summary != tt.wantNodes {
				t.Errorf("nodes = %s, want %s", m.Status.Nodes.Summary, tt.wantNodes)
			}
			if moved := m.Status.ObservedGeneration == 4; moved != tt.wantObservedGenerationMove {
				t.Errorf("observedGeneration = %d, want moved=%v", m.Status.ObservedGeneration, tt.wantObservedGenerationMove)
			}
		})
	}
}

// A healthy member that stays the same must not change status on every probe: lastProbeTime
// moves only with another change or once per refresh interval.
func TestSetStatusLastProbeTimeIsQuietInSteadyState(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	h := memberconn.Health{Reachable: true, Reason: memberconn.ReasonSucceeded, Message: "ok", KubernetesVersion: "v1.36.3", ProbeTime: t0}
	m := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "m", Generation: 1}}
	setStatus(m, &scope{connected: true, health: h}, t0, time.Minute, true)
	if m.Status.LastProbeTime == nil || !m.Status.LastProbeTime.Time.Equal(t0) {
		t.Fatalf("first probe: lastProbeTime = %v, want %v", m.Status.LastProbeTime, t0)
	}

	h.ProbeTime = t0.Add(10 * time.Second)
	before := m.Status.DeepCopy()
	setStatus(m, &scope{connected: true, health: h}, h.ProbeTime, time.Minute, true)
	if !m.Status.LastProbeTime.Equal(before.LastProbeTime) {
		t.Errorf("unchanged probe within the refresh interval moved lastProbeTime to %v", m.Status.LastProbeTime)
	}

	h.NodesTotal, h.NodesReady = 1, 1
	setStatus(m, &scope{connected: true, health: h}, h.ProbeTime, time.Minute, true)
	if !m.Status.LastProbeTime.Time.Equal(h.ProbeTime) {
		t.Errorf("a changed inventory did not move lastProbeTime: %v", m.Status.LastProbeTime)
	}

	h.ProbeTime = h.ProbeTime.Add(2 * time.Minute)
	setStatus(m, &scope{connected: true, health: h}, h.ProbeTime, time.Minute, true)
	if !m.Status.LastProbeTime.Time.Equal(h.ProbeTime) {
		t.Errorf("lastProbeTime older than the refresh interval was not refreshed: %v", m.Status.LastProbeTime)
	}
}
