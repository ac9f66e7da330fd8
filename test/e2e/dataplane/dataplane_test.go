// Package dataplane_test runs the node agent's dataplane end to end: two nodes as network
// namespaces with pods (nettest), a real member kube-apiserver with the member CRDs, one node
// agent per node running in-process with its nftables table in its node's namespace, and
// MemberNetworkPolicies (from the real translator) and NetworkPolicies created in the member.
// Real TCP and UDP connections between every pair of pods must connect, time out or be refused
// exactly as internal/policy.Evaluate says. The test plays the kubelet's part: it creates the
// Pod objects with their node and sets their address and phase. It needs root.
package dataplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	membercrds "github.com/meridian-io/meridian/config/crd/member"
	"github.com/meridian-io/meridian/internal/agent"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/agent/agenttest"
	"github.com/meridian-io/meridian/internal/agent/enforce"
	"github.com/meridian-io/meridian/internal/agent/enforce/enforcetest"
	"github.com/meridian-io/meridian/internal/dataplane"
	"github.com/meridian-io/meridian/internal/dataplane/nettest"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/policytest"
	"github.com/meridian-io/meridian/test/testbed"
)

const podsPerNode = 3

// probes: what the pods' servers listen on (nettest.TCPPorts, nettest.UDPPorts).
var probes = []struct {
	proto string
	port  uint16
}{{"TCP", 80}, {"TCP", 443}, {"TCP", 8080}, {"UDP", 53}, {"UDP", 8080}}

type env struct {
	t      *testing.T
	topo   *nettest.Topology
	member client.Client
	// cluster is the member's name in the fleets the test checks.
	cluster string
	nodeOf  func(i int) string
	// put makes the member hold the cluster's objects of f (written directly, or through the
	// hub) and returns f as it now holds (defaults applied) and the member's objects.
	put func(t *testing.T, g Gomega, f policy.Fleet) (policy.Fleet, enforcetest.Member)
	// realized, if set, checks the hub's view once the member reports f realized.
	realized func(t *testing.T, g Gomega, f policy.Fleet)
	// toAudit switches each agent's config file to Audit.
	toAudit []func() error
	// metricsPorts are the agents' metrics ports, by node, on metricsHost (127.0.0.1 when empty).
	metricsPorts []int
	metricsHost  string
	// audit: the agents run in Audit mode, so every connection must connect.
	audit bool
}

// newTopology builds the nodes and pods (removed at the end of the test), or skips the test
// without root or nftables.
func newTopology(t *testing.T) *nettest.Topology {
	if os.Geteuid() != 0 {
		t.Skip("the dataplane end-to-end test needs root (network namespaces and nftables): run `make test` as root")
	}
	nettest.RemoveStale()
	topo, err := nettest.NewTopology(podsPerNode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left := nettest.Remaining(); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	if err := nettest.NftablesAvailable(topo.Nodes[0].NS); err != nil {
		t.Skipf("nftables is not available: %v", err)
	}
	return topo
}

// prepareMember, with install, installs the member CRDs and the agent's namespace (as the
// AgentConfig's Work would); it creates the teams' namespaces and base's pods of the cluster. The
// test plays the kubelet: pods with their node, address, labels and named ports; the same pods in
// every fleet, only the policies change.
func (e *env) prepareMember(g Gomega, ctx context.Context, m *testbed.Cluster, base policy.Fleet, install bool) {
	if install {
		for _, name := range []string{"membernetworkpolicies.member.meridian.io", "nodeagentinfos.member.meridian.io"} {
			crd, err := membercrds.CRD(name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(m.Client.Create(ctx, crd)).To(Succeed())
		}
		e.waitServed(g, ctx)
		g.Expect(m.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: memberv1alpha1.AgentNamespace}})).To(Succeed())
	}
	for _, team := range policytest.Teams {
		g.Expect(m.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team, Labels: map[string]string{"team": team}}})).To(Succeed())
	}
	mem, err := enforcetest.MemberOf(base, e.cluster, e.nodeOf)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range mem.Pods {
		p := mem.Pods[i].DeepCopy()
		status := p.Status
		g.Expect(m.Client.Create(ctx, p)).To(Succeed())
		p.Status = status
		g.Expect(m.Client.Status().Update(ctx, p)).To(Succeed())
	}
}

// waitServed waits until the member serves the member CRDs.
func (e *env) waitServed(g Gomega, ctx context.Context) {
	g.Eventually(func() error {
		return e.member.List(ctx, &memberv1alpha1.MemberNetworkPolicyList{})
	}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func() error {
		return e.member.List(ctx, &memberv1alpha1.NodeAgentInfoList{})
	}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
}

// startAgents runs one agent per node, in-process, its table in its node's namespace, until the
// test ends.
func (e *env) startAgents(g Gomega, ctx context.Context, m *testbed.Cluster) {
	t := e.t
	agentCtx, stopAgents := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopAgents(); wg.Wait() })
	for _, n := range e.topo.Nodes {
		dir := t.TempDir()
		port := freePort(t)
		writeConfig := func(mode string) error {
			return agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: []byte(fmt.Sprintf(
				"apiVersion: agent.meridian.io/v1alpha1\nkind: NodeAgentConfiguration\nmetricsPort: %d\nenforcementMode: %s\ndropLogging: {enabled: true, ratePerSecond: 5}\n", port, mode))})
		}
		g.Expect(writeConfig("Enforce")).To(Succeed())
		e.toAudit = append(e.toAudit, func() error { return writeConfig("Audit") })
		e.metricsPorts = append(e.metricsPorts, port)
		c, err := agent.NewClient(m.Config)
		g.Expect(err).NotTo(HaveOccurred())
		a, err := agent.New(agent.Options{NodeName: nodeName(n), ConfigPath: filepath.Join(dir, agentfile.FileName), Version: "e2e",
			Client: c, MetricsHost: e.host(), LogOutput: testWriter{t},
			Dataplane: &agent.DataplaneOptions{RESTConfig: m.Config, NetNSFd: int(n.NS)}})
		g.Expect(err).NotTo(HaveOccurred())
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(agentCtx) }()
	}
}

// TestDataplaneEndToEnd writes the member's MemberNetworkPolicies itself (from the real
// translator); TestHubToKernel has the manager write them from GlobalNetworkPolicies on a hub.
func TestDataplaneEndToEnd(t *testing.T) {
	topo := newTopology(t)
	g := NewWithT(t)
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(memberv1alpha1.AddToScheme(scheme)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bed, err := testbed.Start(ctx, testbed.Options{Members: []string{"member-1"}, Scheme: scheme})
	if bed != nil {
		t.Cleanup(func() { _ = bed.Stop() })
	}
	g.Expect(err).NotTo(HaveOccurred())
	m := bed.Member("member-1")

	e := &env{t: t, topo: topo, member: m.Client, cluster: "m0", nodeOf: func(i int) string { return nodeName(topo.Pods[i].Node) }}
	e.put = func(_ *testing.T, g Gomega, f policy.Fleet) (policy.Fleet, enforcetest.Member) {
		mem, err := enforcetest.MemberOf(f, e.cluster, e.nodeOf)
		g.Expect(err).NotTo(HaveOccurred())
		e.sync(g, ctx, mem, true)
		return f, mem
	}
	base := fleet(rand.New(rand.NewSource(1)), topo, 2)
	e.prepareMember(g, ctx, m, base, true)
	e.startAgents(g, ctx, m)

	t.Run("hand-written", func(t *testing.T) {
		before := e.scrape(t)
		e.check(t, handWritten(base))
		e.deniedMoved(t, before, "meridian_agent_dataplane_denied_packets_total", []denial{
			{"no-https-into-shop", "ingress", "Drop"}, {"/dns", "egress", "Reject"}, {"team-only-8080", "ingress", "Reject"}})
		e.podCountersMoved(t, handWritten(base), "no-https-into-shop")
		after := e.scrape(t)
		for i, m := range after {
			for _, name := range []string{"meridian_agent_dataplane_transactions_total", "meridian_agent_dataplane_transaction_duration_seconds",
				"meridian_agent_dataplane_nftables_rules", "meridian_agent_dataplane_policy_rules", "meridian_agent_dataplane_sets", "meridian_agent_dataplane_set_elements"} {
				if m[name] <= 0 {
					t.Errorf("agent of %s: %s is %v after the table was programmed", e.topo.Nodes[i].Name, name, m[name])
				}
			}
		}
	})
	for _, seed := range []int64{2, 3} {
		t.Run(fmt.Sprintf("random seed %d", seed), func(t *testing.T) { e.check(t, reseed(base, seed, topo)) })
	}
	t.Run("update then delete", func(t *testing.T) {
		f := handWritten(base)
		f.Policies[0].Spec.Ingress[0].Action = policyv1alpha1.ActionReject
		e.check(t, f)
		f.Policies = f.Policies[1:]
		e.check(t, f)
	})
	t.Run("audit mode lets everything through", func(t *testing.T) {
		for _, write := range e.toAudit {
			NewWithT(t).Expect(write()).To(Succeed())
		}
		e.audit = true
		before := e.scrape(t)
		e.check(t, handWritten(base))
		e.deniedMoved(t, before, "meridian_agent_dataplane_audit_would_deny_packets_total", []denial{
			{"no-https-into-shop", "ingress", "Drop"}, {"/dns", "egress", "Reject"}})
	})
}

func (e *env) host() string {
	if e.metricsHost == "" {
		return "127.0.0.1"
	}
	return e.metricsHost
}

// scrape reads each agent's /metrics (its real endpoint, on the port of its config file) as
// sample name{labels} -> value; histograms count their observations under their own name.
func (e *env) scrape(t *testing.T) []map[string]float64 {
	t.Helper()
	var out []map[string]float64
	for i, port := range e.metricsPorts {
		// The agent starts its metrics server on its own goroutine: the first scrape may come
		// before it listens.
		var resp *http.Response
		NewWithT(t).Eventually(func() (err error) {
			resp, err = http.Get(fmt.Sprintf("http://%s/metrics", net.JoinHostPort(e.host(), fmt.Sprint(port))))
			return err
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed(), "scrape the agent of %s", e.topo.Nodes[i].Name)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("parse the metrics of the agent of %s: %v", e.topo.Nodes[i].Name, err)
		}
		m := map[string]float64{}
		for name, f := range families {
			for _, s := range f.GetMetric() {
				var labels []string
				for _, l := range s.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				v := s.GetCounter().GetValue() + s.GetGauge().GetValue() + float64(s.GetHistogram().GetSampleCount())
				m[name] += v
				if len(labels) > 0 {
					m[name+"{"+strings.Join(labels, ",")+"}"] = v
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// podCountersMoved asks each node's agent, on its metrics port, for the rules and counters of
// each of its pods (agent.CountersPath, what trace reads): every pod of the node has rules, and
// some pod's rule of the named policy counted packets. It checks the endpoint's refusals too.
func (e *env) podCountersMoved(t *testing.T, f policy.Fleet, policyName string) {
	t.Helper()
	get := func(port int, pod string, conn ...string) (int, agent.PodCounters) {
		q := url.Values{"pod": {pod}}
		for i := 0; i+1 < len(conn); i += 2 {
			q.Set(conn[i], conn[i+1])
		}
		resp, err := http.Get(fmt.Sprintf("http://%s%s?%s", net.JoinHostPort(e.host(), fmt.Sprint(port)), agent.CountersPath, q.Encode()))
		if err != nil {
			t.Fatalf("ask the agent for %s: %v", pod, err)
		}
		defer resp.Body.Close()
		var pc agent.PodCounters
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&pc); err != nil {
				t.Fatalf("decode the counters of %s: %v", pod, err)
			}
		}
		return resp.StatusCode, pc
	}
	counted := false
	for i, p := range e.topo.Pods {
		node := slices.Index(e.topo.Nodes, p.Node)
		name := f.Clusters[0].Pods[i].Namespace + "/" + f.Clusters[0].Pods[i].Name
		code, pc := get(e.metricsPorts[node], name)
		if code != http.StatusOK || len(pc.Rules) == 0 || pc.Node != nodeName(p.Node) {
			t.Errorf("the agent of %s answered %d with %d rules (node %q) for its pod %s", p.Node.Name, code, len(pc.Rules), pc.Node, name)
			continue
		}
		for _, r := range pc.Rules {
			counted = counted || (strings.Contains(r.Name, policyName) && r.Packets > 0)
		}
		// Named a connection, the agent says which of those rules decides it.
		peer := e.topo.Pods[(i+1)%len(e.topo.Pods)].IP.String()
		code, pc = get(e.metricsPorts[node], name, "direction", "ingress", "peer", peer, "protocol", "TCP", "port", "443")
		switch {
		case code != http.StatusOK || pc.Decision == nil:
			t.Errorf("the agent of %s answered %d with decision %v for pod %s's ingress from %s", p.Node.Name, code, pc.Decision, name, peer)
		case !slices.ContainsFunc(pc.Rules, func(r dataplane.RuleCounter) bool {
			return r.Direction == "ingress" && r.Stage == pc.Decision.Stage && r.Index == pc.Decision.Index
		}):
			t.Errorf("the agent of %s decides pod %s's ingress from %s by %+v, which is none of its rules %+v", p.Node.Name, name, peer, *pc.Decision, pc.Rules)
		}
		if code, _ := get(e.metricsPorts[node], name, "direction", "ingress", "peer", peer); code != http.StatusBadRequest {
			t.Errorf("a request naming half a connection was answered %d, want 400", code)
		}
		other := e.metricsPorts[1-node]
		if code, _ := get(other, name); code != http.StatusNotFound {
			t.Errorf("the agent of the other node answered %d for pod %s, which is not its own; want 404", code, name)
		}
	}
	if !counted {
		t.Errorf("no pod's rule of policy %s counted a packet on its agent's %s", policyName, agent.CountersPath)
	}
	if code, _ := get(e.metricsPorts[0], ""); code != http.StatusBadRequest {
		t.Errorf("a request naming no pod was answered %d, want 400", code)
	}
}

// denial is a series of a denial counter: a policy (a substring of the label), direction and
// action.
type denial struct{ policy, direction, action string }

// deniedMoved checks that, on some node, each denial's series of the metric counted more than
// before: the probes of check met those rules.
func (e *env) deniedMoved(t *testing.T, before []map[string]float64, metric string, want []denial) {
	t.Helper()
	after := e.scrape(t)
	for _, d := range want {
		moved := false
		for i := range after {
			for key, v := range after[i] {
				if strings.HasPrefix(key, metric+"{") && strings.Contains(key, "action="+d.action) &&
					strings.Contains(key, "direction="+d.direction) && strings.Contains(key, d.policy) && v > before[i][key] {
					moved = true
					t.Logf("agent of %s: %s %v -> %v", e.topo.Nodes[i].Name, key, before[i][key], v)
				}
			}
		}
		if !moved {
			t.Errorf("no agent's %s for policy %q, %s, %s moved after the probes; series:\n%s", metric, d.policy, d.direction, d.action, seriesOf(after, metric))
		}
	}
}

func seriesOf(ms []map[string]float64, metric string) string {
	var lines []string
	for i, m := range ms {
		for key, v := range m {
			if strings.HasPrefix(key, metric) {
				lines = append(lines, fmt.Sprintf("  node %d: %s = %v", i, key, v))
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// reseed is the seed's policies and NetworkPolicies over base's clusters and pods.
func reseed(base policy.Fleet, seed int64, topo *nettest.Topology) policy.Fleet {
	f := fleet(rand.New(rand.NewSource(seed)), topo, len(base.Clusters))
	nps := f.Clusters[0].NetworkPolicies
	f.Clusters = append([]policy.Cluster(nil), base.Clusters...)
	f.Clusters[0].NetworkPolicies = nps
	return f
}

// nodeName is a node's name as the member knows it (nettest's roles are not lowercase).
func nodeName(n *nettest.Node) string { return strings.ToLower(n.Name) }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fleet is a random fleet whose member m0 has the topology's pods and, with two members, m1
// some pods that exist only as addresses (ClusterSet peers resolve to them).
func fleet(r *rand.Rand, topo *nettest.Topology, members int) policy.Fleet {
	return policytest.Fleet(r, policytest.Options{
		Members: members, MinPods: len(topo.Pods), MaxPods: len(topo.Pods), MaxPolicies: 5,
		IP: func(c, i int) string {
			if c == 0 {
				return topo.Pods[i].IP.String()
			}
			return fmt.Sprintf("198.18.3.%d", i+1)
		},
		Ports:     []int32{53, 80, 443, 8080},
		Protocols: []policyv1alpha1.Protocol{"TCP", "TCP", "UDP"},
		Blocks: []policyv1alpha1.IPBlock{
			{CIDR: "0.0.0.0/0"},
			{CIDR: "198.18.0.0/15", Except: []string{"198.18.2.0/24"}},
			{CIDR: "198.18.1.0/24", Except: []string{"198.18.1.2/32"}},
			{CIDR: "198.18.2.0/24"},
		},
	})
}

// handWritten: a securityops Drop of TCP 443 into shop, an application Reject of UDP 53 with a
// Pass before it for db pods, a baseline Reject of TCP 8080 from outside the team, and a
// NetworkPolicy for the Pass to land on.
func handWritten(base policy.Fleet) policy.Fleet {
	f := base
	f.Policies = nil
	f.Clusters = append([]policy.Cluster(nil), base.Clusters...)
	every := &metav1.LabelSelector{}
	port := func(proto string, p int32) policyv1alpha1.Port {
		v := intstr.FromInt32(p)
		return policyv1alpha1.Port{Protocol: policyv1alpha1.Protocol(proto), Port: &v}
	}
	gnp := func(name, tier string, applied policyv1alpha1.AppliedTo, ingress, egress []policyv1alpha1.Rule) policyv1alpha1.GlobalNetworkPolicy {
		g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{Tier: tier, AppliedTo: applied, Ingress: ingress, Egress: egress}}
		g.Spec.Placement.ClusterSelector = &metav1.LabelSelector{}
		g.Name = name
		return g
	}
	f.Policies = []policyv1alpha1.GlobalNetworkPolicy{
		gnp("no-https-into-shop", "securityops", policyv1alpha1.AppliedTo{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}},
			[]policyv1alpha1.Rule{{Name: "drop-443", Action: "Drop", Peers: []policyv1alpha1.Peer{{PodSelector: every, NamespaceSelector: every}}, Ports: []policyv1alpha1.Port{port("TCP", 443)}}}, nil),
		gnp("dns", "application", policyv1alpha1.AppliedTo{PodSelector: every},
			nil, []policyv1alpha1.Rule{
				{Name: "db-passes", Action: "Pass", Peers: []policyv1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}},
				{Name: "reject-dns", Action: "Reject", Peers: []policyv1alpha1.Peer{{IPBlock: &policyv1alpha1.IPBlock{CIDR: "198.18.0.0/15"}}}, Ports: []policyv1alpha1.Port{port("UDP", 53)}},
			}),
		gnp("team-only-8080", "baseline", policyv1alpha1.AppliedTo{PodSelector: every},
			[]policyv1alpha1.Rule{{Name: "reject-others", Action: "Reject", Peers: []policyv1alpha1.Peer{{IPBlock: &policyv1alpha1.IPBlock{CIDR: "0.0.0.0/0"}}}, Ports: []policyv1alpha1.Port{port("TCP", 8080)}}}, nil),
	}
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "pay", Name: "db-egress"}}
	np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}}}
	c0 := f.Clusters[0]
	c0.NetworkPolicies = []networkingv1.NetworkPolicy{np}
	f.Clusters[0] = c0
	return f
}

// check puts f's member m0 objects into the member, waits for both agents to report them
// programmed, and probes every pair of pods on every port against the reference.
func (e *env) check(t *testing.T, f policy.Fleet) {
	g := NewWithT(t)
	ctx := context.Background()
	f, mem := e.put(t, g, f)

	// Wait for each node's agent to report what it must enforce: the policies at their current
	// generations and the rule count that the compiler gives for the objects now in the member.
	var live []memberv1alpha1.MemberNetworkPolicy
	var list memberv1alpha1.MemberNetworkPolicyList
	g.Expect(e.member.List(ctx, &list)).To(Succeed())
	live = list.Items
	for _, n := range e.topo.Nodes {
		want := enforce.Compile(enforce.Input{Node: nodeName(n), Policies: live, NetworkPolicies: mem.NetworkPolicies, Namespaces: mem.Namespaces, Pods: mem.Pods})
		g.Expect(want.Errors).To(BeEmpty())
		var wantPolicies []memberv1alpha1.RealizedPolicy
		for _, p := range live {
			wantPolicies = append(wantPolicies, memberv1alpha1.RealizedPolicy{Name: p.Name, Generation: p.Generation})
		}
		sort.Slice(wantPolicies, func(i, j int) bool { return wantPolicies[i].Name < wantPolicies[j].Name })
		g.Eventually(func(g Gomega) {
			info := &memberv1alpha1.NodeAgentInfo{}
			g.Expect(e.member.Get(ctx, client.ObjectKey{Name: nodeName(n)}, info)).To(Succeed())
			c := meta.FindStatusCondition(info.Conditions, memberv1alpha1.DataplaneReadyCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
			g.Expect(c.Reason).To(Equal(memberv1alpha1.DataplaneProgrammedReason))
			g.Expect(info.Policies).To(Equal(wantPolicies))
			g.Expect(info.Dataplane).NotTo(BeNil())
			g.Expect(info.Dataplane.Rules).To(Equal(int32(want.Rules)))
			g.Expect(info.Dataplane.Pods).To(Equal(int32(podsPerNode)))
			mode := "Enforce"
			if e.audit {
				mode = "Audit"
			}
			g.Expect(info.EnforcementMode).To(Equal(mode))
			g.Expect(c.Message).To(ContainSubstring("mode " + mode))
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed(), "node %s", n.Name)
	}
	// The elected agent folds the nodes' reports into each policy's status.
	for _, p := range live {
		g.Eventually(func(g Gomega) {
			cur := &memberv1alpha1.MemberNetworkPolicy{}
			g.Expect(e.member.Get(ctx, client.ObjectKeyFromObject(&p), cur)).To(Succeed())
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
			g.Expect(cur.Status.NodesDesired).To(BeEquivalentTo(len(e.topo.Nodes)))
			g.Expect(cur.Status.NodesRealized).To(BeEquivalentTo(len(e.topo.Nodes)))
			g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, memberv1alpha1.PolicyReadyCondition)).To(BeTrue())
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed(), "status of MemberNetworkPolicy %s", p.Name)
	}
	if e.realized != nil {
		e.realized(t, g, f)
	}

	ref, err := policy.NewModel(f)
	g.Expect(err).NotTo(HaveOccurred())
	type probe struct {
		from, to int
		proto    string
		port     uint16
		want     nettest.Outcome
		why      string
	}
	var ps []probe
	for i := range e.topo.Pods {
		for j := range e.topo.Pods {
			if i == j {
				continue
			}
			for _, pr := range probes {
				from, to := f.Clusters[0].Pods[i], f.Clusters[0].Pods[j]
				d, err := ref.Evaluate(policy.Connection{
					From:     policy.Endpoint{Cluster: e.cluster, Namespace: from.Namespace, Name: from.Name},
					To:       policy.Endpoint{Cluster: e.cluster, Namespace: to.Namespace, Name: to.Name},
					Protocol: policyv1alpha1.Protocol(pr.proto), Port: int32(pr.port)})
				g.Expect(err).NotTo(HaveOccurred())
				want := map[policy.Verdict]nettest.Outcome{policy.Allow: nettest.Connected, policy.Drop: nettest.TimedOut, policy.Reject: nettest.Refused}[d.Verdict]
				if e.audit {
					want = nettest.Connected
				}
				ps = append(ps, probe{i, j, pr.proto, pr.port, want, d.String()})
			}
		}
	}
	var mu sync.Mutex
	var bad []string
	counts := map[nettest.Outcome]int{}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			src, dst := e.topo.Pods[p.from], e.topo.Pods[p.to]
			got, err := nettest.Probe(src, dst.IP, p.proto, p.port, 1500*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			counts[got]++
			if err != nil || got != p.want {
				bad = append(bad, fmt.Sprintf("%s(%s) -> %s(%s) %d/%s: %s (err %v), want %s; reference:\n%s",
					f.Clusters[0].Pods[p.from].Name, src.IP, f.Clusters[0].Pods[p.to].Name, dst.IP, p.port, p.proto, got, err, p.want, p.why))
			}
		}()
	}
	wg.Wait()
	t.Logf("%d probes: %v", len(ps), counts)
	if len(bad) > 0 {
		t.Fatalf("%d of %d connections disagree with the reference:\n%s", len(bad), len(ps), strings.Join(bad, "\n"))
	}
}

// sync makes the member's NetworkPolicies, and with policies its MemberNetworkPolicies, those
// of mem.
func (e *env) sync(g Gomega, ctx context.Context, mem enforcetest.Member, policies bool) {
	var objs []client.Object
	if policies {
		for i := range mem.Policies {
			objs = append(objs, mem.Policies[i].DeepCopy())
		}
	}
	for i := range mem.NetworkPolicies {
		objs = append(objs, mem.NetworkPolicies[i].DeepCopy())
	}
	keep := map[string]bool{}
	for _, o := range objs {
		key := fmt.Sprintf("%T/%s/%s", o, o.GetNamespace(), o.GetName())
		keep[key] = true
		cur := o.DeepCopyObject().(client.Object)
		err := e.member.Get(ctx, client.ObjectKeyFromObject(o), cur)
		if apierrors.IsNotFound(err) {
			o.SetResourceVersion("")
			g.Expect(e.member.Create(ctx, o)).To(Succeed())
			continue
		}
		g.Expect(err).NotTo(HaveOccurred())
		o.SetResourceVersion(cur.GetResourceVersion())
		g.Expect(e.member.Update(ctx, o)).To(Succeed())
	}
	var mnps memberv1alpha1.MemberNetworkPolicyList
	g.Expect(e.member.List(ctx, &mnps)).To(Succeed())
	for i := range mnps.Items {
		o := &mnps.Items[i]
		if policies && !keep[fmt.Sprintf("%T/%s/%s", o, o.Namespace, o.Name)] {
			g.Expect(e.member.Delete(ctx, o)).To(Succeed())
		}
	}
	var nps networkingv1.NetworkPolicyList
	g.Expect(e.member.List(ctx, &nps)).To(Succeed())
	for i := range nps.Items {
		o := &nps.Items[i]
		if !keep[fmt.Sprintf("%T/%s/%s", o, o.Namespace, o.Name)] {
			g.Expect(e.member.Delete(ctx, o, &client.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		}
	}
}
