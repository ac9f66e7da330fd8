package mcs

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

func TestRefusals(t *testing.T) {
	svc := ServiceKey{Namespace: "shop", Name: "checkout"}
	other := ServiceKey{Namespace: "shop", Name: "cart"}
	r := NewRefusals()

	if c := r.Condition(svc); c.Status != metav1.ConditionTrue || c.Reason != netv1alpha1.StatusWrittenReason {
		t.Fatalf("nothing refused: got %s %s, want True %s", c.Status, c.Reason, netv1alpha1.StatusWrittenReason)
	}
	if r.Record(svc, "member-1", "ServiceExport", nil) {
		t.Error("an accepted write with nothing refused before changed the report")
	}
	denied := errors.New(`serviceexports.multicluster.x-k8s.io "checkout" is forbidden: ValidatingAdmissionPolicy 'no-status' denied request`)
	if !r.Record(svc, "member-2", "ServiceExport", denied) {
		t.Error("a first refusal did not change the report")
	}
	if r.Record(svc, "member-2", "ServiceExport", denied) {
		t.Error("the same refusal again changed the report (it would queue the service in a loop)")
	}
	if !r.Record(svc, "member-1", "ServiceImport", errors.New("the server rejected our request.")) {
		t.Error("a refusal of another object did not change the report")
	}
	c := r.Condition(svc)
	if c.Status != metav1.ConditionFalse || c.Reason != netv1alpha1.StatusWriteRefusedReason {
		t.Fatalf("got %s %s, want False %s", c.Status, c.Reason, netv1alpha1.StatusWriteRefusedReason)
	}
	for _, want := range []string{
		"Member member-1 refused the status of ServiceImport shop/checkout: the server rejected our request.",
		"Member member-2 refused the status of ServiceExport shop/checkout: " + denied.Error() + ".",
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("message %q lacks %q", c.Message, want)
		}
	}
	if strings.Index(c.Message, "member-1") > strings.Index(c.Message, "member-2") {
		t.Errorf("members not in order: %q", c.Message)
	}
	if got := r.Condition(other); got.Status != metav1.ConditionTrue {
		t.Errorf("another service reports %s", got.Status)
	}

	if !r.Record(svc, "member-2", "ServiceExport", nil) {
		t.Error("an accepted write after a refusal did not change the report")
	}
	if c := r.Condition(svc); c.Status != metav1.ConditionFalse || strings.Contains(c.Message, "member-2") {
		t.Errorf("after member-2 accepted: %s %q", c.Status, c.Message)
	}
	r.Record(svc, "member-1", "ServiceImport", nil)
	if c := r.Condition(svc); c.Status != metav1.ConditionTrue {
		t.Errorf("after every write was accepted: %s %q", c.Status, c.Message)
	}

	r.Record(svc, "member-1", "ServiceExport", denied)
	r.Forget(svc)
	if c := r.Condition(svc); c.Status != metav1.ConditionTrue {
		t.Errorf("after Forget: %s", c.Status)
	}
}

func TestCatalogKeepsTransitionTime(t *testing.T) {
	c := NewCatalog()
	old := metav1.NewTime(metav1.Now().Add(-3600e9)).Rfc3339Copy()
	cond := func(s metav1.ConditionStatus, reason string, at metav1.Time) []metav1.Condition {
		return []metav1.Condition{{Type: netv1alpha1.StatusWrittenCondition, Status: s, Reason: reason, Message: reason, LastTransitionTime: at}}
	}
	if !c.Set("ns", "a", &netv1alpha1.GlobalServiceStatus{Name: "a", Conditions: cond(metav1.ConditionTrue, "StatusWritten", old)}) {
		t.Fatal("a new service did not change the catalog")
	}
	if c.Set("ns", "a", &netv1alpha1.GlobalServiceStatus{Name: "a", Conditions: cond(metav1.ConditionTrue, "StatusWritten", metav1.Now())}) {
		t.Error("the same condition with a new time changed the catalog")
	}
	if got := c.Services("ns")[0].Conditions[0].LastTransitionTime; !got.Equal(&old) {
		t.Errorf("transition time %v, want the first one %v", got, old)
	}
	if !c.Set("ns", "a", &netv1alpha1.GlobalServiceStatus{Name: "a", Conditions: cond(metav1.ConditionFalse, "StatusWriteRefused", metav1.Time{})}) {
		t.Error("a condition turning False did not change the catalog")
	}
	got := c.Services("ns")[0].Conditions[0]
	if got.LastTransitionTime.Equal(&old) || got.LastTransitionTime.IsZero() {
		t.Errorf("transition time after a change: %v", got.LastTransitionTime)
	}
	if got.LastTransitionTime.Nanosecond() != 0 {
		t.Errorf("transition time %v has nanoseconds: the hub's copy (seconds) would never compare equal", got.LastTransitionTime)
	}
}
