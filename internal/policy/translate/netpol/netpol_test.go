package netpol

import (
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

func pol(name string, baseline bool, ns *metav1.LabelSelector, rules ...translate.Rule) translate.Policy {
	g := &policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{AppliedTo: policyv1alpha1.AppliedTo{NamespaceSelector: ns}}}
	g.Name = name
	return translate.Policy{GNP: g, Baseline: baseline, Egress: rules}
}

func TestWritesOnlyWhatItCanHold(t *testing.T) {
	shop := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}
	allow := translate.Rule{Name: "a", Action: policyv1alpha1.ActionAllow,
		Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.1")}, Selectors: []translate.Selectors{{}}}
	empty := translate.Rule{Name: "nothing", Action: policyv1alpha1.ActionAllow, Blocks: []policyv1alpha1.IPBlock{{CIDR: "10.0.0.0/8", Except: []string{"10.0.0.0/8"}}}}
	drop := translate.Rule{Name: "d", Action: policyv1alpha1.ActionDrop, Selectors: []translate.Selectors{{}}}
	pass := translate.Rule{Name: "p", Action: policyv1alpha1.ActionPass, Selectors: []translate.Selectors{{}}}
	res := Translate([]translate.Policy{
		pol("allow", false, shop, allow, empty),
		pol("drop", false, nil, drop),
		pol("pass", false, nil, pass),
		pol("baseline-pass", true, nil, pass),
	}, []translate.Namespace{{Name: "shop", Labels: map[string]string{"team": "shop"}}, {Name: "pay", Labels: map[string]string{"team": "pay"}}})

	want := map[string]struct {
		enf    policyv1alpha1.Enforcement
		reason string
	}{
		"allow":         {policyv1alpha1.EnforcementRestricted, policyv1alpha1.IsolationReason},
		"drop":          {policyv1alpha1.EnforcementUnsupported, policyv1alpha1.DenyNotExpressibleReason},
		"pass":          {policyv1alpha1.EnforcementUnsupported, policyv1alpha1.OrderNotExpressibleReason},
		"baseline-pass": {policyv1alpha1.EnforcementExact, ""},
	}
	for _, e := range res.Policies {
		w := want[e.Policy]
		if e.Enforcement != w.enf || (w.reason != "" && e.Rules[0].Reason != w.reason) {
			t.Errorf("%s: got %+v, want %s %s", e.Policy, e, w.enf, w.reason)
		}
	}
	if len(res.Objects) != 1 {
		t.Fatalf("want one NetworkPolicy (allow, in shop only), got %d", len(res.Objects))
	}
	np := res.Objects[0].(*networkingv1.NetworkPolicy)
	if np.Namespace != "shop" || np.Name != "meridian-allow" || len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeEgress {
		t.Errorf("object: %s/%s %v", np.Namespace, np.Name, np.Spec.PolicyTypes)
	}
	// The rule whose block is all excepts matches nothing: written as no rule, never as a rule
	// without peers (which would allow every peer).
	if len(np.Spec.Egress) != 1 || len(np.Spec.Egress[0].To) != 2 || np.Spec.Egress[0].To[1].IPBlock.CIDR != "10.9.0.1/32" {
		t.Errorf("egress: %+v", np.Spec.Egress)
	}
}
