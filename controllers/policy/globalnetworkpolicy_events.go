package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/transition"
	"github.com/meridian-io/meridian/internal/conditions"
)

// Reasons of a GlobalNetworkPolicy's Events (besides the Stalled condition's reasons, which a
// Stalled Event carries).
const (
	// RealizedEventReason: the policy turned Realized in a cluster.
	RealizedEventReason = "Realized"
	// RealizationFailedEventReason: the policy's phase in a cluster turned Failed.
	RealizationFailedEventReason = "RealizationFailed"
	// EnforcementUnsupportedEventReason: a cluster's form turned unable to hold the policy.
	EnforcementUnsupportedEventReason = "EnforcementUnsupported"
)

// policyEvents says which Events the change of a policy's status from before to after produces:
// one per transition a user acts on (a cluster turning Realized, Failed or Unsupported; the
// policy turning Stalled, or Stalled for another reason), none for a status that stays as it was.
func policyEvents(before, after *policyv1alpha1.GlobalNetworkPolicyStatus) []transition.Event {
	var out []transition.Event
	was := map[string]policyv1alpha1.ClusterPolicyStatus{}
	for _, c := range before.Clusters {
		was[c.Cluster] = c
	}
	for _, c := range after.Clusters {
		old, known := was[c.Cluster]
		switch {
		case c.Enforcement == policyv1alpha1.EnforcementUnsupported:
			if !known || old.Enforcement != policyv1alpha1.EnforcementUnsupported {
				msg := fmt.Sprintf("Cluster %s (form %s) cannot hold the policy", c.Cluster, c.Form)
				if rules := unsupportedRules(c.Rules); rules != "" {
					msg += ": " + rules
				}
				out = append(out, transition.Event{Type: corev1.EventTypeWarning, Reason: EnforcementUnsupportedEventReason, Message: msg + ". " + c.Message, Cluster: c.Cluster})
			}
		case c.Phase == policyv1alpha1.PhaseFailed:
			if !known || old.Phase != policyv1alpha1.PhaseFailed {
				out = append(out, transition.Event{Type: corev1.EventTypeWarning, Reason: RealizationFailedEventReason,
					Message: fmt.Sprintf("Cluster %s (form %s): %s", c.Cluster, c.Form, c.Message), Cluster: c.Cluster})
			}
		case c.Phase == policyv1alpha1.PhaseRealized:
			if !known || old.Phase != policyv1alpha1.PhaseRealized {
				out = append(out, transition.Event{Type: corev1.EventTypeNormal, Reason: RealizedEventReason,
					Message: fmt.Sprintf("Realized in cluster %s (form %s, enforcement %s).", c.Cluster, c.Form, c.Enforcement), Cluster: c.Cluster})
			}
		}
	}
	if s := conditions.TurnedTrue(before.Conditions, after.Conditions, policyv1alpha1.StalledCondition); s != nil {
		out = append(out, transition.Event{Type: corev1.EventTypeWarning, Reason: s.Reason, Message: s.Message})
	}
	return out
}

// unsupportedRules names the rules a form cannot hold, with their reasons.
func unsupportedRules(rules []policyv1alpha1.RuleEnforcement) string {
	var parts []string
	for _, r := range rules {
		if r.Enforcement == policyv1alpha1.EnforcementUnsupported {
			parts = append(parts, fmt.Sprintf("%s rule %s (%s)", strings.ToLower(string(r.Direction)), r.Rule, r.Reason))
		}
	}
	return strings.Join(parts, ", ")
}
