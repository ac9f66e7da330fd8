package networking

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

func TestImportWorkChangedOnlyForWhatAReconcileReads(t *testing.T) {
	applied := func(status metav1.ConditionStatus, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: fleetv1alpha1.AppliedCondition, Status: status, Reason: "R", Message: msg}}
	}
	work := func(gen, observed int64, conds []metav1.Condition) *fleetv1alpha1.ClusterWork {
		w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "member-1", Name: "mcs-x", Generation: gen,
			Labels: map[string]string{netv1alpha1.ServiceNamespaceLabel: "shop", netv1alpha1.ServiceNameLabel: "db"}}}
		w.Status.ObservedGeneration, w.Status.Conditions = observed, conds
		return w
	}
	applied3 := applied(metav1.ConditionTrue, "All 3 objects are applied to the member.")
	now := metav1.Now()

	var r ServiceDiscoveryReconciler
	r.specWrites.Store(client.ObjectKey{Namespace: "member-1", Name: "mcs-x"}, int64(5))
	for _, tc := range []struct {
		name     string
		old, new func() *fleetv1alpha1.ClusterWork
		want     bool
	}{
		{"its own spec write", func() *fleetv1alpha1.ClusterWork { return work(4, 4, applied3) }, func() *fleetv1alpha1.ClusterWork { return work(5, 4, applied3) }, false},
		{"the new generation applied, the import as it was", func() *fleetv1alpha1.ClusterWork { return work(5, 4, applied3) }, func() *fleetv1alpha1.ClusterWork { return work(5, 5, applied3) }, false},
		{"a spec written by another hand", func() *fleetv1alpha1.ClusterWork { return work(5, 5, applied3) }, func() *fleetv1alpha1.ClusterWork { return work(6, 5, applied3) }, true},
		{"applied for the first time", func() *fleetv1alpha1.ClusterWork { return work(1, 0, nil) }, func() *fleetv1alpha1.ClusterWork { return work(1, 1, applied3) }, true},
		{"member unreachable", func() *fleetv1alpha1.ClusterWork { return work(5, 5, applied3) }, func() *fleetv1alpha1.ClusterWork {
			return work(5, 5, applied(metav1.ConditionUnknown, "member-1 is unreachable"))
		}, true},
		{"an object refused", func() *fleetv1alpha1.ClusterWork { return work(5, 5, applied3) }, func() *fleetv1alpha1.ClusterWork {
			w := work(5, 5, applied(metav1.ConditionFalse, "The member refused 1 of 3 objects."))
			w.Status.Objects = []fleetv1alpha1.ObjectStatus{{Kind: "EndpointSlice", Name: "db-1", State: fleetv1alpha1.ObjectFailed, Message: "invalid"}}
			return w
		}, true},
		{"being deleted", func() *fleetv1alpha1.ClusterWork { return work(5, 5, applied3) }, func() *fleetv1alpha1.ClusterWork {
			w := work(5, 5, applied3)
			w.DeletionTimestamp = &now
			return w
		}, true},
		{"relabelled", func() *fleetv1alpha1.ClusterWork { return work(5, 5, applied3) }, func() *fleetv1alpha1.ClusterWork {
			w := work(5, 5, applied3)
			w.Labels[netv1alpha1.ServiceNameLabel] = "web"
			return w
		}, true},
	} {
		if got := r.importWorkChanged(tc.old(), tc.new()); got != tc.want {
			t.Errorf("%s: importWorkChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}
