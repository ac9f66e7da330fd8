package fleet

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/conditions"
)

// setStatus computes a MemberCluster's status from what this pass found; passErr is the pass's
// error, nil when it succeeded. It is pure, so that every path of the reconciler leaves a true
// status: observedGeneration moves only after a pass that succeeded, and Ready is not True while
// it lags (kstatus).
func setStatus(m *fleetv1alpha1.MemberCluster, s *scope, now time.Time, refresh time.Duration, passErr error) {
	st := &m.Status
	before := st.DeepCopy()
	switch {
	case s.connReason != "":
		setCondition(m, fleetv1alpha1.ReachableCondition, metav1.ConditionFalse, s.connReason, s.connMessage)
	case !s.connected:
		setCondition(m, fleetv1alpha1.ReachableCondition, metav1.ConditionUnknown, fleetv1alpha1.ProbePendingReason,
			"The hub has not connected to the member yet.")
	case s.health.ProbeTime.IsZero():
		setCondition(m, fleetv1alpha1.ReachableCondition, metav1.ConditionUnknown, fleetv1alpha1.ProbePendingReason, s.health.Message)
	case s.health.Reachable:
		setCondition(m, fleetv1alpha1.ReachableCondition, metav1.ConditionTrue, s.health.Reason, s.health.Message)
	default:
		setCondition(m, fleetv1alpha1.ReachableCondition, metav1.ConditionFalse, s.health.Reason, s.health.Message)
	}

	if s.connected && s.health.Reachable {
		st.KubernetesVersion = s.health.KubernetesVersion
		st.Nodes = &fleetv1alpha1.NodeSummary{
			Total:   s.health.NodesTotal,
			Ready:   s.health.NodesReady,
			Summary: fmt.Sprintf("%d/%d", s.health.NodesReady, s.health.NodesTotal),
		}
	}
	// When the member is unreachable, version and nodes stay as last seen: the Reachable
	// condition says they may be stale.

	reachable := meta.FindStatusCondition(st.Conditions, fleetv1alpha1.ReachableCondition)
	switch reachable.Status {
	case metav1.ConditionTrue:
		setCondition(m, fleetv1alpha1.ReadyCondition, metav1.ConditionTrue, fleetv1alpha1.MemberReadyReason,
			fmt.Sprintf("The member runs Kubernetes %s with %d of %d nodes ready.", st.KubernetesVersion, st.Nodes.Ready, st.Nodes.Total))
	default:
		setCondition(m, fleetv1alpha1.ReadyCondition, reachable.Status, reachable.Reason, reachable.Message)
	}

	// Credentials the member cannot use need a person: Stalled, so that kstatus, Flux and Argo CD
	// read Failed rather than "in progress". An unreachable member or a Secret not written yet
	// (Cluster API writes it after the control plane) may still resolve by itself.
	switch reachable.Reason {
	case fleetv1alpha1.InvalidKubeconfigReason, fleetv1alpha1.UnauthorizedReason, fleetv1alpha1.ForbiddenReason:
		setCondition(m, fleetv1alpha1.StalledCondition, metav1.ConditionTrue, reachable.Reason, reachable.Message)
	default:
		setCondition(m, fleetv1alpha1.StalledCondition, metav1.ConditionFalse, reachable.Reason, "")
	}

	if passErr == nil {
		st.ObservedGeneration = m.Generation
	} else if st.ObservedGeneration != m.Generation {
		setCondition(m, fleetv1alpha1.ReadyCondition, metav1.ConditionFalse, fleetv1alpha1.ReconcileFailedReason,
			fmt.Sprintf("The hub could not act on the MemberCluster's current spec yet; retrying: %v", passErr))
	}

	// lastProbeTime moves with any other change of status, and otherwise once per refresh
	// interval, so that a healthy fleet does not write to the hub on every probe.
	if s.connected && !s.health.ProbeTime.IsZero() {
		before.LastProbeTime = st.LastProbeTime
		if st.LastProbeTime == nil || !equality.Semantic.DeepEqual(before, st) || now.Sub(st.LastProbeTime.Time) >= refresh {
			probed := metav1.NewTime(s.health.ProbeTime.Truncate(time.Second))
			st.LastProbeTime = &probed
		}
	}
}

func setCondition(m *fleetv1alpha1.MemberCluster, t string, status metav1.ConditionStatus, reason, message string) {
	conditions.Set(&m.Status.Conditions, metav1.Condition{
		Type:               t,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: m.Generation,
	})
}

func conditionStatus(m *fleetv1alpha1.MemberCluster, t string) metav1.ConditionStatus {
	if c := findCondition(m, t); c != nil {
		return c.Status
	}
	return ""
}

func findCondition(m *fleetv1alpha1.MemberCluster, t string) *metav1.Condition {
	return meta.FindStatusCondition(m.Status.Conditions, t)
}
