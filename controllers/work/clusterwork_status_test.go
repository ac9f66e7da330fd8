package work

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/work"
)

func obj(state fleetv1alpha1.ObjectState, health string) fleetv1alpha1.ObjectStatus {
	return fleetv1alpha1.ObjectStatus{Kind: "ConfigMap", Name: "c", Version: "v1", State: state, Health: health, Message: string(state) + " message"}
}

func TestSetStatus(t *testing.T) {
	tests := []struct {
		name                         string
		objects                      []fleetv1alpha1.ObjectStatus
		err                          error
		pruneErr                     error
		ready, reconciling, stalled  metav1.ConditionStatus
		appliedReason, summary       string
		observedGenerationMovesAlong bool
	}{
		{"all applied and current", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectApplied, "Current")}, nil, nil,
			metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, fleetv1alpha1.AllAppliedReason, "1/1 applied", true},
		{"no objects", nil, nil, nil,
			metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionFalse, fleetv1alpha1.AllAppliedReason, "0/0 applied", true},
		{"applied, not yet available", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectApplied, "InProgress")}, nil, nil,
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, fleetv1alpha1.AllAppliedReason, "1/1 applied", true},
		{"pending", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectApplied, "Current"), obj(fleetv1alpha1.ObjectPending, "")}, nil, nil,
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, fleetv1alpha1.ApplyPendingReason, "1/2 applied, 1 pending", true},
		{"member did not answer", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectPending, "")}, errors.New("timeout"), nil,
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, fleetv1alpha1.ApplyPendingReason, "0/1 applied, 1 pending", false},
		{"conflict", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectConflict, ""), obj(fleetv1alpha1.ObjectFailed, "")}, nil, nil,
			metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, fleetv1alpha1.ConflictReason, "0/2 applied, 1 conflict, 1 failed", true},
		{"refused", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectFailed, "")}, nil, nil,
			metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, fleetv1alpha1.ApplyFailedReason, "0/1 applied, 1 failed", true},
		// A failed prune: every listed object is applied, but the pass failed. Ready=True here
		// would tell kubectl wait the Work is done while observedGeneration lags.
		{"prune failed", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectApplied, "Current")}, errors.New("delete: timeout"), errors.New("delete: timeout"),
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, fleetv1alpha1.AllAppliedReason, "1/1 applied", false},
		{"object applied but another did not answer", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectApplied, "Current"), obj(fleetv1alpha1.ObjectPending, "")}, errors.New("timeout"), nil,
			metav1.ConditionFalse, metav1.ConditionTrue, metav1.ConditionFalse, fleetv1alpha1.ApplyPendingReason, "1/2 applied, 1 pending", false},
		{"conflict and the member did not answer", []fleetv1alpha1.ObjectStatus{obj(fleetv1alpha1.ObjectConflict, ""), obj(fleetv1alpha1.ObjectPending, "")}, errors.New("timeout"), nil,
			metav1.ConditionFalse, metav1.ConditionFalse, metav1.ConditionTrue, fleetv1alpha1.ConflictReason, "0/2 applied, 1 pending, 1 conflict", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &fleetv1alpha1.ClusterWork{}
			w.Generation = 2
			w.Status.ObservedGeneration = 1
			setStatus(w, work.Result{Objects: tt.objects, Err: tt.err, PruneErr: tt.pruneErr})
			get := func(c string) *metav1.Condition {
				got := meta.FindStatusCondition(w.Status.Conditions, c)
				if got == nil && (c == fleetv1alpha1.ReconcilingCondition || c == fleetv1alpha1.StalledCondition) {
					// Present only while True (Flux: never both present): absent reads as False.
					return &metav1.Condition{Type: c, Status: metav1.ConditionFalse}
				}
				return got
			}
			if meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.ReconcilingCondition) != nil &&
				meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.StalledCondition) != nil {
				t.Error("Reconciling and Stalled are both present (Flux allows one at a time)")
			}
			if got := get(fleetv1alpha1.ReadyCondition).Status; got != tt.ready {
				t.Errorf("Ready = %s, want %s", got, tt.ready)
			}
			if got := get(fleetv1alpha1.ReconcilingCondition).Status; got != tt.reconciling {
				t.Errorf("Reconciling = %s, want %s", got, tt.reconciling)
			}
			if got := get(fleetv1alpha1.StalledCondition).Status; got != tt.stalled {
				t.Errorf("Stalled = %s, want %s", got, tt.stalled)
			}
			if got := get(fleetv1alpha1.AppliedCondition).Reason; got != tt.appliedReason {
				t.Errorf("Applied reason = %s, want %s", got, tt.appliedReason)
			}
			if w.Status.Summary != tt.summary {
				t.Errorf("summary = %q, want %q", w.Status.Summary, tt.summary)
			}
			if moved := w.Status.ObservedGeneration == 2; moved != tt.observedGenerationMovesAlong {
				t.Errorf("observedGeneration = %d", w.Status.ObservedGeneration)
			}
			// kstatus / Flux: never Reconciling and Stalled at once; Ready False while either is True.
			r, s := get(fleetv1alpha1.ReconcilingCondition).Status, get(fleetv1alpha1.StalledCondition).Status
			if r == metav1.ConditionTrue && s == metav1.ConditionTrue {
				t.Error("Reconciling and Stalled are both True")
			}
			if (r == metav1.ConditionTrue || s == metav1.ConditionTrue) && get(fleetv1alpha1.ReadyCondition).Status == metav1.ConditionTrue {
				t.Error("Ready is True while Reconciling or Stalled is True")
			}
			// What kstatus itself (kubectl wait, Argo CD, Flux) makes of the Work.
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w)
			if err != nil {
				t.Fatal(err)
			}
			res, err := status.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if current := res.Status == status.CurrentStatus; current != (tt.ready == metav1.ConditionTrue) {
				t.Errorf("kstatus = %s (%s) with Ready=%s", res.Status, res.Message, tt.ready)
			}
		})
	}
}
