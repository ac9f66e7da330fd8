// Package member translates GlobalNetworkPolicies into Meridian's own member form,
// MemberNetworkPolicy: exact, one object per policy, ClusterSet peers as the member's selectors
// plus the other members' addresses.
package member

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// Translate writes every policy exactly.
func Translate(policies []translate.Policy) translate.Result {
	var res translate.Result
	for _, p := range policies {
		o, enf := TranslatePolicy(p)
		res.Objects = append(res.Objects, o)
		res.Policies = append(res.Policies, enf)
	}
	return res
}

// TranslatePolicy writes one policy; the form has no numbering (the agents order by the tier's
// and the policy's own priorities), so every policy translates alone.
func TranslatePolicy(p translate.Policy) (client.Object, translate.Enforcement) {
	mnp := &memberv1alpha1.MemberNetworkPolicy{
		Spec: memberv1alpha1.MemberNetworkPolicySpec{
			Tier: p.Tier, TierPriority: p.TierPriority, Baseline: p.Baseline,
			Priority: p.GNP.Spec.PriorityValue(), Policy: p.GNP.Name,
			AppliedTo: *p.GNP.Spec.AppliedTo.DeepCopy(),
			Ingress:   rules(p.Ingress), Egress: rules(p.Egress),
		},
	}
	mnp.SetGroupVersionKind(memberv1alpha1.GroupVersion.WithKind("MemberNetworkPolicy"))
	mnp.Name = p.GNP.Name
	return mnp, translate.Enforcement{Policy: p.GNP.Name, Enforcement: policyv1alpha1.EnforcementExact}
}

func rules(rs []translate.Rule) []memberv1alpha1.MemberRule {
	out := make([]memberv1alpha1.MemberRule, 0, len(rs))
	for _, r := range rs {
		mr := memberv1alpha1.MemberRule{Name: r.Name, Action: r.Action}
		for _, p := range r.Ports {
			mr.Ports = append(mr.Ports, *p.DeepCopy())
		}
		for _, s := range r.Selectors {
			mr.Peers = append(mr.Peers, memberv1alpha1.MemberPeer{NamespaceSelector: s.NamespaceSelector.DeepCopy(), PodSelector: translate.EveryPod(s.PodSelector)})
		}
		for _, b := range r.Blocks {
			mr.Peers = append(mr.Peers, memberv1alpha1.MemberPeer{IPBlock: &memberv1alpha1.MemberIPBlock{CIDR: b.CIDR, Except: append([]string(nil), b.Except...)}})
		}
		if len(r.Addresses) > 0 {
			peer := memberv1alpha1.MemberPeer{}
			for _, a := range r.Addresses {
				peer.Addresses = append(peer.Addresses, a.String())
			}
			mr.Peers = append(mr.Peers, peer)
		}
		out = append(out, mr)
	}
	return out
}
