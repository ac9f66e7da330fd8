// Package cnp translates GlobalNetworkPolicies into the upstream ClusterNetworkPolicy
// (policy.networking.k8s.io/v1beta1, network-policy-api v0.3.0, standard channel). Non-baseline
// tiers flatten into Admin-tier priorities in evaluation order, the baseline tier into the
// Baseline tier. The form has no Reject, no named ports and no ingress peers by address; what it
// cannot hold is restricted where that only denies more, and unsupported otherwise.
package cnp

import (
	"fmt"
	"math"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// Limit is the API's bound on rules per direction, peers per rule, networks per peer and
// protocols per rule; larger lists are split, never cut.
const Limit = 25

// MaxPriority is the highest priority the API accepts.
const MaxPriority = 1000

// NamePrefix prefixes the objects Meridian writes; a policy split into several objects gets
// -1, -2, … after its name.
const NamePrefix = "meridian-"

// Translate writes every policy the form can hold without allowing what it denies.
func Translate(policies []translate.Policy) translate.Result {
	var res translate.Result
	prepared := make([]Prepared, len(policies))
	for i, p := range policies {
		prepared[i] = Prepare(p)
	}
	for i, place := range Number(prepared) {
		objs, enf := TranslatePolicy(policies[i], prepared[i], place)
		res.Objects = append(res.Objects, objs...)
		res.Policies = append(res.Policies, enf)
	}
	return res
}

// Prepared is one policy translated up to its place: its rules, split to the API's limits, and
// its enforcement so far.
type Prepared struct {
	Enforcement     translate.Enforcement
	ingress, egress []any
	tier            npav1beta1.Tier
}

// Prepare translates what does not depend on where the policy stands among the others.
func Prepare(p translate.Policy) Prepared {
	pr := Prepared{Enforcement: translate.Enforcement{Policy: p.GNP.Name, Enforcement: policyv1alpha1.EnforcementExact}, tier: npav1beta1.AdminTier}
	pr.ingress = rules(p, p.Ingress, true, &pr.Enforcement)
	pr.egress = rules(p, p.Egress, false, &pr.Enforcement)
	if p.Baseline {
		pr.tier = npav1beta1.BaselineTier
	}
	return pr
}

// Priorities is how many priorities the policy takes in its tier: one per object it is split
// into, none when the form cannot hold it.
func (pr Prepared) Priorities() int32 {
	if !pr.Enforcement.Supported() {
		return 0
	}
	return int32(max(chunksOf(len(pr.ingress)), chunksOf(len(pr.egress))))
}

// Number places the prepared policies, given in evaluation order: each takes the next
// Priorities() priorities of its tier, or none when they are used up.
func Number(prepared []Prepared) []translate.Place {
	next := map[npav1beta1.Tier]int32{}
	places := make([]translate.Place, len(prepared))
	for i, pr := range prepared {
		n := pr.Priorities()
		switch {
		case n == 0:
		case next[pr.tier]+n-1 > MaxPriority:
			places[i] = translate.Place{Reason: policyv1alpha1.TooManyPoliciesReason,
				Message: fmt.Sprintf("the %s tier's %d priorities are used up by the policies before this one", pr.tier, MaxPriority+1)}
		default:
			places[i] = translate.Place{Tier: string(pr.tier), Priority: next[pr.tier]}
			next[pr.tier] += n
		}
	}
	return places
}

// TranslatePolicy writes one prepared policy at its place (from Number).
func TranslatePolicy(p translate.Policy, pr Prepared, place translate.Place) ([]client.Object, translate.Enforcement) {
	enf := pr.Enforcement
	enf.Rules = slices.Clone(enf.Rules) // pr may be kept and placed again
	if !enf.Supported() {
		return nil, enf
	}
	if !place.Placed() {
		place.Refuse(p, &enf)
		return nil, enf
	}
	subject := npav1beta1.ClusterNetworkPolicySubject{Pods: &npav1beta1.NamespacedPod{
		NamespaceSelector: *translate.EveryPod(p.GNP.Spec.AppliedTo.NamespaceSelector),
		PodSelector:       *translate.EveryPod(p.GNP.Spec.AppliedTo.PodSelector),
	}}
	chunks := int(pr.Priorities())
	objs := make([]client.Object, 0, chunks)
	for i := range chunks {
		c := &npav1beta1.ClusterNetworkPolicy{Spec: npav1beta1.ClusterNetworkPolicySpec{
			Tier: pr.tier, Priority: place.Priority + int32(i), Subject: *subject.DeepCopy(),
			Ingress: convert[npav1beta1.ClusterNetworkPolicyIngressRule](window(pr.ingress, i)),
			Egress:  convert[npav1beta1.ClusterNetworkPolicyEgressRule](window(pr.egress, i)),
		}}
		c.SetGroupVersionKind(npav1beta1.SchemeGroupVersion.WithKind("ClusterNetworkPolicy"))
		c.Name = NamePrefix + p.GNP.Name
		if chunks > 1 {
			c.Name = fmt.Sprintf("%s%s-%d", NamePrefix, p.GNP.Name, i+1)
		}
		objs = append(objs, client.Object(c))
	}
	return objs, enf
}

func convert[T any](xs []any) []T {
	var out []T
	for _, x := range xs {
		out = append(out, x.(T))
	}
	return out
}

func chunksOf(n int) int { return max(1, (n+Limit-1)/Limit) }

func window[T any](xs []T, i int) []T {
	lo, hi := i*Limit, min((i+1)*Limit, len(xs))
	if lo >= len(xs) {
		return nil
	}
	return xs[lo:hi]
}

// rule is a translated rule before splitting into the API's types.
type rule struct {
	name      string
	action    npav1beta1.ClusterNetworkPolicyRuleAction
	pods      []npav1beta1.NamespacedPod
	networks  []npav1beta1.CIDR
	protocols []npav1beta1.ClusterNetworkPolicyProtocol
}

// rules translates one direction; the returned list holds ingress or egress rules (as `any` of
// the two API types) already split to the API's limits.
func rules(p translate.Policy, rs []translate.Rule, ingress bool, enf *translate.Enforcement) []any {
	dir := policyv1alpha1.DirectionEgress
	if ingress {
		dir = policyv1alpha1.DirectionIngress
	}
	var out []any
	for _, r := range rs {
		tr := rule{name: r.Name}
		switch r.Action {
		case policyv1alpha1.ActionAllow:
			tr.action = npav1beta1.ClusterNetworkPolicyRuleActionAccept
		case policyv1alpha1.ActionPass:
			tr.action = npav1beta1.ClusterNetworkPolicyRuleActionPass
		case policyv1alpha1.ActionDrop:
			tr.action = npav1beta1.ClusterNetworkPolicyRuleActionDeny
		case policyv1alpha1.ActionReject:
			tr.action = npav1beta1.ClusterNetworkPolicyRuleActionDeny
			enf.Note(dir, r.Name, policyv1alpha1.EnforcementRestricted, policyv1alpha1.RejectAsDropReason,
				"ClusterNetworkPolicy has no Reject: the rule drops silently")
		}
		allow := r.Action == policyv1alpha1.ActionAllow
		deny := r.Action == policyv1alpha1.ActionDrop || r.Action == policyv1alpha1.ActionReject

		// Ports: named ports are not in the standard channel. An Allow loses them (it allows
		// less); a Drop or Reject widens them to the whole protocol (it denies more); a Pass would
		// hand the wrong connections on.
		hadPorts := len(r.Ports) > 0
		for _, port := range r.Ports {
			proto := port.ProtocolOrDefault()
			switch {
			case port.Port != nil && port.Port.Type == intstr.String:
				switch {
				case allow:
					enf.Note(dir, r.Name, policyv1alpha1.EnforcementRestricted, policyv1alpha1.NamedPortNotExpressibleReason,
						fmt.Sprintf("ClusterNetworkPolicy has no named ports: the rule does not allow port %s", port.Port.StrVal))
				case deny:
					enf.Note(dir, r.Name, policyv1alpha1.EnforcementRestricted, policyv1alpha1.NamedPortNotExpressibleReason,
						fmt.Sprintf("ClusterNetworkPolicy has no named ports: the rule denies every %s port instead of %s", proto, port.Port.StrVal))
					tr.protocols = append(tr.protocols, protocol(proto, &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 1, End: math.MaxUint16}}))
				default:
					enf.Note(dir, r.Name, policyv1alpha1.EnforcementUnsupported, policyv1alpha1.NamedPortNotExpressibleReason,
						fmt.Sprintf("ClusterNetworkPolicy has no named ports, and a Pass on port %s cannot be widened or narrowed safely; use port numbers", port.Port.StrVal))
				}
			case port.Port == nil:
				tr.protocols = append(tr.protocols, protocol(proto, &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: 1, End: math.MaxUint16}}))
			case port.EndPort != nil && *port.EndPort > port.Port.IntVal:
				tr.protocols = append(tr.protocols, protocol(proto, &npav1beta1.Port{Range: &npav1beta1.PortRange{Start: port.Port.IntVal, End: *port.EndPort}}))
			default:
				tr.protocols = append(tr.protocols, protocol(proto, &npav1beta1.Port{Number: port.Port.IntVal}))
			}
		}
		if hadPorts && len(tr.protocols) == 0 {
			continue // only named ports, dropped from an Allow (or unsupported): matches nothing
		}

		for _, s := range r.Selectors {
			tr.pods = append(tr.pods, npav1beta1.NamespacedPod{NamespaceSelector: *translate.EveryPod(s.NamespaceSelector), PodSelector: *translate.EveryPod(s.PodSelector)})
		}
		var nets []netip.Prefix
		for _, b := range r.Blocks {
			if blk, err := ipblock.Parse(b.CIDR, b.Except); err == nil {
				nets = append(nets, blk.Prefixes()...)
			}
		}
		for _, a := range r.Addresses {
			nets = append(nets, translate.HostPrefix(a))
		}
		if ingress && len(nets) > 0 {
			if allow {
				enf.Note(dir, r.Name, policyv1alpha1.EnforcementRestricted, policyv1alpha1.IngressAddressesNotExpressibleReason,
					"ClusterNetworkPolicy cannot match ingress sources by address: the rule does not allow its ipBlock and other members' pods")
			} else {
				enf.Note(dir, r.Name, policyv1alpha1.EnforcementUnsupported, policyv1alpha1.IngressAddressesNotExpressibleReason,
					fmt.Sprintf("ClusterNetworkPolicy cannot match ingress sources by address, so a %s from an ipBlock or from other members' pods cannot be held; use an Antrea or Meridian member, or Cluster-scoped selectors", r.Action))
			}
			nets = nil
		}
		for _, n := range nets {
			tr.networks = append(tr.networks, npav1beta1.CIDR(n.String()))
		}
		if len(tr.pods) == 0 && len(tr.networks) == 0 {
			continue // no peer left: matches nothing
		}
		out = append(out, split(tr, ingress)...)
	}
	return out
}

func protocol(p policyv1alpha1.Protocol, port *npav1beta1.Port) npav1beta1.ClusterNetworkPolicyProtocol {
	switch p {
	case policyv1alpha1.ProtocolUDP:
		return npav1beta1.ClusterNetworkPolicyProtocol{UDP: &npav1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}}
	case policyv1alpha1.ProtocolSCTP:
		return npav1beta1.ClusterNetworkPolicyProtocol{SCTP: &npav1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}}
	}
	return npav1beta1.ClusterNetworkPolicyProtocol{TCP: &npav1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}}
}

// split cuts a rule into consecutive rules of the same action, each within the limits: matching
// the union of their peers and protocols in order is matching the original rule.
func split(r rule, ingress bool) []any {
	type peer struct {
		pod  *npav1beta1.NamespacedPod
		nets []npav1beta1.CIDR
	}
	var peers []peer
	for i := range r.pods {
		peers = append(peers, peer{pod: &r.pods[i]})
	}
	for i := 0; i < len(r.networks); i += Limit {
		peers = append(peers, peer{nets: r.networks[i:min(i+Limit, len(r.networks))]})
	}
	protoChunks := [][]npav1beta1.ClusterNetworkPolicyProtocol{nil}
	if len(r.protocols) > 0 {
		protoChunks = nil
		for i := 0; i < len(r.protocols); i += Limit {
			protoChunks = append(protoChunks, r.protocols[i:min(i+Limit, len(r.protocols))])
		}
	}
	var out []any
	for i := 0; i < len(peers); i += Limit {
		chunk := peers[i:min(i+Limit, len(peers))]
		for _, protos := range protoChunks {
			if ingress {
				ir := npav1beta1.ClusterNetworkPolicyIngressRule{Name: r.name, Action: r.action, Protocols: protos}
				for _, p := range chunk {
					ir.From = append(ir.From, npav1beta1.ClusterNetworkPolicyIngressPeer{Pods: p.pod.DeepCopy()})
				}
				out = append(out, ir)
			} else {
				er := npav1beta1.ClusterNetworkPolicyEgressRule{Name: r.name, Action: r.action, Protocols: protos}
				for _, p := range chunk {
					if p.pod != nil {
						er.To = append(er.To, npav1beta1.ClusterNetworkPolicyEgressPeer{Pods: p.pod.DeepCopy()})
					} else {
						er.To = append(er.To, npav1beta1.ClusterNetworkPolicyEgressPeer{Networks: p.nets})
					}
				}
				out = append(out, er)
			}
		}
	}
	return out
}
