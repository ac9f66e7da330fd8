package agentconfig

import (
	"fmt"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/conditions"
)

// SinceAnnotation on a ClusterWork records when it got its revision, for the progress deadline.
const SinceAnnotation = "agent.meridian.io/revision-since"

// StateFromWork reads one cluster's rollout state from its ClusterWork (nil: none yet).
func StateFromWork(name, revision string, w *fleetv1alpha1.ClusterWork) ClusterState {
	s := ClusterState{Name: name}
	if w == nil || w.Annotations[RevisionAnnotation] != revision {
		return s
	}
	s.HasRevision = true
	s.Since, _ = time.Parse(time.RFC3339, w.Annotations[SinceAnnotation])
	if w.Status.ObservedGeneration != w.Generation {
		return s
	}
	for _, o := range w.Status.Objects {
		if o.Kind != "DaemonSet" || o.Name != AgentName || o.State != fleetv1alpha1.ObjectApplied {
			continue
		}
		v := map[string]int64{}
		for _, f := range o.Feedback {
			n, err := strconv.ParseInt(f.Value, 10, 64)
			if err == nil {
				v[f.Name] = n
			}
		}
		gen, ok := v[FeedbackGeneration]
		s.Observed = ok && gen == o.AppliedGeneration && v[FeedbackObservedGeneration] == gen
		s.Desired, s.Updated, s.Ready = int32(v[FeedbackDesired]), int32(v[FeedbackUpdated]), int32(v[FeedbackReady])
	}
	return s
}

// ClusterStatus is one cluster's line of the AgentConfig's status; wave counts from 1.
func ClusterStatus(s ClusterState, wave int, version, configHash string, plan Plan, w *fleetv1alpha1.ClusterWork) fleetv1alpha1.AgentClusterStatus {
	out := fleetv1alpha1.AgentClusterStatus{Cluster: s.Name, Wave: int32(wave), Desired: s.Desired, Updated: s.Updated, Ready: s.Ready}
	if s.Agents != nil {
		// The agents' own reports, as aggregated on the MemberCluster, over the DaemonSet's view.
		out.Desired, out.Updated, out.Ready, out.Stale = s.Agents.Desired, s.Agents.UpToDate, s.Agents.Ready, s.Agents.Stale
	}
	if s.HasRevision {
		out.Version, out.ConfigHash = version, configHash
	}
	switch {
	case plan.Failed[s.Name] != "":
		out.Phase, out.Message = fleetv1alpha1.AgentClusterFailed, plan.Failed[s.Name]
	case s.Done():
		out.Phase = fleetv1alpha1.AgentClusterUpdated
	case s.HasRevision:
		out.Phase = fleetv1alpha1.AgentClusterProgressing
		out.Message = fmt.Sprintf("%d/%d agents updated, %d ready.", out.Updated, out.Desired, out.Ready)
		if s.Agents == nil {
			out.Message += " Waiting for the agents' own reports of this revision."
		} else if s.Agents.Message != "" {
			out.Message += " " + s.Agents.Message
		}
		if c := meta.FindStatusCondition(workConditions(w), fleetv1alpha1.AppliedCondition); c != nil && c.Status == metav1.ConditionUnknown {
			out.Phase, out.Message = fleetv1alpha1.AgentClusterUnreachable, c.Message
		}
	default:
		out.Phase = fleetv1alpha1.AgentClusterPending
		out.Message = fmt.Sprintf("Waiting for wave %d of %d; the cluster keeps its previous agents.", wave, len(plan.Waves))
	}
	return out
}

func workConditions(w *fleetv1alpha1.ClusterWork) []metav1.Condition {
	if w == nil {
		return nil
	}
	return w.Status.Conditions
}

// SetConditions sets Ready, Reconciling, Stalled, Progressing and Degraded from the plan, following
// kstatus: Ready is False whenever Reconciling or Stalled is True, and those two are never both True
// (internal/conditions removes the one that is not). Lost are the clusters older AgentConfigs hold:
// waiting will not give them to this one, so it is Stalled (reason AgentConfigConflict) until a
// person narrows a placement, even while the clusters it holds roll out (Progressing says how
// far). Contested are clusters this one holds while younger AgentConfigs select them too: it keeps
// them and stays Ready, and Degraded=False with reason AgentConfigConflict names the younger ones.
func SetConditions(ac *fleetv1alpha1.AgentConfig, plan Plan, lost, contested []Conflict) {
	gen := ac.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&ac.Status.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	degradedReason, degradedMsg := plan.Reason, plan.Message
	degraded := len(plan.Failed) > 0
	if len(lost) > 0 {
		degraded, degradedReason, degradedMsg = true, fleetv1alpha1.AgentConfigConflictReason, lostMessage(lost)
	}
	switch {
	case degraded:
		set(fleetv1alpha1.DegradedCondition, metav1.ConditionTrue, degradedReason, degradedMsg)
	case len(contested) > 0:
		// This one keeps what it holds and works: the conflict is said here, not as Degraded=True
		// beside Ready=True (a negative condition True while Ready is True fails Flux's checks).
		set(fleetv1alpha1.DegradedCondition, metav1.ConditionFalse, fleetv1alpha1.AgentConfigConflictReason, contestedMessage(contested))
	default:
		set(fleetv1alpha1.DegradedCondition, metav1.ConditionFalse, fleetv1alpha1.HealthyReason, "No cluster failed and no other AgentConfig competes for a cluster.")
	}
	progressing := metav1.ConditionFalse
	if plan.Phase == fleetv1alpha1.RolloutProgressing {
		progressing = metav1.ConditionTrue
	}
	set(fleetv1alpha1.ProgressingCondition, progressing, plan.Reason, plan.Message)

	stalled, stalledReason, stalledMsg := plan.Phase == fleetv1alpha1.RolloutStalled, plan.Reason, plan.Message
	if len(lost) > 0 {
		stalled, stalledReason, stalledMsg = true, fleetv1alpha1.AgentConfigConflictReason, lostMessage(lost)
		if plan.Phase == fleetv1alpha1.RolloutStalled {
			stalledMsg += " " + plan.Message
		}
	}
	switch {
	case stalled:
		set(fleetv1alpha1.StalledCondition, metav1.ConditionTrue, stalledReason, stalledMsg)
		set(fleetv1alpha1.ReconcilingCondition, metav1.ConditionFalse, stalledReason, "")
		set(fleetv1alpha1.ReadyCondition, metav1.ConditionFalse, stalledReason, stalledMsg)
	case plan.Phase == fleetv1alpha1.RolloutComplete:
		set(fleetv1alpha1.StalledCondition, metav1.ConditionFalse, plan.Reason, "")
		set(fleetv1alpha1.ReconcilingCondition, metav1.ConditionFalse, plan.Reason, "")
		set(fleetv1alpha1.ReadyCondition, metav1.ConditionTrue, plan.Reason, plan.Message)
	default: // Progressing, Paused
		set(fleetv1alpha1.StalledCondition, metav1.ConditionFalse, plan.Reason, "")
		set(fleetv1alpha1.ReconcilingCondition, metav1.ConditionTrue, plan.Reason, plan.Message)
		set(fleetv1alpha1.ReadyCondition, metav1.ConditionFalse, plan.Reason, plan.Message)
	}
}

// LostClusterStatus is the line of a cluster that an older AgentConfig holds: no wave, nothing
// written there by this one.
func LostClusterStatus(cluster, holder string) fleetv1alpha1.AgentClusterStatus {
	return fleetv1alpha1.AgentClusterStatus{Cluster: cluster, Phase: fleetv1alpha1.AgentClusterConflict,
		Message: fmt.Sprintf("The older AgentConfig %s holds this cluster; this one leaves it alone.", holder)}
}
