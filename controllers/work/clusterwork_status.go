package work

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/conditions"
	"github.com/meridian-io/meridian/internal/work"
)

// setStatus computes a Work's status from what the syncer reported for each object. It follows
// kstatus: Ready is False while Reconciling or Stalled is True, and those two are never both True;
// observedGeneration moves only after a pass without error, and Ready is never True after one
// with an error (a prune that failed included).
func setStatus(w *fleetv1alpha1.ClusterWork, res work.Result) {
	objects, syncErr := res.Objects, res.Err
	w.Status.Objects = objects
	var applied, pending, conflicts, failed, available int
	var firstProblem string
	for _, o := range objects {
		switch o.State {
		case fleetv1alpha1.ObjectApplied:
			applied++
			if o.Health == "Current" {
				available++
			}
		case fleetv1alpha1.ObjectPending:
			pending++
		case fleetv1alpha1.ObjectConflict:
			conflicts++
		case fleetv1alpha1.ObjectFailed:
			failed++
		}
		if o.State != fleetv1alpha1.ObjectApplied && firstProblem == "" {
			firstProblem = o.Message
		}
	}
	n := len(objects)
	w.Status.Summary = summary(n, applied, pending, conflicts, failed)

	switch {
	case applied == n:
		set(w, fleetv1alpha1.AppliedCondition, metav1.ConditionTrue, fleetv1alpha1.AllAppliedReason, fmt.Sprintf("All %d objects are applied to the member.", n))
	case conflicts > 0:
		set(w, fleetv1alpha1.AppliedCondition, metav1.ConditionFalse, fleetv1alpha1.ConflictReason, fmt.Sprintf("%d of %d objects are in conflict and were left untouched. First: %s", conflicts, n, firstConflict(objects)))
	case failed > 0:
		set(w, fleetv1alpha1.AppliedCondition, metav1.ConditionFalse, fleetv1alpha1.ApplyFailedReason, fmt.Sprintf("The member refused %d of %d objects. First: %s", failed, n, firstOf(objects, fleetv1alpha1.ObjectFailed)))
	default:
		msg := fmt.Sprintf("%d of %d objects are applied. %s", applied, n, firstProblem)
		if syncErr != nil {
			msg = fmt.Sprintf("%d of %d objects are applied; the member did not answer: %v", applied, n, syncErr)
		}
		set(w, fleetv1alpha1.AppliedCondition, metav1.ConditionFalse, fleetv1alpha1.ApplyPendingReason, msg)
	}

	if available == n {
		set(w, fleetv1alpha1.AvailableCondition, metav1.ConditionTrue, fleetv1alpha1.AllAvailableReason, fmt.Sprintf("All %d objects are available in the member.", n))
	} else {
		set(w, fleetv1alpha1.AvailableCondition, metav1.ConditionFalse, fleetv1alpha1.ProgressingReason, fmt.Sprintf("%d of %d objects are available. %s", available, n, firstUnavailable(objects)))
	}

	stalled := conflicts > 0 || failed > 0
	if stalled {
		reason := fleetv1alpha1.ConflictReason
		if conflicts == 0 {
			reason = fleetv1alpha1.ApplyFailedReason
		}
		applied := meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
		set(w, fleetv1alpha1.DegradedCondition, metav1.ConditionTrue, reason, applied.Message)
		set(w, fleetv1alpha1.StalledCondition, metav1.ConditionTrue, reason, applied.Message)
		set(w, fleetv1alpha1.ReconcilingCondition, metav1.ConditionFalse, reason, "Progress needs a change to the Work or the member.")
	} else {
		set(w, fleetv1alpha1.DegradedCondition, metav1.ConditionFalse, fleetv1alpha1.HealthyReason, "No object is in conflict or refused.")
		set(w, fleetv1alpha1.StalledCondition, metav1.ConditionFalse, fleetv1alpha1.HealthyReason, "No object is in conflict or refused.")
		if applied == n && available == n {
			set(w, fleetv1alpha1.ReconcilingCondition, metav1.ConditionFalse, fleetv1alpha1.AllAvailableReason, "The member holds the Work.")
		} else {
			c := meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
			if applied == n {
				c = meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AvailableCondition)
			}
			set(w, fleetv1alpha1.ReconcilingCondition, metav1.ConditionTrue, c.Reason, c.Message)
		}
	}

	if applied == n && available == n {
		set(w, fleetv1alpha1.ReadyCondition, metav1.ConditionTrue, fleetv1alpha1.AllAvailableReason, fmt.Sprintf("All %d objects are applied and available.", n))
	} else {
		c := meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
		if c.Status == metav1.ConditionTrue {
			c = meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AvailableCondition)
		}
		set(w, fleetv1alpha1.ReadyCondition, metav1.ConditionFalse, c.Reason, c.Message)
	}
	if syncErr == nil {
		w.Status.ObservedGeneration = w.Generation
		return
	}
	// The pass failed: the Work is not done, whatever its objects say.
	if meta.IsStatusConditionTrue(w.Status.Conditions, fleetv1alpha1.StalledCondition) {
		return // Ready is False already, and Reconciling may not join Stalled
	}
	reason, msg := fleetv1alpha1.ApplyPendingReason, fmt.Sprintf("%d of %d objects are applied; the member did not answer: %v", applied, n, syncErr)
	if res.PruneErr != nil {
		reason, msg = fleetv1alpha1.PruneFailedReason, fmt.Sprintf("Removing objects the Work no longer lists failed; retrying: %v", res.PruneErr)
	}
	set(w, fleetv1alpha1.ReconcilingCondition, metav1.ConditionTrue, reason, msg)
	set(w, fleetv1alpha1.ReadyCondition, metav1.ConditionFalse, reason, msg)
}

// setNotConnected reports that the Work cannot reach its member; object states stay as last seen.
func setNotConnected(w *fleetv1alpha1.ClusterWork, reason, message string) {
	set(w, fleetv1alpha1.AppliedCondition, metav1.ConditionUnknown, reason, message)
	set(w, fleetv1alpha1.ReadyCondition, metav1.ConditionFalse, reason, message)
	set(w, fleetv1alpha1.ReconcilingCondition, metav1.ConditionTrue, reason, message)
	set(w, fleetv1alpha1.StalledCondition, metav1.ConditionFalse, reason, "Waiting for the member to come back.")
	if meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AvailableCondition) == nil {
		set(w, fleetv1alpha1.AvailableCondition, metav1.ConditionUnknown, reason, message)
	}
	if meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.DegradedCondition) == nil {
		set(w, fleetv1alpha1.DegradedCondition, metav1.ConditionUnknown, reason, message)
	}
}

func set(w *fleetv1alpha1.ClusterWork, t string, s metav1.ConditionStatus, reason, msg string) {
	conditions.Set(&w.Status.Conditions, metav1.Condition{
		Type: t, Status: s, Reason: reason, Message: strings.TrimSpace(msg), ObservedGeneration: w.Generation,
	})
}

func summary(n, applied, pending, conflicts, failed int) string {
	s := fmt.Sprintf("%d/%d applied", applied, n)
	for _, p := range []struct {
		n    int
		what string
	}{{pending, "pending"}, {conflicts, "conflict"}, {failed, "failed"}} {
		if p.n > 0 {
			s += fmt.Sprintf(", %d %s", p.n, p.what)
		}
	}
	return s
}

func firstConflict(objects []fleetv1alpha1.ObjectStatus) string {
	return firstOf(objects, fleetv1alpha1.ObjectConflict)
}

func firstOf(objects []fleetv1alpha1.ObjectStatus, state fleetv1alpha1.ObjectState) string {
	for _, o := range objects {
		if o.State == state {
			return o.Message
		}
	}
	return ""
}

func firstUnavailable(objects []fleetv1alpha1.ObjectStatus) string {
	for _, o := range objects {
		if o.State == fleetv1alpha1.ObjectApplied && o.Health != "Current" {
			return fmt.Sprintf("%s %s is %s: %s", o.Kind, o.Name, o.Health, o.Message)
		}
	}
	return ""
}
