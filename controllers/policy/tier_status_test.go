package policy

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

func TestSetTierStatusCountsThePoliciesOfTheTier(t *testing.T) {
	now := metav1.Now()
	gnp := func(name, tier string) policyv1alpha1.GlobalNetworkPolicy {
		return policyv1alpha1.GlobalNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: policyv1alpha1.GlobalNetworkPolicySpec{Tier: tier}}
	}
	deleting := gnp("going", "platform")
	deleting.DeletionTimestamp = &now
	policies := []policyv1alpha1.GlobalNetworkPolicy{gnp("a", "platform"), gnp("b", ""), gnp("c", "application"), gnp("d", "platform"), deleting}

	for _, tc := range []struct {
		tier string
		want int32
	}{{"platform", 2}, {"application", 2}, {"baseline", 0}} {
		tier := &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: tc.tier, Generation: 3}, Spec: policyv1alpha1.TierSpec{Priority: 200}}
		setTierStatus(tier, policies)
		if tier.Status.Policies != tc.want {
			t.Errorf("%s: %d policies, want %d", tc.tier, tier.Status.Policies, tc.want)
		}
		c := meta.FindStatusCondition(tier.Status.Conditions, policyv1alpha1.ReadyCondition)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != 3 || tier.Status.ObservedGeneration != 3 {
			t.Errorf("%s: Ready %+v, observedGeneration %d; want True for generation 3", tc.tier, c, tier.Status.ObservedGeneration)
		}
		if len(tier.Status.Conditions) != 1 {
			t.Errorf("%s: conditions %+v, want Ready alone", tc.tier, tier.Status.Conditions)
		}
	}
}
