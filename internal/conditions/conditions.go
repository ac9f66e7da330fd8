// Package conditions sets status conditions the way kstatus, Flux and Argo CD read them.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reconciling and Stalled are "abnormal-true" conditions: they are present only while True.
const (
	Reconciling = "Reconciling"
	Stalled     = "Stalled"
)

// Set sets c in conds, except that a Reconciling or Stalled condition that is not True is
// removed instead: Flux's checks allow only one of the two to be present at a time, and kstatus
// reads their absence as "not reconciling, not stalled".
func Set(conds *[]metav1.Condition, c metav1.Condition) {
	if (c.Type == Reconciling || c.Type == Stalled) && c.Status != metav1.ConditionTrue {
		meta.RemoveStatusCondition(conds, c.Type)
		return
	}
	meta.SetStatusCondition(conds, c)
}

// TurnedTrue returns condition t of after when it is True and in before was not, or was True with
// another reason: a transition worth one Event. It returns nil while the condition stays as it was.
func TurnedTrue(before, after []metav1.Condition, t string) *metav1.Condition {
	c := meta.FindStatusCondition(after, t)
	if c == nil || c.Status != metav1.ConditionTrue {
		return nil
	}
	if old := meta.FindStatusCondition(before, t); old != nil && old.Status == metav1.ConditionTrue && old.Reason == c.Reason {
		return nil
	}
	return c
}
