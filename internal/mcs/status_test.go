package mcs

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestWorkImportState(t *testing.T) {
	work := func(gen, observed int64, applied metav1.ConditionStatus, state fleetv1alpha1.ObjectState) *fleetv1alpha1.ClusterWork {
		w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
		w.Status.ObservedGeneration = observed
		w.Status.Conditions = []metav1.Condition{{Type: fleetv1alpha1.AppliedCondition, Status: applied, Message: "the member did not answer"}}
		w.Status.Objects = []fleetv1alpha1.ObjectStatus{{Kind: "Service", Name: "meridian-c", State: state, Message: "spec.ports[0].targetPort: Invalid value"}}
		return w
	}
	for _, tc := range []struct {
		name             string
		w                *fleetv1alpha1.ClusterWork
		needVIP, haveVIP bool
		want             ImportState
	}{
		{"no Work", nil, true, false, ImportPending},
		{"applied with its VIP", work(2, 2, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied), true, true, Imported},
		{"applied, VIP not allocated", work(2, 2, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied), true, false, ImportPending},
		{"headless needs no VIP", work(2, 2, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied), false, false, Imported},
		{"in place, an update being applied", work(3, 2, metav1.ConditionTrue, fleetv1alpha1.ObjectApplied), true, true, Imported},
		{"never applied", &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Generation: 1}}, true, true, ImportPending},
		{"member unreachable", work(2, 2, metav1.ConditionUnknown, fleetv1alpha1.ObjectApplied), true, true, ImportUnreachable},
		{"derived Service refused", work(2, 2, metav1.ConditionFalse, fleetv1alpha1.ObjectFailed), true, false, ImportFailed},
		{"object owned by another", work(2, 2, metav1.ConditionFalse, fleetv1alpha1.ObjectConflict), true, false, ImportFailed},
	} {
		if got, _ := WorkImportState(tc.w, tc.needVIP, tc.haveVIP); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// An export is Ready only when every member that should import the service holds it.
func TestExportConditionsComeFromTheImports(t *testing.T) {
	ready := func(imports ...MemberImport) metav1.Condition {
		for _, c := range ExportConditions(Verdict{}, imports) {
			if c.Type == string(mcsv1beta1.ServiceExportConditionReady) {
				return c
			}
		}
		t.Fatal("no Ready condition")
		return metav1.Condition{}
	}
	ok := func(c string) MemberImport { return MemberImport{Cluster: c, State: Imported} }
	c := ready(ok("member-1"), ok("member-2"), ok("member-3"))
	if c.Status != metav1.ConditionTrue || c.Reason != "Exported" || !strings.Contains(c.Message, "3 clusters") {
		t.Errorf("all imported: %+v", c)
	}
	c = ready(ok("member-1"), MemberImport{Cluster: "member-2", State: ImportUnreachable}, ok("member-3"))
	if c.Status != metav1.ConditionFalse || c.Reason != "Pending" || !strings.Contains(c.Message, "2 of 3") || !strings.Contains(c.Message, "member-2 (unreachable)") {
		t.Errorf("one unreachable: %+v", c)
	}
	c = ready(ok("member-1"), MemberImport{Cluster: "member-2", State: ImportFailed, Message: "Service meridian-c: refused"})
	if c.Status != metav1.ConditionFalse || c.Reason != "Failed" || !strings.Contains(c.Message, "refused") {
		t.Errorf("one refused: %+v", c)
	}
	if got := ImportingClusters([]MemberImport{ok("a"), {Cluster: "b", State: ImportUnreachable}, {Cluster: "c", State: ImportPending}}); strings.Join(got, ",") != "a" {
		t.Errorf("importing clusters %v, want only a", got)
	}
	conds := ExportConditions(Verdict{InvalidReason: mcsv1beta1.ServiceExportReasonNoService, InvalidMessage: "no Service"}, []MemberImport{ok("a")})
	if len(conds) != 2 || conds[1].Status != metav1.ConditionFalse {
		t.Errorf("invalid export: %+v", conds)
	}
}
