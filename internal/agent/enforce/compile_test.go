package enforce_test

import (
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/enforce"
	"github.com/meridian-io/meridian/internal/agent/enforce/enforcetest"
	"github.com/meridian-io/meridian/internal/dataplane"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/policytest"
)

var unitOptions = policytest.Options{
	Members: 2, MinPods: 3, MaxPods: 8, MaxPolicies: 5,
	IP:        func(c, i int) string { return fmt.Sprintf("10.%d.0.%d", c, i+1) },
	Ports:     []int32{53, 80, 443, 8080},
	Protocols: []policyv1alpha1.Protocol{"TCP", "TCP", "UDP", "SCTP"},
	Blocks: []policyv1alpha1.IPBlock{
		{CIDR: "0.0.0.0/0"},
		{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}},
		{CIDR: "10.0.0.0/16", Except: []string{"10.0.0.8/29", "10.0.0.2/32"}},
		{CIDR: "10.1.0.0/24"},
		{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}},
	},
}

var externals = []string{"192.0.2.1", "192.0.2.200", "203.0.113.9"}

func nodeOf(i int) string { return fmt.Sprintf("n%d", i%2) }

// TestAgreesWithReference compiles member m0 of seeded random fleets for both of its nodes and
// checks, for every connection between the fleet's pods and some outside addresses, that each
// side the member decides (dataplane's Decide on the compiled Model) agrees with
// internal/policy.Evaluate, Reject included.
func TestAgreesWithReference(t *testing.T) {
	cases := 0
	for seed := int64(0); seed < 400; seed++ {
		r := rand.New(rand.NewSource(seed))
		f := policytest.Fleet(r, unitOptions)
		ref, err := policy.NewModel(f)
		if err != nil {
			t.Fatalf("seed %d: reference: %v", seed, err)
		}
		m, err := enforcetest.MemberOf(f, "m0", nodeOf)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		models := map[string]*dataplane.Model{}
		for _, node := range []string{"n0", "n1"} {
			res := enforce.Compile(enforce.Input{Node: node, Policies: m.Policies, NetworkPolicies: m.NetworkPolicies, Namespaces: m.Namespaces, Pods: m.Pods})
			if len(res.Errors) > 0 {
				t.Fatalf("seed %d node %s: %v", seed, node, res.Errors)
			}
			if err := res.Model.Validate(); err != nil {
				t.Fatalf("seed %d node %s: invalid model: %v", seed, node, err)
			}
			models[node] = &res.Model
		}
		nodeByIP := map[netip.Addr]string{}
		var ends []policy.Endpoint
		for ci, c := range f.Clusters {
			for i, p := range c.Pods {
				ends = append(ends, policy.Endpoint{Cluster: c.Name, Namespace: p.Namespace, Name: p.Name})
				if ci == 0 {
					nodeByIP[netip.MustParseAddr(p.IP)] = nodeOf(i)
				}
			}
		}
		for _, e := range externals {
			ends = append(ends, policy.Endpoint{IP: e})
		}
		for _, from := range ends {
			for _, to := range ends {
				if from.Name == "" && to.Name == "" {
					continue
				}
				proto := []policyv1alpha1.Protocol{"TCP", "UDP", "SCTP"}[r.Intn(3)]
				port := unitOptions.Ports[r.Intn(len(unitOptions.Ports))]
				if r.Intn(4) == 0 {
					port += int32(r.Intn(300))
				}
				c := policy.Connection{From: from, To: to, Protocol: proto, Port: port}
				want, err := ref.Evaluate(c)
				if err != nil {
					t.Fatalf("seed %d: %s: %v", seed, c, err)
				}
				src, dst := addr(ref, from), addr(ref, to)
				conn := dataplane.Connection{Src: src, Dst: dst, Protocol: dataplane.Protocol(proto), Port: uint16(port)}
				if n, ok := nodeByIP[src]; ok {
					cases++
					got := models[n].Egress(conn)
					if string(got.Verdict) != string(want.Egress.Verdict) {
						t.Fatalf("seed %d: %s egress: model says %s (%s rule %d %s), reference:\n%s", seed, c, got.Verdict, got.Stage, got.Index, got.Name, want)
					}
				}
				if n, ok := nodeByIP[dst]; ok {
					cases++
					got := models[n].Ingress(conn)
					if string(got.Verdict) != string(want.Ingress.Verdict) {
						t.Fatalf("seed %d: %s ingress: model says %s (%s rule %d %s), reference:\n%s", seed, c, got.Verdict, got.Stage, got.Index, got.Name, want)
					}
				}
			}
		}
	}
	t.Logf("%d sides agree with the reference", cases)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func addr(ref *policy.Model, e policy.Endpoint) netip.Addr {
	if e.Name != "" {
		return ref.Pod(e.Cluster, e.Namespace, e.Name).Addr
	}
	return netip.MustParseAddr(e.IP)
}

// TestOrderNamesAndErrors checks by hand what the random test cannot name: the order of
// policies, unique rule names, egress named ports split per destination port number, a broken
// policy left out and reported.
func TestOrderNamesAndErrors(t *testing.T) {
	fleet := policy.Fleet{Clusters: []policy.Cluster{{
		Name:       "m0",
		Namespaces: []policy.Namespace{{Name: "shop", Labels: map[string]string{"team": "shop"}}},
		Pods: []policy.Pod{
			{Namespace: "shop", Name: "client", Labels: map[string]string{"app": "web"}, IP: "10.0.0.1"},
			{Namespace: "shop", Name: "db1", Labels: map[string]string{"app": "db"}, IP: "10.0.0.2", Ports: []policy.ContainerPort{{Name: "sql", Protocol: "TCP", Port: 5432}}},
			{Namespace: "shop", Name: "db2", Labels: map[string]string{"app": "db"}, IP: "10.0.0.3", Ports: []policy.ContainerPort{{Name: "sql", Protocol: "TCP", Port: 3306}}},
		},
	}}}
	var pods = enforcetest.Member{}
	for _, p := range fleet.Clusters[0].Pods {
		pods.Pods = append(pods.Pods, enforcetest.K8sPod(p, "n0"))
	}
	sql := intstr.FromString("sql")
	every := &metav1.LabelSelector{}
	mk := func(name, tier string, tierPrio, prio int32, baseline bool, rules ...memberv1alpha1.MemberRule) memberv1alpha1.MemberNetworkPolicy {
		m := memberv1alpha1.MemberNetworkPolicy{Spec: memberv1alpha1.MemberNetworkPolicySpec{
			Tier: tier, TierPriority: tierPrio, Priority: prio, Baseline: baseline, Policy: name,
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			Egress:    rules,
		}}
		m.Name = name
		return m
	}
	dbs := memberv1alpha1.MemberPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}
	policies := []memberv1alpha1.MemberNetworkPolicy{
		mk("zeta", "application", 250, 0, false, memberv1alpha1.MemberRule{Name: "a", Action: "Allow", Peers: []memberv1alpha1.MemberPeer{dbs}, Ports: []policyv1alpha1.Port{{Port: &sql}}}),
		mk("alpha", "application", 250, 0, false, memberv1alpha1.MemberRule{Name: "p", Action: "Pass", Peers: []memberv1alpha1.MemberPeer{{Addresses: []string{"192.0.2.7"}}}}),
		mk("base", "baseline", 1000, 0, true, memberv1alpha1.MemberRule{Name: "d", Action: "Reject", Peers: []memberv1alpha1.MemberPeer{{PodSelector: every}}}),
		mk("first", "securityops", 100, 5, false, memberv1alpha1.MemberRule{Name: "x", Action: "Drop", Peers: []memberv1alpha1.MemberPeer{{IPBlock: &memberv1alpha1.MemberIPBlock{CIDR: "10.0.0.0/24", Except: []string{"10.0.0.2/32"}}}}}),
		mk("broken", "application", 250, 1, false, memberv1alpha1.MemberRule{Name: "b", Action: "Allow", Peers: []memberv1alpha1.MemberPeer{{IPBlock: &memberv1alpha1.MemberIPBlock{CIDR: "10.0.0.1/24"}}}}),
	}
	res := enforce.Compile(enforce.Input{Node: "n0", Policies: policies, Namespaces: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}}}, Pods: pods.Pods})
	if want := []string{"first", "alpha", "zeta", "base"}; fmt.Sprint(res.Policies) != fmt.Sprint(want) {
		t.Errorf("policies in force = %v, want %v", res.Policies, want)
	}
	if len(res.Errors) != 1 || !contains(res.Errors[0], "MemberNetworkPolicy broken") || !contains(res.Errors[0], "host bits") {
		t.Errorf("errors = %q, want one naming MemberNetworkPolicy broken and its host bits", res.Errors)
	}
	client, ok := res.Model.Pod(netip.MustParseAddr("10.0.0.1"))
	if !ok {
		t.Fatal("client is not in the model")
	}
	var names []string
	for _, r := range client.Egress.Tiered {
		names = append(names, r.Name)
	}
	want := []string{"securityops/first/egress/0", "application/alpha/egress/0", "application/zeta/egress/0/TCP-3306", "application/zeta/egress/0/TCP-5432"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("tiered egress rules = %v, want %v", names, want)
	}
	if len(client.Egress.Baseline) != 1 || client.Egress.Baseline[0].Action != dataplane.Reject {
		t.Errorf("baseline = %+v, want one Reject rule", client.Egress.Baseline)
	}
	for _, tc := range []struct {
		dst  string
		port uint16
		want dataplane.Verdict
	}{
		{"10.0.0.2", 5432, dataplane.VerdictAllow},  // .2 is first's except; zeta: db1's sql
		{"10.0.0.3", 3306, dataplane.VerdictDrop},   // first drops .3 before zeta allows db2's sql
		{"10.0.0.2", 3306, dataplane.VerdictReject}, // db2's number, not db1's: baseline rejects
		{"192.0.2.7", 80, dataplane.VerdictAllow},   // Pass; no NetworkPolicy; baseline peers are pods only
	} {
		got := client.Egress.Decide(netip.MustParseAddr(tc.dst), dataplane.TCP, tc.port)
		if got.Verdict != tc.want {
			t.Errorf("egress to %s:%d = %+v, want %s", tc.dst, tc.port, got, tc.want)
		}
	}
}

// BenchmarkCompile is what one change costs the agent before the dataplane compares: it compiles
// the whole member again (enforce.Compile) on every change. A member of 1,000 pods and 100
// global policies (translated by the real translator), its pods spread over nodes nodes.
func BenchmarkCompile(b *testing.B) {
	o := unitOptions
	o.Members, o.MinPods, o.MaxPods, o.MaxPolicies = 1, 1000, 1000, 400
	o.IP = func(c, i int) string { return fmt.Sprintf("10.%d.%d.%d", c, i/250, i%250+1) }
	var f policy.Fleet
	for seed := int64(0); len(f.Policies) < 100; seed++ {
		f = policytest.Fleet(rand.New(rand.NewSource(seed)), o)
	}
	f.Policies = f.Policies[:100]
	for _, nodes := range []int{1, 10} {
		m, err := enforcetest.MemberOf(f, "m0", func(i int) string { return fmt.Sprintf("n%d", i%nodes) })
		if err != nil {
			b.Fatal(err)
		}
		in := enforce.Input{Node: "n0", Policies: m.Policies, NetworkPolicies: m.NetworkPolicies, Namespaces: m.Namespaces, Pods: m.Pods}
		b.Run(fmt.Sprintf("pods=1000/policies=100/localPods=%d", 1000/nodes), func(b *testing.B) {
			var res enforce.Result
			for b.Loop() {
				res = enforce.Compile(in)
			}
			b.ReportMetric(float64(res.Rules), "rules")
		})
	}
}
