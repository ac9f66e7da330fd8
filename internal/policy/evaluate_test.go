package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// DefaultTierObjects returns the default tiers as objects.
func defaultTiers() []policyv1alpha1.Tier {
	var out []policyv1alpha1.Tier
	for _, t := range policyv1alpha1.DefaultTiers {
		tier := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: t.Priority}}
		tier.Name = t.Name
		out = append(out, tier)
	}
	return out
}

func sel(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func gnp(name, tier string, prio int32, applied policyv1alpha1.AppliedTo, ingress, egress []policyv1alpha1.Rule) policyv1alpha1.GlobalNetworkPolicy {
	g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Tier: tier, Priority: ptr.To(prio), Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
		AppliedTo: applied, Ingress: ingress, Egress: egress,
	}}
	g.Name = name
	return g
}

func testFleet() Fleet {
	web := []ContainerPort{{Name: "http", Protocol: policyv1alpha1.ProtocolTCP, Port: 8080}}
	return Fleet{
		Tiers: defaultTiers(),
		Clusters: []Cluster{
			{Name: "a", Namespaces: []Namespace{{Name: "shop", Labels: map[string]string{"team": "shop"}}, {Name: "db", Labels: map[string]string{"team": "db"}}},
				Pods: []Pod{
					{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, IP: "10.0.0.1", Ports: web},
					{Namespace: "shop", Name: "cart", Labels: map[string]string{"app": "cart"}, IP: "10.0.0.2"},
					{Namespace: "db", Name: "pg", Labels: map[string]string{"app": "pg"}, IP: "10.0.0.3"},
				}},
			{Name: "b", Namespaces: []Namespace{{Name: "shop", Labels: map[string]string{"team": "shop"}}},
				Pods: []Pod{{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, IP: "10.1.0.1", Ports: web}}},
		},
	}
}

func pod(c, ns, n string) Endpoint { return Endpoint{Cluster: c, Namespace: ns, Name: n} }

func TestEvaluate(t *testing.T) {
	all := policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}}
	webOnly := policyv1alpha1.AppliedTo{PodSelector: sel("app", "web")}
	any4 := policyv1alpha1.Peer{IPBlock: &policyv1alpha1.IPBlock{CIDR: "0.0.0.0/0"}}
	http := intstr.FromString("http")
	p8080 := intstr.FromInt32(8080)
	rule := func(name string, a policyv1alpha1.RuleAction, peers []policyv1alpha1.Peer, ports ...policyv1alpha1.Port) policyv1alpha1.Rule {
		return policyv1alpha1.Rule{Name: name, Action: a, Peers: peers, Ports: ports}
	}
	denyIngressWeb := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "deny-web"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "web"), PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	tcp := corev1.ProtocolTCP
	allowCartToWeb := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-to-web"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "web"), Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("app", "cart")}}, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &http}}}}}}

	cases := []struct {
		name     string
		policies []policyv1alpha1.GlobalNetworkPolicy
		netpols  []networkingv1.NetworkPolicy
		conn     Connection
		want     Verdict
		path     string // substring of the decision's text
	}{
		{name: "nothing: allowed by default", conn: Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 8080}, want: Allow, path: "by Default"},
		{name: "tier order: securityops Drop before application Allow",
			policies: []policyv1alpha1.GlobalNetworkPolicy{
				gnp("allow", "application", 1, all, []policyv1alpha1.Rule{rule("ok", "Allow", []policyv1alpha1.Peer{any4})}, nil),
				gnp("drop", "securityops", 900, all, []policyv1alpha1.Rule{rule("no", "Drop", []policyv1alpha1.Peer{any4})}, nil)},
			conn: Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 80}, want: Drop, path: "policy drop, rule no"},
		{name: "priority then name within a tier",
			policies: []policyv1alpha1.GlobalNetworkPolicy{
				gnp("b-allow", "application", 5, all, []policyv1alpha1.Rule{rule("ok", "Allow", []policyv1alpha1.Peer{any4})}, nil),
				gnp("a-reject", "application", 5, all, []policyv1alpha1.Rule{rule("no", "Reject", []policyv1alpha1.Peer{any4})}, nil)},
			conn: Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 80}, want: Reject, path: "policy a-reject"},
		{name: "rules in order: first match decides",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, all, []policyv1alpha1.Rule{
				rule("web-port", "Allow", []policyv1alpha1.Peer{any4}, policyv1alpha1.Port{Port: &p8080}),
				rule("rest", "Drop", []policyv1alpha1.Peer{any4})}, nil)},
			conn: Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 8080}, want: Allow, path: "rule web-port"},
		{name: "Pass hands to NetworkPolicy, which denies",
			policies: []policyv1alpha1.GlobalNetworkPolicy{
				gnp("pass", "securityops", 1, all, []policyv1alpha1.Rule{rule("to-ns", "Pass", []policyv1alpha1.Peer{any4})}, nil),
				gnp("allow", "application", 1, all, []policyv1alpha1.Rule{rule("ok", "Allow", []policyv1alpha1.Peer{any4})}, nil)},
			netpols: []networkingv1.NetworkPolicy{denyIngressWeb},
			conn:    Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 80}, want: Drop, path: "NetworkPolicies: deny-web"},
		{name: "NetworkPolicy allows by named port",
			netpols: []networkingv1.NetworkPolicy{allowCartToWeb},
			conn:    Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 8080}, want: Allow, path: "by NetworkPolicy"},
		{name: "NetworkPolicy selects the pod: baseline not consulted",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("base", "baseline", 1, all, []policyv1alpha1.Rule{rule("no", "Drop", []policyv1alpha1.Peer{any4})}, nil)},
			netpols:  []networkingv1.NetworkPolicy{allowCartToWeb},
			conn:     Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 8080}, want: Allow, path: "by NetworkPolicy"},
		{name: "baseline decides for pods no NetworkPolicy selects",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("base", "baseline", 1, all, []policyv1alpha1.Rule{rule("no", "Drop", []policyv1alpha1.Peer{any4})}, nil)},
			conn:     Connection{pod("a", "shop", "web"), pod("a", "shop", "cart"), "TCP", 8080}, want: Drop, path: "policy base, rule no"},
		{name: "appliedTo: a policy for web does not apply to cart",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, webOnly, []policyv1alpha1.Rule{rule("no", "Drop", []policyv1alpha1.Peer{any4})}, nil)},
			conn:     Connection{pod("a", "shop", "web"), pod("a", "shop", "cart"), "TCP", 80}, want: Allow},
		{name: "egress side denies an external address",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, all, nil, []policyv1alpha1.Rule{rule("no-ext", "Reject", []policyv1alpha1.Peer{{IPBlock: &policyv1alpha1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}}}})})},
			conn:     Connection{pod("a", "shop", "web"), Endpoint{IP: "192.0.2.7"}, "TCP", 443}, want: Reject, path: "egress: Reject"},
		{name: "ipBlock except",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, all, nil, []policyv1alpha1.Rule{rule("no-ext", "Reject", []policyv1alpha1.Peer{{IPBlock: &policyv1alpha1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}}}})})},
			conn:     Connection{pod("a", "shop", "web"), Endpoint{IP: "192.0.2.200"}, "TCP", 443}, want: Allow},
		{name: "Cluster scope does not match a pod of another member",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, webOnly, []policyv1alpha1.Rule{rule("from-shop", "Drop", []policyv1alpha1.Peer{{NamespaceSelector: sel("team", "shop")}})}, nil)},
			conn:     Connection{pod("b", "shop", "web"), pod("a", "shop", "web"), "TCP", 8080}, want: Allow},
		{name: "ClusterSet scope matches it",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, webOnly, []policyv1alpha1.Rule{rule("from-shop", "Drop", []policyv1alpha1.Peer{{NamespaceSelector: sel("team", "shop"), Scope: "ClusterSet"}})}, nil)},
			conn:     Connection{pod("b", "shop", "web"), pod("a", "shop", "web"), "TCP", 8080}, want: Drop, path: "ingress: Drop in a"},
		{name: "egress named port does not resolve on another member's pod",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, all, nil, []policyv1alpha1.Rule{rule("web", "Drop", []policyv1alpha1.Peer{{PodSelector: &metav1.LabelSelector{}, Scope: "ClusterSet"}}, policyv1alpha1.Port{Port: &http})})},
			conn:     Connection{pod("a", "shop", "cart"), pod("b", "shop", "web"), "TCP", 8080}, want: Allow},
		{name: "ingress named port resolves on the destination",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "application", 1, all, []policyv1alpha1.Rule{rule("web", "Drop", []policyv1alpha1.Peer{{PodSelector: &metav1.LabelSelector{}, Scope: "ClusterSet"}}, policyv1alpha1.Port{Port: &http})}, nil)},
			conn:     Connection{pod("a", "shop", "cart"), pod("b", "shop", "web"), "TCP", 8080}, want: Drop},
		{name: "baseline Pass allows",
			policies: []policyv1alpha1.GlobalNetworkPolicy{gnp("base", "baseline", 1, all, []policyv1alpha1.Rule{rule("pass", "Pass", []policyv1alpha1.Peer{any4}), rule("no", "Drop", []policyv1alpha1.Peer{any4})}, nil)},
			conn:     Connection{pod("a", "shop", "cart"), pod("a", "shop", "web"), "TCP", 1}, want: Allow, path: "rule pass: Pass"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFleet()
			f.Policies = tc.policies
			f.Clusters[0].NetworkPolicies = tc.netpols
			m, err := NewModel(f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := m.Evaluate(tc.conn)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.want || !strings.Contains(d.String(), tc.path) {
				t.Errorf("%s: got %s, want %s with %q", tc.conn, d, tc.want, tc.path)
			}
		})
	}
}

func TestNewModelRefusesUnknownTier(t *testing.T) {
	f := testFleet()
	f.Policies = []policyv1alpha1.GlobalNetworkPolicy{gnp("p", "nope", 1, policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}}, nil, nil)}
	if _, err := NewModel(f); err == nil || !strings.Contains(err.Error(), `tier "nope" does not exist`) {
		t.Fatalf("got %v", err)
	}
}
