package conditions

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSetKeepsOnlyTrueAbnormalConditions(t *testing.T) {
	var conds []metav1.Condition
	Set(&conds, metav1.Condition{Type: Reconciling, Status: metav1.ConditionTrue, Reason: "Applying"})
	Set(&conds, metav1.Condition{Type: Stalled, Status: metav1.ConditionFalse, Reason: "Healthy"})
	Set(&conds, metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Applying"})
	if meta.FindStatusCondition(conds, Stalled) != nil {
		t.Fatalf("a False Stalled condition is present: %v", conds)
	}
	if !meta.IsStatusConditionTrue(conds, Reconciling) {
		t.Fatalf("Reconciling=True is missing: %v", conds)
	}
	Set(&conds, metav1.Condition{Type: Stalled, Status: metav1.ConditionTrue, Reason: "Conflict"})
	Set(&conds, metav1.Condition{Type: Reconciling, Status: metav1.ConditionFalse, Reason: "Conflict"})
	if meta.FindStatusCondition(conds, Reconciling) != nil || !meta.IsStatusConditionTrue(conds, Stalled) {
		t.Fatalf("want Stalled alone, got %v", conds)
	}
	if c := meta.FindStatusCondition(conds, "Ready"); c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("Ready=False must stay present: %v", conds)
	}
}
