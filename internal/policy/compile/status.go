package compile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/conditions"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// ClusterStatus reports the policy in one member from its enforcement and its Work as the hub
// has it (nil when not created yet or when nothing is written for an Unsupported policy).
func ClusterStatus(cluster string, form policyv1alpha1.Form, enf translate.Enforcement, w *fleetv1alpha1.ClusterWork) policyv1alpha1.ClusterPolicyStatus {
	s := policyv1alpha1.ClusterPolicyStatus{Cluster: cluster, Form: form, Enforcement: enf.Enforcement, Rules: enf.Rules, Phase: policyv1alpha1.PhasePending}
	if s.Enforcement == "" {
		s.Enforcement = policyv1alpha1.EnforcementExact
	}
	if !enf.Supported() {
		s.Phase = policyv1alpha1.PhaseFailed
		s.Message = "Nothing is written: the member's form cannot hold every rule without allowing what the policy denies (see rules)."
		return s
	}
	if w == nil {
		s.Message = "Waiting for the ClusterWork to be created."
		return s
	}
	s.Phase, s.Message = WorkPhase(w)
	realized, desired, ok := nodeCounts(w)
	if ok {
		s.NodesRealized, s.NodesDesired = &realized, &desired
	}
	if s.Phase != policyv1alpha1.PhaseRealized {
		return s
	}
	switch {
	case form == policyv1alpha1.FormMeridian && (!ok || desired == 0):
		// Meridian's form has no enforcer but Meridian's agents: objects in the member are not
		// a policy in force until an agent with a dataplane says it programmed them. The
		// other forms are enforced by the member's own implementation, which may not report.
		s.Phase, s.Message = policyv1alpha1.PhasePending, NoAgentReportsMessage
	case ok && realized < desired:
		// The objects are in the member, but not every node enforces them yet.
		s.Phase, s.Message = policyv1alpha1.PhasePending, fmt.Sprintf("%d of %d nodes enforce the policy.", realized, desired)
	}
	return s
}

// NoAgentReportsMessage is a member's message while its MemberNetworkPolicy is applied but no
// Meridian agent reports enforcing it: no agent runs, none is live, or the agents run without a
// dataplane (which write no realization).
const NoAgentReportsMessage = "No Meridian agent reports this policy yet: only Meridian's agents enforce this form (is an AgentConfig installing agents on this member? see docs/policy.md, Status)."

// AwaitingAgents says whether a member's status waits for Meridian's agents to report the policy.
func AwaitingAgents(c policyv1alpha1.ClusterPolicyStatus) bool {
	return c.Form == policyv1alpha1.FormMeridian && c.Phase == policyv1alpha1.PhasePending && c.Message == NoAgentReportsMessage
}

// nodeCounts sums the node counts the member's objects report through the Work's feedback; ok
// is false when none reports. An object that reports the generation its counts are about
// (Meridian's agents) counts no realized node while that is not the object's current generation.
func nodeCounts(w *fleetv1alpha1.ClusterWork) (realized, desired int32, ok bool) {
	for _, o := range w.Status.Objects {
		values := map[string]string{}
		for _, f := range o.Feedback {
			values[f.Name] = f.Value
		}
		r, rerr := strconv.ParseInt(values[NodesRealizedField], 10, 32)
		d, derr := strconv.ParseInt(values[NodesDesiredField], 10, 32)
		if rerr != nil && derr != nil {
			continue
		}
		ok = true
		if gen, seen := values[GenerationField]; seen && values[ObservedGenerationField] != gen {
			r = 0
		}
		realized += int32(r) // 0 when absent: the agents' status omits a zero
		desired += int32(d)
	}
	return realized, desired, ok
}

// WorkPhase reads a Work's conditions: Realized once it is applied for its current spec,
// Failed when the member refused an object or holds one Meridian does not own, Pending
// otherwise.
func WorkPhase(w *fleetv1alpha1.ClusterWork) (policyv1alpha1.Phase, string) {
	if w.Status.ObservedGeneration != w.Generation {
		return policyv1alpha1.PhasePending, "The work engine has not applied the latest objects yet."
	}
	if c := apimeta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.DegradedCondition); c != nil && c.Status == metav1.ConditionTrue {
		return policyv1alpha1.PhaseFailed, c.Message
	}
	if c := apimeta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition); c != nil && c.Status == metav1.ConditionTrue {
		return policyv1alpha1.PhaseRealized, ""
	}
	if c := apimeta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition); c != nil && c.Message != "" {
		return policyv1alpha1.PhasePending, c.Message
	}
	return policyv1alpha1.PhasePending, "The work engine has not applied the objects yet."
}

// Outcome is what a pass found beyond the clusters' own status.
type Outcome struct {
	// Unreachable members of the placement (their objects wait).
	Unreachable []string
	// Err is a terminal problem of the policy (unknown tier, invalid placement): Stalled.
	Reason, Message string
}

// SetStatus fills the policy's summary fields and conditions from the clusters' status (sorted
// here by name). Ready is True when every cluster realized the policy; Reconciling while some
// are pending; Stalled when a cluster failed or the policy itself is wrong. A False Reconciling
// or Stalled is removed, not kept (kstatus, as Flux checks it).
func SetStatus(g *policyv1alpha1.GlobalNetworkPolicy, clusters []policyv1alpha1.ClusterPolicyStatus, o Outcome) {
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].Cluster < clusters[j].Cluster })
	g.Status.Clusters = clusters
	realized, weakest := 0, policyv1alpha1.Enforcement("")
	var forms, pending, failed, noAgents []string
	for _, c := range clusters {
		forms = append(forms, c.Cluster+"="+string(c.Form))
		if weakest == "" || rank(c.Enforcement) > rank(weakest) {
			weakest = c.Enforcement
		}
		switch c.Phase {
		case policyv1alpha1.PhaseRealized:
			realized++
		case policyv1alpha1.PhaseFailed:
			failed = append(failed, c.Cluster)
		default:
			pending = append(pending, c.Cluster)
			if AwaitingAgents(c) {
				noAgents = append(noAgents, c.Cluster)
			}
		}
	}
	g.Status.Summary = fmt.Sprintf("%d/%d", realized, len(clusters))
	g.Status.Forms = strings.Join(forms, ",")
	g.Status.Enforcement = weakest

	// conditions.Set removes a Reconciling or Stalled that is not True (kstatus, as Flux checks it).
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		conditions.Set(&g.Status.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: g.Generation})
	}
	switch {
	case o.Reason != "":
		set(policyv1alpha1.StalledCondition, metav1.ConditionTrue, o.Reason, o.Message)
		set(policyv1alpha1.ReconcilingCondition, metav1.ConditionFalse, o.Reason, o.Message)
		set(policyv1alpha1.ReadyCondition, metav1.ConditionFalse, o.Reason, o.Message)
	case len(failed) > 0:
		reason := policyv1alpha1.ApplyFailedReason
		msg := fmt.Sprintf("The policy is not in force in %s: see status.clusters for why.", strings.Join(failed, ", "))
		for _, c := range clusters {
			if c.Phase == policyv1alpha1.PhaseFailed && c.Enforcement == policyv1alpha1.EnforcementUnsupported {
				reason = policyv1alpha1.UnsupportedReason
			}
		}
		set(policyv1alpha1.StalledCondition, metav1.ConditionTrue, reason, msg)
		set(policyv1alpha1.ReconcilingCondition, metav1.ConditionFalse, reason, msg)
		set(policyv1alpha1.ReadyCondition, metav1.ConditionFalse, reason, msg)
	case len(clusters) == 0:
		msg := "The placement selects no MemberCluster."
		set(policyv1alpha1.StalledCondition, metav1.ConditionFalse, policyv1alpha1.NoClustersReason, msg)
		set(policyv1alpha1.ReconcilingCondition, metav1.ConditionFalse, policyv1alpha1.NoClustersReason, msg)
		set(policyv1alpha1.ReadyCondition, metav1.ConditionTrue, policyv1alpha1.NoClustersReason, msg)
	case len(pending) > 0:
		reason, msg := policyv1alpha1.PendingReason, fmt.Sprintf("Waiting for %s to realize the policy.", strings.Join(pending, ", "))
		switch {
		case len(o.Unreachable) > 0:
			reason, msg = policyv1alpha1.MembersUnreachableReason, fmt.Sprintf("Waiting for %s to be reachable again.", strings.Join(o.Unreachable, ", "))
		case len(noAgents) > 0:
			reason = policyv1alpha1.NoAgentReportsReason
			msg += fmt.Sprintf(" No Meridian agent reports it yet in %s: the policy is written there in Meridian's form, which only Meridian's agents enforce.", strings.Join(noAgents, ", "))
		}
		set(policyv1alpha1.StalledCondition, metav1.ConditionFalse, reason, msg)
		set(policyv1alpha1.ReconcilingCondition, metav1.ConditionTrue, reason, msg)
		set(policyv1alpha1.ReadyCondition, metav1.ConditionFalse, reason, msg)
	default:
		msg := fmt.Sprintf("Realized in %d clusters.", realized)
		set(policyv1alpha1.StalledCondition, metav1.ConditionFalse, policyv1alpha1.RealizedReason, msg)
		set(policyv1alpha1.ReconcilingCondition, metav1.ConditionFalse, policyv1alpha1.RealizedReason, msg)
		set(policyv1alpha1.ReadyCondition, metav1.ConditionTrue, policyv1alpha1.RealizedReason, msg)
	}
}

func rank(e policyv1alpha1.Enforcement) int {
	switch e {
	case policyv1alpha1.EnforcementUnsupported:
		return 2
	case policyv1alpha1.EnforcementRestricted:
		return 1
	}
	return 0
}
