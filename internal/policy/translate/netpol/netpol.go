// Package netpol translates GlobalNetworkPolicies into Kubernetes NetworkPolicies, the last
// resort. NetworkPolicy only allows, has no order, and namespace owners can always add their own,
// which only add allows; so only policies whose every rule is Allow are written, and they are
// Restricted: the pods they select are isolated, so a connection no rule allows is denied instead
// of being handed to the namespace's own policies and the baseline tier.
package netpol

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// NamePrefix prefixes the NetworkPolicies Meridian writes: meridian-<policy> in every namespace
// the policy's appliedTo selects.
const NamePrefix = "meridian-"

// Translate writes the policies NetworkPolicy can hold without allowing what they deny.
func Translate(policies []translate.Policy, namespaces []translate.Namespace) translate.Result {
	var res translate.Result
	for _, p := range policies {
		objs, enf := TranslatePolicy(p, namespaces)
		res.Objects = append(res.Objects, objs...)
		res.Policies = append(res.Policies, enf)
	}
	return res
}

// TranslatePolicy writes one policy in the member's namespaces; NetworkPolicy has no order, so
// every policy translates alone.
func TranslatePolicy(p translate.Policy, namespaces []translate.Namespace) ([]client.Object, translate.Enforcement) {
	enf := translate.Enforcement{Policy: p.GNP.Name, Enforcement: policyv1alpha1.EnforcementExact}
	check := func(dir policyv1alpha1.Direction, rs []translate.Rule) {
		for _, r := range rs {
			switch r.Action {
			case policyv1alpha1.ActionDrop, policyv1alpha1.ActionReject:
				enf.Note(dir, r.Name, policyv1alpha1.EnforcementUnsupported, policyv1alpha1.DenyNotExpressibleReason,
					"NetworkPolicy cannot deny: namespace owners can allow what this rule denies; use a member with Antrea, the ClusterNetworkPolicy API or Meridian's agent")
			case policyv1alpha1.ActionPass:
				if !p.Baseline {
					enf.Note(dir, r.Name, policyv1alpha1.EnforcementUnsupported, policyv1alpha1.OrderNotExpressibleReason,
						"NetworkPolicy has no rule order, so it cannot hand connections to the namespace's policies; use a member with Antrea, the ClusterNetworkPolicy API or Meridian's agent")
				}
			}
		}
	}
	check(policyv1alpha1.DirectionIngress, p.Ingress)
	check(policyv1alpha1.DirectionEgress, p.Egress)
	if !enf.Supported() || p.Baseline {
		// A baseline policy of Allow (and Pass) rules changes nothing: what it matches is
		// allowed anyway after the baseline tier.
		return nil, enf
	}
	objs, err := objects(p, namespaces)
	if err != nil {
		for _, r := range p.Ingress {
			enf.Note(policyv1alpha1.DirectionIngress, r.Name, policyv1alpha1.EnforcementUnsupported, policyv1alpha1.InvalidSelectorReason, err.Error())
		}
		return nil, enf
	}
	if len(objs) > 0 {
		const msg = "NetworkPolicy isolates the pods it selects: connections no rule allows are denied instead of going to the namespace's own policies and the baseline tier"
		for _, r := range p.Ingress {
			enf.Note(policyv1alpha1.DirectionIngress, r.Name, policyv1alpha1.EnforcementRestricted, policyv1alpha1.IsolationReason, msg)
		}
		for _, r := range p.Egress {
			enf.Note(policyv1alpha1.DirectionEgress, r.Name, policyv1alpha1.EnforcementRestricted, policyv1alpha1.IsolationReason, msg)
		}
	}
	return objs, enf
}

func objects(p translate.Policy, namespaces []translate.Namespace) ([]client.Object, error) {
	nsSel := labels.Everything()
	if s := p.GNP.Spec.AppliedTo.NamespaceSelector; s != nil {
		var err error
		if nsSel, err = metav1.LabelSelectorAsSelector(s); err != nil {
			return nil, err
		}
	}
	var types []networkingv1.PolicyType
	if len(p.Ingress) > 0 {
		types = append(types, networkingv1.PolicyTypeIngress)
	}
	if len(p.Egress) > 0 {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	if len(types) == 0 {
		return nil, nil
	}
	var ingress []networkingv1.NetworkPolicyIngressRule
	for _, r := range p.Ingress {
		if peers, ports, ok := rule(r); ok {
			ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
		}
	}
	var egress []networkingv1.NetworkPolicyEgressRule
	for _, r := range p.Egress {
		if peers, ports, ok := rule(r); ok {
			egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
		}
	}
	var out []client.Object
	for _, ns := range namespaces {
		if !nsSel.Matches(labels.Set(ns.Labels)) {
			continue
		}
		np := &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *translate.EveryPod(p.GNP.Spec.AppliedTo.PodSelector),
			PolicyTypes: types,
		}}
		for _, r := range ingress {
			np.Spec.Ingress = append(np.Spec.Ingress, *r.DeepCopy())
		}
		for _, r := range egress {
			np.Spec.Egress = append(np.Spec.Egress, *r.DeepCopy())
		}
		np.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"))
		np.Namespace, np.Name = ns.Name, NamePrefix+p.GNP.Name
		out = append(out, np)
	}
	return out, nil
}

// rule translates an Allow rule's peers and ports; ok is false when no peer is left (a
// NetworkPolicy rule without peers would allow every peer).
func rule(r translate.Rule) ([]networkingv1.NetworkPolicyPeer, []networkingv1.NetworkPolicyPort, bool) {
	var peers []networkingv1.NetworkPolicyPeer
	for _, s := range r.Selectors {
		peers = append(peers, networkingv1.NetworkPolicyPeer{NamespaceSelector: translate.EveryPod(s.NamespaceSelector), PodSelector: s.PodSelector.DeepCopy()})
	}
	for _, b := range r.Blocks {
		if _, err := ipblock.Parse(b.CIDR, b.Except); err != nil {
			continue // refused by the webhook; matches nothing
		}
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: b.CIDR, Except: append([]string(nil), b.Except...)}})
	}
	for _, a := range r.Addresses {
		peers = append(peers, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: translate.HostPrefix(a).String()}})
	}
	if len(peers) == 0 {
		return nil, nil, false
	}
	var ports []networkingv1.NetworkPolicyPort
	for _, port := range r.Ports {
		proto := corev1.Protocol(port.ProtocolOrDefault())
		np := networkingv1.NetworkPolicyPort{Protocol: &proto, EndPort: port.EndPort}
		if port.Port != nil {
			v := *port.Port
			np.Port = &v
		}
		ports = append(ports, np)
	}
	return peers, ports, true
}
