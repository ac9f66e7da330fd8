package policy_test

import (
	"fmt"
	"math/rand"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
)

// The random fleets of the oracle: small vocabularies, so that selectors, blocks and ports hit.
var (
	genApps      = []string{"web", "db", "cache"}
	genTeams     = []string{"shop", "pay"}
	genPortNames = []string{"http", "dns", "metrics"}
	genPorts     = []int32{53, 80, 443, 8080}
	genProtos    = []policyv1alpha1.Protocol{"TCP", "TCP", "UDP", "SCTP"}
	genBlocks    = []policyv1alpha1.IPBlock{
		{CIDR: "0.0.0.0/0"},
		{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}},
		{CIDR: "10.0.0.0/16", Except: []string{"10.0.0.8/29", "10.0.0.2/32"}},
		{CIDR: "10.2.0.0/24"},
		{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}},
		{CIDR: "198.51.100.0/24"},
	}
	genExternal = []string{"192.0.2.1", "192.0.2.200", "198.51.100.7", "203.0.113.9"}
	genActions  = []policyv1alpha1.RuleAction{"Allow", "Drop", "Reject", "Pass"}
)

func defaultTiers() []policyv1alpha1.Tier {
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

func genSelector(r *rand.Rand, key string, vals []string) *metav1.LabelSelector {
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

// genFleet builds a random fleet: three members, namespaces, pods with labels, IPs and named
// ports, namespace NetworkPolicies, and global policies over every action, tier, peer and port kind.
func genFleet(r *rand.Rand) policy.Fleet {
	f := policy.Fleet{Tiers: defaultTiers()}
	for c := range 3 {
		cl := policy.Cluster{Name: fmt.Sprintf("m%d", c), Labels: map[string]string{"env": pick(r, []string{"prod", "dev"})}}
		for _, team := range genTeams {
			cl.Namespaces = append(cl.Namespaces, policy.Namespace{Name: team, Labels: map[string]string{"team": team}})
		}
		for i := range 2 + r.Intn(4) {
			p := policy.Pod{
				Namespace: pick(r, genTeams), Name: fmt.Sprintf("p%d", i),
				Labels: map[string]string{"app": pick(r, genApps)},
				IP:     fmt.Sprintf("10.%d.0.%d", c, i+1),
			}
			used := map[string]bool{}
			for range r.Intn(3) {
				cp := policy.ContainerPort{Name: pick(r, genPortNames), Protocol: pick(r, genProtos), Port: pick(r, genPorts)}
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
			cl.NetworkPolicies = append(cl.NetworkPolicies, genNetpol(r, i))
		}
		f.Clusters = append(f.Clusters, cl)
	}
	for i := range 1 + r.Intn(5) {
		f.Policies = append(f.Policies, genGNP(r, i))
	}
	return f
}

func genNetpol(r *rand.Rand, i int) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: pick(r, genTeams), Name: fmt.Sprintf("np%d", i)}}
	if s := genSelector(r, "app", genApps); s != nil {
		np.Spec.PodSelector = *s
	}
	peer := func() networkingv1.NetworkPolicyPeer {
		switch r.Intn(3) {
		case 0:
			b := pick(r, genBlocks)
			return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: b.CIDR, Except: b.Except}}
		case 1:
			return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(r, genApps)}}}
		default:
			return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": pick(r, genTeams)}}}
		}
	}
	ports := func() []networkingv1.NetworkPolicyPort {
		if r.Intn(2) == 0 {
			return nil
		}
		proto := corev1.Protocol(pick(r, genProtos))
		var port intstr.IntOrString
		if r.Intn(2) == 0 {
			port = intstr.FromString(pick(r, genPortNames))
		} else {
			port = intstr.FromInt32(pick(r, genPorts))
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

func genGNP(r *rand.Rand, i int) policyv1alpha1.GlobalNetworkPolicy {
	tiers := defaultTiers()
	g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Tier:     pick(r, tiers).Name,
		Priority: int32(r.Intn(3)),
	}}
	g.Name = fmt.Sprintf("g%d", i)
	if r.Intn(3) == 0 {
		g.Spec.Placement = fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}
	} else {
		g.Spec.Placement = fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}}
	}
	g.Spec.AppliedTo.NamespaceSelector = genSelector(r, "team", genTeams)
	g.Spec.AppliedTo.PodSelector = genSelector(r, "app", genApps)
	if g.Spec.AppliedTo.NamespaceSelector == nil && g.Spec.AppliedTo.PodSelector == nil {
		g.Spec.AppliedTo.PodSelector = &metav1.LabelSelector{}
	}
	// Now and then a policy longer than the upstream ClusterNetworkPolicy's 25 rules, so that its
	// splitting is tested for meaning, not only for shape.
	most := 4
	if r.Intn(25) == 0 {
		most = 40
	}
	rules := func(egress bool) []policyv1alpha1.Rule {
		var out []policyv1alpha1.Rule
		for j := range r.Intn(most) {
			rule := policyv1alpha1.Rule{Name: fmt.Sprintf("r%d", j), Action: pick(r, genActions)}
			hasBlock := false
			for range 1 + r.Intn(2) {
				var p policyv1alpha1.Peer
				if r.Intn(3) == 0 {
					b := pick(r, genBlocks)
					p.IPBlock = &b
					hasBlock = true
				} else {
					p.NamespaceSelector = genSelector(r, "team", genTeams)
					p.PodSelector = genSelector(r, "app", genApps)
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
				port := policyv1alpha1.Port{Protocol: pick(r, genProtos)}
				switch r.Intn(4) {
				case 0: // every port of the protocol
				case 1:
					v := intstr.FromInt32(pick(r, genPorts))
					port.Port = &v
				case 2:
					v := intstr.FromInt32(pick(r, genPorts))
					end := v.IntVal + int32(r.Intn(500))
					port.Port, port.EndPort = &v, &end
				default:
					if egress && hasBlock || most > 4 {
						continue // refused by the webhook: named ports resolve on pods only
					}
					v := intstr.FromString(pick(r, genPortNames))
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

// genConnections picks connections between the fleet's pods and some outside addresses.
func genConnections(r *rand.Rand, f policy.Fleet, n int) []policy.Connection {
	var ends []policy.Endpoint
	for _, c := range f.Clusters {
		for _, p := range c.Pods {
			ends = append(ends, policy.Endpoint{Cluster: c.Name, Namespace: p.Namespace, Name: p.Name})
		}
	}
	out := make([]policy.Connection, 0, n)
	for range n {
		from, to := pick(r, ends), pick(r, ends)
		if r.Intn(8) == 0 {
			to = policy.Endpoint{IP: pick(r, genExternal)}
		} else if r.Intn(8) == 0 {
			from = policy.Endpoint{IP: pick(r, genExternal)}
		}
		port := pick(r, genPorts)
		if r.Intn(4) == 0 {
			port += int32(r.Intn(300))
		}
		out = append(out, policy.Connection{From: from, To: to, Protocol: pick(r, genProtos), Port: port})
	}
	return out
}
