// Package policytest generates seeded random fleets for tests: members, namespaces, pods with
// labels, addresses and named ports, namespace NetworkPolicies, and global policies over every
// action, tier, peer and port kind. The policy oracle, the enforce unit tests and the dataplane
// end-to-end test draw their fleets from it, each with its own Options; a seed gives the same
// fleet for the same Options.
package policytest

import (
	"fmt"
	"math/rand"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
)

// Vocabulary of the random fleets: small, so that selectors, blocks and ports hit.
var (
	Apps      = []string{"web", "db", "cache"}
	Teams     = []string{"shop", "pay"}
	PortNames = []string{"http", "dns", "metrics"}
	actions   = []policyv1alpha1.RuleAction{"Allow", "Drop", "Reject", "Pass"}
)

// Options shape a random fleet.
type Options struct {
	// Members is the number of member clusters, named m0, m1, ...
	Members int
	// MinPods, MaxPods bound the pods per member.
	MinPods, MaxPods int
	// IP gives pod i of member c its address.
	IP func(c, i int) string
	// Ports are the port numbers policies, named ports and connections use.
	Ports []int32
	// Protocols policies and named ports pick from.
	Protocols []policyv1alpha1.Protocol
	// Blocks are the ipBlocks peers pick from.
	Blocks []policyv1alpha1.IPBlock
	// MaxPolicies bounds the global policies.
	MaxPolicies int
	// NoMixedNetpolPeers keeps NetworkPolicy peers to one selector or block each: no peer
	// combines a namespace and a pod selector.
	NoMixedNetpolPeers bool
	// ProdPlacementOneIn: one global policy in that many is placed on env=prod clusters only
	// (0: one in 4); the others on every cluster.
	ProdPlacementOneIn int
	// LongPolicyOneIn: one global policy in that many has up to 40 egress rules without named
	// ports, longer than the upstream ClusterNetworkPolicy's 25, so that splitting is tested for
	// meaning (0: none).
	LongPolicyOneIn int
}

// Tiers are the default tiers plus a custom one.
func Tiers() []policyv1alpha1.Tier {
	var out []policyv1alpha1.Tier
	for _, t := range policyv1alpha1.DefaultTiers {
		tier := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: t.Priority}}
		tier.Name = t.Name
		out = append(out, tier)
	}
	custom := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: 120}}
	custom.Name = "team"
	return append(out, custom)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.Intn(len(xs))] }

func selector(r *rand.Rand, key string, vals []string) *metav1.LabelSelector {
	switch r.Intn(5) {
	case 0:
		return nil
	case 1:
		return &metav1.LabelSelector{}
	case 2:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: []string{pick(r, vals)}}}}
	default:
		return &metav1.LabelSelector{MatchLabels: map[string]string{key: pick(r, vals)}}
	}
}

// Fleet builds a random fleet.
func Fleet(r *rand.Rand, o Options) policy.Fleet {
	f := policy.Fleet{Tiers: Tiers()}
	for c := range o.Members {
		cl := policy.Cluster{Name: fmt.Sprintf("m%d", c), Labels: map[string]string{"env": pick(r, []string{"prod", "dev"})}}
		for _, team := range Teams {
			cl.Namespaces = append(cl.Namespaces, policy.Namespace{Name: team, Labels: map[string]string{"team": team}})
		}
		for i := range o.MinPods + r.Intn(o.MaxPods-o.MinPods+1) {
			p := policy.Pod{
				Namespace: pick(r, Teams), Name: fmt.Sprintf("p%d", i),
				Labels: map[string]string{"app": pick(r, Apps)},
				IP:     o.IP(c, i),
			}
			used := map[string]bool{}
			for range r.Intn(3) {
				cp := policy.ContainerPort{Name: pick(r, PortNames), Protocol: pick(r, o.Protocols), Port: pick(r, o.Ports)}
				key := fmt.Sprintf("%d/%s", cp.Port, cp.Protocol)
				if used[cp.Name] || used[key] {
					continue
				}
				used[cp.Name], used[key] = true, true
				p.Ports = append(p.Ports, cp)
			}
			cl.Pods = append(cl.Pods, p)
		}
		for i := range r.Intn(3) {
			cl.NetworkPolicies = append(cl.NetworkPolicies, netpol(r, o, i))
		}
		f.Clusters = append(f.Clusters, cl)
	}
	for i := range 1 + r.Intn(o.MaxPolicies) {
		f.Policies = append(f.Policies, gnp(r, o, i))
	}
	return f
}

func netpol(r *rand.Rand, o Options, i int) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: pick(r, Teams), Name: fmt.Sprintf("np%d", i)}}
	if s := selector(r, "app", Apps); s != nil {
		np.Spec.PodSelector = *s
	}
	kinds := 4
	if o.NoMixedNetpolPeers {
		kinds = 3
	}
	peer := func() networkingv1.NetworkPolicyPeer {
		switch r.Intn(kinds) {
		case 0:
			b := pick(r, o.Blocks)
			return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: b.CIDR, Except: b.Except}}
		case 1:
			return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(r, Apps)}}}
		case 2:
			return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": pick(r, Teams)}}}
		default:
			return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(r, Apps)}}}
		}
	}
	ports := func() []networkingv1.NetworkPolicyPort {
		if r.Intn(2) == 0 {
			return nil
		}
		proto := corev1.Protocol(pick(r, o.Protocols))
		var port intstr.IntOrString
		if r.Intn(2) == 0 {
			port = intstr.FromString(pick(r, PortNames))
		} else {
			port = intstr.FromInt32(pick(r, o.Ports))
		}
		return []networkingv1.NetworkPolicyPort{{Protocol: &proto, Port: &port}}
	}
	if r.Intn(3) > 0 {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		for range r.Intn(3) {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{peer()}, Ports: ports()})
		}
	}
	if len(np.Spec.PolicyTypes) == 0 || r.Intn(2) == 0 {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		for range r.Intn(3) {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{peer()}, Ports: ports()})
		}
	}
	return np
}

func gnp(r *rand.Rand, o Options, i int) policyv1alpha1.GlobalNetworkPolicy {
	g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Tier:     pick(r, Tiers()).Name,
		Priority: ptr.To(int32(r.Intn(3))),
	}}
	g.Name = fmt.Sprintf("g%d", i)
	g.Spec.Placement = fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	prodOneIn := o.ProdPlacementOneIn
	if prodOneIn == 0 {
		prodOneIn = 4
	}
	if r.Intn(prodOneIn) == 0 {
		g.Spec.Placement.ClusterSelector.MatchLabels = map[string]string{"env": "prod"}
	}
	g.Spec.AppliedTo.NamespaceSelector = selector(r, "team", Teams)
	g.Spec.AppliedTo.PodSelector = selector(r, "app", Apps)
	if g.Spec.AppliedTo.NamespaceSelector == nil && g.Spec.AppliedTo.PodSelector == nil {
		g.Spec.AppliedTo.PodSelector = &metav1.LabelSelector{}
	}
	most := 4
	if o.LongPolicyOneIn > 0 && r.Intn(o.LongPolicyOneIn) == 0 {
		most = 40
	}
	rules := func(egress bool) []policyv1alpha1.Rule {
		var out []policyv1alpha1.Rule
		for j := range r.Intn(most) {
			rule := policyv1alpha1.Rule{Name: fmt.Sprintf("r%d", j), Action: pick(r, actions)}
			hasBlock := false
			for range 1 + r.Intn(2) {
				var p policyv1alpha1.Peer
				if r.Intn(3) == 0 {
					b := pick(r, o.Blocks)
					p.IPBlock = &b
					hasBlock = true
				} else {
					p.NamespaceSelector = selector(r, "team", Teams)
					p.PodSelector = selector(r, "app", Apps)
					if p.NamespaceSelector == nil && p.PodSelector == nil {
						p.PodSelector = &metav1.LabelSelector{}
					}
					if r.Intn(2) == 0 {
						p.Scope = policyv1alpha1.ScopeClusterSet
					}
				}
				rule.Peers = append(rule.Peers, p)
			}
			for range r.Intn(3) {
				port := policyv1alpha1.Port{Protocol: pick(r, o.Protocols)}
				switch r.Intn(4) {
				case 0: // every port of the protocol
				case 1:
					v := intstr.FromInt32(pick(r, o.Ports))
					port.Port = &v
				case 2:
					v := intstr.FromInt32(pick(r, o.Ports))
					end := v.IntVal + int32(r.Intn(500))
					port.Port, port.EndPort = &v, &end
				default:
					if egress && hasBlock || most > 4 {
						continue // refused by the webhook: named ports resolve on pods only
					}
					v := intstr.FromString(pick(r, PortNames))
					port.Port = &v
				}
				rule.Ports = append(rule.Ports, port)
			}
			out = append(out, rule)
		}
		return out
	}
	for len(g.Spec.Ingress)+len(g.Spec.Egress) == 0 { // the schema asks for a rule
		g.Spec.Ingress = rules(false)
		g.Spec.Egress = rules(true)
		if most > 4 {
			// Egress only and no named ports: a long policy that every form can hold.
			g.Spec.Ingress = nil
		}
	}
	return g
}
