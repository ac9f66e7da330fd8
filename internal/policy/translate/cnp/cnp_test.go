package cnp

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

func gnp(name string) *policyv1alpha1.GlobalNetworkPolicy {
	g := &policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}}}}
	g.Name = name
	return g
}

// A policy over the API's limits is split into consecutive rules and policies, never cut.
func TestSplitsAtTheLimits(t *testing.T) {
	var rules []translate.Rule
	for i := range 60 {
		r := translate.Rule{Name: fmt.Sprintf("r%d", i), Action: policyv1alpha1.ActionDrop}
		for j := range 30 {
			r.Addresses = append(r.Addresses, netip.AddrFrom4([4]byte{10, byte(i), byte(j), 1}))
			r.Selectors = append(r.Selectors, translate.Selectors{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"n": fmt.Sprint(j)}}})
		}
		rules = append(rules, r)
	}
	res := Translate([]translate.Policy{
		{GNP: gnp("first"), Tier: "securityops", TierPriority: 100, Egress: rules},
		{GNP: gnp("second"), Tier: "application", TierPriority: 250, Egress: rules[:1]},
	})
	if len(res.Policies) != 2 || res.Policies[0].Enforcement != policyv1alpha1.EnforcementExact {
		t.Fatalf("enforcement: %+v", res.Policies)
	}
	var prio []int32
	nets, pods := 0, 0
	for _, o := range res.Objects {
		c := o.(*npav1beta1.ClusterNetworkPolicy)
		prio = append(prio, c.Spec.Priority)
		if len(c.Spec.Egress) > Limit {
			t.Errorf("%s has %d egress rules", c.Name, len(c.Spec.Egress))
		}
		for _, r := range c.Spec.Egress {
			if len(r.To) > Limit {
				t.Errorf("%s rule %s has %d peers", c.Name, r.Name, len(r.To))
			}
			for _, p := range r.To {
				if len(p.Networks) > Limit {
					t.Errorf("%s rule %s has a peer with %d networks", c.Name, r.Name, len(p.Networks))
				}
				nets += len(p.Networks)
				if p.Pods != nil {
					pods++
				}
			}
		}
	}
	if nets != 60*30+30 || pods != 60*30+30 {
		t.Errorf("got %d networks and %d pod peers, want %d and %d: nothing may be dropped", nets, pods, 60*30+30, 60*30+30)
	}
	for i := 1; i < len(prio); i++ {
		if prio[i] != prio[i-1]+1 {
			t.Errorf("priorities not consecutive: %v", prio)
		}
	}
	if len(res.Objects) < 4 {
		t.Errorf("want the first policy split into several objects, got %d objects", len(res.Objects))
	}
}

func TestReportsWhatItCannotHold(t *testing.T) {
	block := []policyv1alpha1.IPBlock{{CIDR: "192.0.2.0/24"}}
	res := Translate([]translate.Policy{
		{GNP: gnp("reject"), Tier: "application", TierPriority: 250, Ingress: []translate.Rule{{Name: "r", Action: policyv1alpha1.ActionReject, Selectors: []translate.Selectors{{}}}}},
		{GNP: gnp("drop-from-block"), Tier: "application", TierPriority: 250, Ingress: []translate.Rule{{Name: "r", Action: policyv1alpha1.ActionDrop, Blocks: block}}},
		{GNP: gnp("allow-from-block"), Tier: "application", TierPriority: 250, Ingress: []translate.Rule{{Name: "r", Action: policyv1alpha1.ActionAllow, Blocks: block, Selectors: []translate.Selectors{{}}}}},
	})
	want := []struct {
		enf    policyv1alpha1.Enforcement
		reason string
	}{
		{policyv1alpha1.EnforcementRestricted, policyv1alpha1.RejectAsDropReason},
		{policyv1alpha1.EnforcementUnsupported, policyv1alpha1.IngressAddressesNotExpressibleReason},
		{policyv1alpha1.EnforcementRestricted, policyv1alpha1.IngressAddressesNotExpressibleReason},
	}
	for i, w := range want {
		got := res.Policies[i]
		if got.Enforcement != w.enf || len(got.Rules) != 1 || got.Rules[0].Reason != w.reason {
			t.Errorf("%s: got %+v, want %s %s", got.Policy, got, w.enf, w.reason)
		}
	}
	if len(res.Objects) != 2 {
		t.Errorf("want 2 objects (the unsupported policy written as nothing), got %d", len(res.Objects))
	}
}
