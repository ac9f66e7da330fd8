package fleet

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
)

func TestSetStatus(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	healthy := membercache.Health{Reachable: true, Reason: membercache.ReasonSucceeded, Message: "ok",
		KubernetesVersion: "v1.36.3", NodesTotal: 3, NodesReady: 2, ProbeTime: now}
	down := membercache.Health{Reason: membercache.ReasonUnreachable, Message: "connection refused", ProbeTime: now}

	tests := []struct {
		name    string
		scope   scope
		passErr error
		// observedGeneration before the pass; 3 (one behind) when zero.
		observedGeneration         int64
		wantReachable, wantReady   metav1.ConditionStatus
		wantReason                 string
		wantNodes                  string
		wantObservedGenerationMove bool
	}{
		{name: "healthy member", scope: scope{connected: true, health: healthy}, passErr: nil,
			wantReachable: metav1.ConditionTrue, wantReady: metav1.ConditionTrue, wantReason: fleetv1alpha1.MemberReadyReason,
			wantNodes: "2/3", wantObservedGenerationMove: true},
		{name: "unreachable member keeps last inventory", scope: scope{connected: true, health: down}, passErr: nil,
			wantReachable: metav1.ConditionFalse, wantReady: metav1.ConditionFalse, wantReason: fleetv1alpha1.MemberUnreachableReason,
			wantNodes: "1/1", wantObservedGenerationMove: true},
		{name: "bad kubeconfig", scope: scope{connReason: fleetv1alpha1.InvalidKubeconfigReason, connMessage: "bad"}, passErr: nil,
			wantReachable: metav1.ConditionFalse, wantReady: metav1.ConditionFalse, wantReason: fleetv1alpha1.InvalidKubeconfigReason,
			wantNodes: "1/1", wantObservedGenerationMove: true},
		{name: "not probed yet", scope: scope{connected: true, health: membercache.Health{Reason: membercache.ReasonPending, Message: "wait"}}, passErr: nil,
			wantReachable: metav1.ConditionUnknown, wantReady: metav1.ConditionUnknown, wantReason: fleetv1alpha1.ProbePendingReason,
			wantNodes: "1/1", wantObservedGenerationMove: true},
		// Ready=True beside an observedGeneration that lags would tell kubectl wait a spec is done
		// that the hub never acted on.
		{name: "failed pass keeps observedGeneration and is not Ready", scope: scope{connected: true, health: healthy}, passErr: errors.New("create hub namespace: timeout"),
			wantReachable: metav1.ConditionTrue, wantReady: metav1.ConditionFalse, wantReason: fleetv1alpha1.ReconcileFailedReason,
			wantNodes: "2/3", wantObservedGenerationMove: false},
		{name: "failed pass over a spec already acted on stays Ready", scope: scope{connected: true, health: healthy}, passErr: errors.New("get hub namespace: timeout"),
			observedGeneration: 4,
			wantReachable:      metav1.ConditionTrue, wantReady: metav1.ConditionTrue, wantReason: fleetv1alpha1.MemberReadyReason,
			wantNodes: "2/3", wantObservedGenerationMove: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "m", Generation: 4}}
			m.Status.ObservedGeneration = 3
			if tt.observedGeneration != 0 {
				m.Status.ObservedGeneration = tt.observedGeneration
			}
			m.Status.Nodes = &fleetv1alpha1.NodeSummary{Total: 1, Ready: 1, Summary: "1/1"}
			setStatus(m, &tt.scope, now, 5*time.Minute, tt.passErr)

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
			// kstatus (kubectl wait, Argo CD, Flux) sees Current only when Ready is True.
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(m)
			if err != nil {
				t.Fatal(err)
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if current := res.Status == status.CurrentStatus; current != (tt.wantReady == metav1.ConditionTrue) {
				t.Errorf("kstatus = %s (%s) with Ready=%s", res.Status, res.Message, tt.wantReady)
			}
		})
	}
}

// A healthy member that stays the same must not change status on every probe: lastProbeTime
// moves only with another change or once per refresh interval.
func TestSetStatusLastProbeTimeIsQuietInSteadyState(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	h := membercache.Health{Reachable: true, Reason: membercache.ReasonSucceeded, Message: "ok", KubernetesVersion: "v1.36.3", ProbeTime: t0}
	m := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "m", Generation: 1}}
	setStatus(m, &scope{connected: true, health: h}, t0, time.Minute, nil)
	if m.Status.LastProbeTime == nil || !m.Status.LastProbeTime.Time.Equal(t0) {
		t.Fatalf("first probe: lastProbeTime = %v, want %v", m.Status.LastProbeTime, t0)
	}

	h.ProbeTime = t0.Add(10 * time.Second)
	before := m.Status.DeepCopy()
	setStatus(m, &scope{connected: true, health: h}, h.ProbeTime, time.Minute, nil)
	if !m.Status.LastProbeTime.Equal(before.LastProbeTime) {
		t.Errorf("unchanged probe within the refresh interval moved lastProbeTime to %v", m.Status.LastProbeTime)
	}

	h.NodesTotal, h.NodesReady = 1, 1
	setStatus(m, &scope{connected: true, health: h}, h.ProbeTime, time.Minute, nil)
	if !m.Status.LastProbeTime.Time.Equal(h.ProbeTime) {
		t.Errorf("a changed inventory did not move lastProbeTime: %v", m.Status.LastProbeTime)
	}

	h.ProbeTime = h.ProbeTime.Add(2 * time.Minute)
	setStatus(m, &scope{connected: true, health: h}, h.ProbeTime, time.Minute, nil)
	if !m.Status.LastProbeTime.Time.Equal(h.ProbeTime) {
		t.Errorf("lastProbeTime older than the refresh interval was not refreshed: %v", m.Status.LastProbeTime)
	}
}
