package policy

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/transition"
)

func TestPolicyEventsRecordTransitionsOnly(t *testing.T) {
	cluster := func(name string, phase policyv1alpha1.Phase, enf policyv1alpha1.Enforcement) policyv1alpha1.ClusterPolicyStatus {
		return policyv1alpha1.ClusterPolicyStatus{Cluster: name, Form: policyv1alpha1.FormNetworkPolicy, Phase: phase, Enforcement: enf, Message: "msg-" + name}
	}
	stalled := func(reason string) []metav1.Condition {
		return []metav1.Condition{{Type: policyv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: reason, Message: "stalled: " + reason}}
	}
	unsupported := cluster("c", policyv1alpha1.PhaseFailed, policyv1alpha1.EnforcementUnsupported)
	unsupported.Rules = []policyv1alpha1.RuleEnforcement{
		{Direction: policyv1alpha1.DirectionIngress, Rule: "deny-web", Enforcement: policyv1alpha1.EnforcementUnsupported, Reason: "DenyUnsupported"},
		{Direction: policyv1alpha1.DirectionEgress, Rule: "ok", Enforcement: policyv1alpha1.EnforcementExact},
	}
	status := func(conds []metav1.Condition, clusters ...policyv1alpha1.ClusterPolicyStatus) *policyv1alpha1.GlobalNetworkPolicyStatus {
		return &policyv1alpha1.GlobalNetworkPolicyStatus{Conditions: conds, Clusters: clusters}
	}
	for _, tc := range []struct {
		name          string
		before, after *policyv1alpha1.GlobalNetworkPolicyStatus
		want          []transition.Event
	}{{
		name:   "pending to realized in one cluster",
		before: status(nil, cluster("a", policyv1alpha1.PhasePending, policyv1alpha1.EnforcementExact), cluster("b", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact)),
		after:  status(nil, cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact), cluster("b", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact)),
		want:   []transition.Event{{Type: "Normal", Reason: "Realized", Message: "Realized in cluster a (form NetworkPolicy, enforcement Exact).", Cluster: "a"}},
	}, {
		name:   "a new cluster realized at once",
		before: status(nil),
		after:  status(nil, cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementRestricted)),
		want:   []transition.Event{{Type: "Normal", Reason: "Realized", Message: "Realized in cluster a (form NetworkPolicy, enforcement Restricted).", Cluster: "a"}},
	}, {
		name:   "two clusters realized in one pass: an Event each, about its cluster",
		before: status(nil),
		after:  status(nil, cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact), cluster("b", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact)),
		want: []transition.Event{
			{Type: "Normal", Reason: "Realized", Message: "Realized in cluster a (form NetworkPolicy, enforcement Exact).", Cluster: "a"},
			{Type: "Normal", Reason: "Realized", Message: "Realized in cluster b (form NetworkPolicy, enforcement Exact).", Cluster: "b"},
		},
	}, {
		name:   "the same state again records nothing",
		before: status(stalled("UnknownTier"), cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact), cluster("b", policyv1alpha1.PhaseFailed, policyv1alpha1.EnforcementExact), unsupported),
		after:  status(stalled("UnknownTier"), cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact), cluster("b", policyv1alpha1.PhaseFailed, policyv1alpha1.EnforcementExact), unsupported),
	}, {
		name:   "failed, with the member's message",
		before: status(nil, cluster("b", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact)),
		after:  status(nil, cluster("b", policyv1alpha1.PhaseFailed, policyv1alpha1.EnforcementExact)),
		want:   []transition.Event{{Type: "Warning", Reason: "RealizationFailed", Message: "Cluster b (form NetworkPolicy): msg-b", Cluster: "b"}},
	}, {
		name:   "unsupported says the rules, not also Failed",
		before: status(nil, cluster("c", policyv1alpha1.PhasePending, policyv1alpha1.EnforcementExact)),
		after:  status(nil, unsupported),
		want:   []transition.Event{{Type: "Warning", Reason: "EnforcementUnsupported", Message: "Cluster c (form NetworkPolicy) cannot hold the policy: ingress rule deny-web (DenyUnsupported). msg-c", Cluster: "c"}},
	}, {
		name:   "stalled",
		before: status(nil, cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact)),
		after:  status(stalled("UnknownTier")),
		want:   []transition.Event{{Type: "Warning", Reason: "UnknownTier", Message: "stalled: UnknownTier"}},
	}, {
		name:   "stalled, then stalled for another reason",
		before: status(stalled("UnknownTier")),
		after:  status(stalled("NoClusters")),
		want:   []transition.Event{{Type: "Warning", Reason: "NoClusters", Message: "stalled: NoClusters"}},
	}, {
		name:   "realized to pending records nothing",
		before: status(nil, cluster("a", policyv1alpha1.PhaseRealized, policyv1alpha1.EnforcementExact)),
		after:  status(nil, cluster("a", policyv1alpha1.PhasePending, policyv1alpha1.EnforcementExact)),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := policyEvents(tc.before, tc.after); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("policyEvents:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
