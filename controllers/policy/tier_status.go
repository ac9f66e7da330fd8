package policy

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/conditions"
)

// setTierStatus fills a Tier's status from the policies that exist: how many use the tier, and
// Ready. A tier has nothing to wait for and nothing that can fail on the hub (ties in priority are
// broken by name; a member form that cannot hold the tier's priority is reported on each policy),
// so Ready is True once the manager has seen the tier's spec.
func setTierStatus(t *policyv1alpha1.Tier, policies []policyv1alpha1.GlobalNetworkPolicy) {
	n := int32(0)
	for i := range policies {
		if policies[i].TierName() == t.Name && policies[i].DeletionTimestamp.IsZero() {
			n++
		}
	}
	t.Status.Policies = n
	msg := fmt.Sprintf("Tier %s orders %d GlobalNetworkPolicies at priority %d.", t.Name, n, t.Spec.Priority)
	if t.IsBaseline() {
		msg = fmt.Sprintf("Tier %s orders %d GlobalNetworkPolicies after the namespaces' own NetworkPolicies.", t.Name, n)
	}
	conditions.Set(&t.Status.Conditions, metav1.Condition{Type: policyv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: policyv1alpha1.TierAcceptedReason, Message: msg, ObservedGeneration: t.Generation})
	t.Status.ObservedGeneration = t.Generation
}
