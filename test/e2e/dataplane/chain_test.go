package dataplane_test

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/agent/enforce/enforcetest"
	"github.com/meridian-io/meridian/internal/agentconfig"
	"github.com/meridian-io/meridian/internal/dataplane/nettest"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/internal/policy/trace"
	"github.com/meridian-io/meridian/test/testbed"
)

// hubMember is the member's name on the hub and in the fleets: the fleets' first cluster.
const hubMember = "m0"

// TestHubToKernel runs the whole chain: GlobalNetworkPolicies applied on a hub, the manager (as
// the integration suites start it) choosing the member's form from its CRDs and writing the
// MemberNetworkPolicies through the work engine, the node agents programming their tables, and
// real connections between the pods obeying internal/policy.Evaluate. NetworkPolicies are the
// member's own, written into it by the test.
func TestHubToKernel(t *testing.T) {
	topo := newTopology(t)
	g := NewWithT(t)
	logs := &quietAfter{t: t}
	t.Cleanup(logs.stop) // runs after the manager and agents have stopped (cleanups run last first)
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	scheme, err := controllers.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(memberv1alpha1.AddToScheme(scheme)).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bed, err := testbed.Start(ctx, testbed.Options{Members: []string{hubMember}, Scheme: scheme})
	if bed != nil {
		t.Cleanup(func() { _ = bed.Stop() })
	}
	g.Expect(err).NotTo(HaveOccurred())
	m := bed.Member(hubMember)
	hub := bed.Hub.Client

	// One member: ClusterSet peers select its own pods, as the reference says for a fleet of one.
	base := fleet(rand.New(rand.NewSource(1)), topo, 1)
	e := &env{t: t, topo: topo, member: m.Client, cluster: hubMember, nodeOf: func(i int) string { return nodeName(topo.Pods[i].Node) }}
	e.put = func(t *testing.T, g Gomega, f policy.Fleet) (policy.Fleet, enforcetest.Member) {
		return putOnHub(t, g, ctx, e, hub, f)
	}
	// The member CRDs come with the agent, from an AgentConfig on the hub (below).
	e.prepareMember(g, ctx, m, base, false)

	opts := controllers.DefaultOptions()
	opts.EnableWebhooks = false
	mgr, err := bed.StartManager(opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = mgr.Stop() })
	g.Expect(bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1},
		map[string]map[string]string{hubMember: base.Clusters[0].Labels})).To(Succeed())
	// The fleets' custom tier; the manager creates the default ones.
	for _, tier := range base.Tiers {
		if tier.Name == "team" {
			tier := tier.DeepCopy()
			g.Expect(hub.Create(ctx, tier)).To(Succeed())
		}
	}
	g.Eventually(func() error {
		return hub.Get(ctx, client.ObjectKey{Name: policyv1alpha1.TierBaseline}, &policyv1alpha1.Tier{})
	}, 60*time.Second, 100*time.Millisecond).Should(Succeed())

	t.Run("installing the agent switches the member to the Meridian form", func(t *testing.T) {
		g := NewWithT(t)
		// Before the agent, the member serves no MemberNetworkPolicy: an all-Allow policy is
		// written as NetworkPolicies (Restricted).
		before := handWritten(base).Policies[0].DeepCopy()
		before.Name = "before-the-agent"
		before.Spec.Ingress[0].Action = policyv1alpha1.ActionAllow
		g.Expect(hub.Create(ctx, before)).To(Succeed())
		formOf := func(g Gomega) policyv1alpha1.ClusterPolicyStatus {
			gnp := &policyv1alpha1.GlobalNetworkPolicy{}
			g.Expect(hub.Get(ctx, client.ObjectKeyFromObject(before), gnp)).To(Succeed())
			g.Expect(gnp.Status.Clusters).To(HaveLen(1))
			return gnp.Status.Clusters[0]
		}
		g.Eventually(formOf, 60*time.Second, 100*time.Millisecond).Should(And(
			HaveField("Form", policyv1alpha1.FormNetworkPolicy), HaveField("Phase", policyv1alpha1.PhaseRealized)))
		np := &networkingv1.NetworkPolicy{}
		g.Expect(m.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "meridian-" + before.Name}, np)).To(Succeed())

		ac := &fleetv1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Name: "agents"}, Spec: fleetv1alpha1.AgentConfigSpec{
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			Image:     "registry.invalid/meridian-node-agent:e2e", Version: "e2e",
			Config: fleetv1alpha1.AgentSettings{EnforcementMode: fleetv1alpha1.EnforcementEnforce, HeartbeatIntervalSeconds: 10,
				MetricsPort: 9465, DropLogging: fleetv1alpha1.DropLogging{RatePerSecond: 100}},
		}}
		g.Expect(hub.Create(ctx, ac)).To(Succeed())
		e.waitServed(g, ctx)
		// The member accepted the admission policy (its CEL compiles on this apiserver).
		g.Eventually(func() error {
			return m.Client.Get(ctx, client.ObjectKey{Name: agentconfig.OwnNodePolicyName}, &admissionregistrationv1.ValidatingAdmissionPolicy{})
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
		// Written in Meridian's form, but no agent runs yet (they start below): nothing enforces
		// it, and the hub says so rather than calling an applied Work realized.
		g.Eventually(formOf, 60*time.Second, 100*time.Millisecond).Should(And(
			HaveField("Form", policyv1alpha1.FormMeridian), HaveField("Enforcement", policyv1alpha1.EnforcementExact),
			HaveField("Phase", policyv1alpha1.PhasePending), HaveField("Message", compile.NoAgentReportsMessage)))
		g.Eventually(func() error {
			return m.Client.Get(ctx, client.ObjectKey{Name: before.Name}, &memberv1alpha1.MemberNetworkPolicy{})
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
		// The NetworkPolicy form is gone from the member: the Work holds the new form only.
		g.Eventually(func() bool {
			return apierrors.IsNotFound(m.Client.Get(ctx, client.ObjectKeyFromObject(np), &networkingv1.NetworkPolicy{}))
		}, 60*time.Second, 100*time.Millisecond).Should(BeTrue())
	})
	// The agents in this process stand for the DaemonSet's pods (the member has no kubelets).
	// Their metrics ports listen on an address the member apiserver's pods/proxy accepts (it
	// refuses loopback): one from 198.18.0.0/15 given to this host's loopback device (not in 127.0.0.0/8), so that trace reads
	// them as it would a real agent.
	removeHostAddr, err := nettest.HostAddress(agentsHostAddr)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = removeHostAddr() })
	e.metricsHost = agentsHostAddr.String()
	e.startAgents(g, ctx, m)
	e.realized = func(t *testing.T, g Gomega, f policy.Fleet) { hubShowsNodes(g, ctx, hub, f, len(topo.Nodes)) }

	t.Run("hand-written", func(t *testing.T) { e.check(t, handWritten(base)) })
	t.Run("trace shows the agent's rule and counter", func(t *testing.T) {
		f := isolateOne(handWritten(base))
		e.check(t, f)
		traceReadsAgents(t, ctx, e, bed, f)
	})
	for _, seed := range []int64{2, 3} {
		t.Run(fmt.Sprintf("random seed %d", seed), func(t *testing.T) { e.check(t, reseed(base, seed, topo)) })
	}
	t.Run("a new generation that changes nothing in the kernel is realized", func(t *testing.T) {
		g := NewWithT(t)
		f := handWritten(base)
		e.check(t, f)
		programmed := dataplaneGenerations(g, ctx, e)
		// The only policy of its tier: a new priority is a new generation, the same table.
		f.Policies[1].Spec.Priority = ptr.To[int32](5)
		e.check(t, f)
		g.Expect(dataplaneGenerations(g, ctx, e)).To(Equal(programmed), "the table was reprogrammed")
	})
	t.Run("update then delete on the hub", func(t *testing.T) {
		f := handWritten(base)
		e.check(t, f)
		f.Policies[0].Spec.Ingress[0].Action = policyv1alpha1.ActionReject
		e.check(t, f)
		f.Policies = f.Policies[1:]
		e.check(t, f)
	})
}

// quietAfter logs to the test until stop: goroutines of the manager may outlive it a little,
// and logging to a finished test panics.
type quietAfter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (q *quietAfter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.stopped {
		q.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (q *quietAfter) stop() { q.mu.Lock(); q.stopped = true; q.mu.Unlock() }

// putOnHub applies f's policies on the hub (created, updated, deleted), puts f's NetworkPolicies
// into the member, and waits until the manager has written into the member exactly the
// MemberNetworkPolicies the translator gives for the policies as the hub holds them (defaults
// applied: an omitted priority is 1000) and the hub reports each policy realized there in
// Meridian's form. It returns the fleet with the hub's policies and the member's objects.
func putOnHub(t *testing.T, g Gomega, ctx context.Context, e *env, hub client.Client, f policy.Fleet) (policy.Fleet, enforcetest.Member) {
	want := map[string]bool{}
	f.Policies = append([]policyv1alpha1.GlobalNetworkPolicy(nil), f.Policies...)
	for i := range f.Policies {
		p := f.Policies[i].DeepCopy()
		want[p.Name] = true
		cur := &policyv1alpha1.GlobalNetworkPolicy{}
		err := hub.Get(ctx, client.ObjectKeyFromObject(p), cur)
		if apierrors.IsNotFound(err) {
			g.Expect(hub.Create(ctx, p)).To(Succeed())
			continue
		}
		g.Expect(err).NotTo(HaveOccurred())
		cur.Spec = p.Spec
		g.Expect(hub.Update(ctx, cur)).To(Succeed())
	}
	var list policyv1alpha1.GlobalNetworkPolicyList
	g.Expect(hub.List(ctx, &list)).To(Succeed())
	for i := range list.Items {
		if !want[list.Items[i].Name] {
			g.Expect(hub.Delete(ctx, &list.Items[i])).To(Succeed())
		}
	}
	for i := range f.Policies {
		held := &policyv1alpha1.GlobalNetworkPolicy{} // fresh: decoding into f's would write through its shared pointers
		g.Expect(hub.Get(ctx, client.ObjectKeyFromObject(&f.Policies[i]), held)).To(Succeed())
		f.Policies[i] = *held
	}
	mem, err := enforcetest.MemberOf(f, e.cluster, e.nodeOf)
	g.Expect(err).NotTo(HaveOccurred())
	e.sync(g, ctx, mem, false)

	wantSpecs := map[string]memberv1alpha1.MemberNetworkPolicySpec{}
	for _, p := range mem.Policies {
		wantSpecs[p.Name] = p.Spec
	}
	start := time.Now()
	g.Eventually(func(g Gomega) {
		var mnps memberv1alpha1.MemberNetworkPolicyList
		g.Expect(e.member.List(ctx, &mnps)).To(Succeed())
		got := map[string]memberv1alpha1.MemberNetworkPolicySpec{}
		for _, p := range mnps.Items {
			got[p.Name] = p.Spec
		}
		g.Expect(keys(got)).To(Equal(keys(wantSpecs)))
		for name, spec := range wantSpecs {
			g.Expect(equality.Semantic.DeepEqual(got[name], spec)).To(BeTrue(), "MemberNetworkPolicy %s:\n got %+v\nwant %+v", name, got[name], spec)
		}
	}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
	t.Logf("the member holds the %d MemberNetworkPolicies the hub's policies translate to after %v", len(wantSpecs), time.Since(start).Round(time.Millisecond))

	for _, p := range f.Policies {
		g.Eventually(func(g Gomega) {
			gnp := &policyv1alpha1.GlobalNetworkPolicy{}
			g.Expect(hub.Get(ctx, client.ObjectKey{Name: p.Name}, gnp)).To(Succeed())
			g.Expect(gnp.Status.ObservedGeneration).To(Equal(gnp.Generation))
			if _, placed := wantSpecs[p.Name]; !placed {
				// The placement does not select the member (env=prod against its labels).
				g.Expect(gnp.Status.Clusters).To(BeEmpty())
				return
			}
			g.Expect(gnp.Status.Clusters).To(HaveLen(1))
			c := gnp.Status.Clusters[0]
			g.Expect(c.Cluster).To(Equal(hubMember))
			g.Expect(c.Form).To(Equal(policyv1alpha1.FormMeridian))
			g.Expect(c.Enforcement).To(Equal(policyv1alpha1.EnforcementExact))
			g.Expect(c.Phase).To(Equal(policyv1alpha1.PhaseRealized), c.Message)
			g.Expect(meta.IsStatusConditionTrue(gnp.Status.Conditions, policyv1alpha1.ReadyCondition)).To(BeTrue())
			w := &fleetv1alpha1.ClusterWork{}
			g.Expect(hub.Get(ctx, client.ObjectKey{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + hubMember, Name: compile.WorkName(p.Name)}, w)).To(Succeed())
			g.Expect(w.Labels).To(HaveKeyWithValue(policyv1alpha1.FormLabel, string(policyv1alpha1.FormMeridian)))
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed(), "GlobalNetworkPolicy %s", p.Name)
	}
	return f, mem
}

// hubShowsNodes waits until the hub reports every policy of f placed on the member enforced by
// all its nodes (the MemberNetworkPolicy's status, read back through the Work).
func hubShowsNodes(g Gomega, ctx context.Context, hub client.Client, f policy.Fleet, nodes int) {
	for _, p := range f.Policies {
		g.Eventually(func(g Gomega) {
			gnp := &policyv1alpha1.GlobalNetworkPolicy{}
			g.Expect(hub.Get(ctx, client.ObjectKey{Name: p.Name}, gnp)).To(Succeed())
			g.Expect(gnp.Status.ObservedGeneration).To(Equal(gnp.Generation))
			for _, c := range gnp.Status.Clusters {
				g.Expect(c.NodesRealized).To(HaveValue(BeEquivalentTo(nodes)), "cluster %s: %s", c.Cluster, c.Message)
				g.Expect(c.NodesDesired).To(HaveValue(BeEquivalentTo(nodes)))
				g.Expect(c.Phase).To(Equal(policyv1alpha1.PhaseRealized))
			}
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed(), "GlobalNetworkPolicy %s", p.Name)
	}
}

// dataplaneGenerations are the nodes' last programmed table generations.
func dataplaneGenerations(g Gomega, ctx context.Context, e *env) map[string]int64 {
	out := map[string]int64{}
	for _, n := range e.topo.Nodes {
		info := &memberv1alpha1.NodeAgentInfo{}
		g.Expect(e.member.Get(ctx, client.ObjectKey{Name: nodeName(n)}, info)).To(Succeed())
		g.Expect(info.Dataplane).NotTo(BeNil())
		out[info.Name] = info.Dataplane.Generation
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// agentsHostAddr is where the agents' metrics ports listen in TestHubToKernel: in 198.18.0.0/15,
// outside the addresses nettest gives nodes and pods.
var agentsHostAddr = netip.MustParseAddr("198.19.254.1")

// traceReadsAgents runs `kubectl meridian trace`'s logic (trace.Run, with the credentials of the
// member's kubeconfig Secret) for a connection f denies by no-https-into-shop, after check's
// probes: the deciding step shows the agent's nftables rule with the packets it dropped, read
// through the member apiserver's pods/proxy from the agent of the destination's node; one more
// probe moves the counter. Then the same for sides that the namespace's NetworkPolicies (the
// isolation drop, an allow rule) or the default decided: trace shows the agent's rule for that
// decision, which one more probe moves. The test plays the kubelet for the agents' pods (the
// DaemonSet's label, its node, its metrics port, a host-network address).
func traceReadsAgents(t *testing.T, ctx context.Context, e *env, bed *testbed.Bed, f policy.Fleet) {
	g := NewWithT(t)
	for i, n := range e.topo.Nodes {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: memberv1alpha1.AgentNamespace, Name: "agent-" + nodeName(n),
				Labels: map[string]string{"app.kubernetes.io/name": agentconfig.AgentName}},
			Spec: corev1.PodSpec{NodeName: nodeName(n), HostNetwork: true, Containers: []corev1.Container{{Name: "agent", Image: "registry.invalid/agent:e2e",
				Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: int32(e.metricsPorts[i])}}}}},
		}
		g.Expect(e.member.Create(ctx, p)).To(Succeed())
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: e.metricsHost, HostIP: e.metricsHost}
		g.Expect(e.member.Status().Update(ctx, p)).To(Succeed())
	}
	scheme, err := trace.NewScheme()
	g.Expect(err).NotTo(HaveOccurred())
	hub := bed.Hub.Client
	pods := f.Clusters[0].Pods
	run := func(i, j int) *trace.Result {
		res, err := trace.Run(ctx, hub, trace.SecretConnector(hub, scheme), trace.Request{
			From: trace.PodName{Cluster: hubMember, Namespace: pods[i].Namespace, Name: pods[i].Name},
			To:   trace.PodName{Cluster: hubMember, Namespace: pods[j].Namespace, Name: pods[j].Name},
			Port: trace.Port{Number: 443, Protocol: policyv1alpha1.ProtocolTCP}})
		g.Expect(err).NotTo(HaveOccurred())
		return res
	}
	found := false
pairs:
	for i := range pods {
		for j := range pods {
			if i == j {
				continue
			}
			res := run(i, j)
			path := res.Decision.Ingress.Path
			if res.Decision.Egress.Verdict.Denied() || len(path) == 0 || path[len(path)-1].Policy != "no-https-into-shop" {
				continue
			}
			var out strings.Builder
			res.Print(&out)
			t.Log(out.String())
			last := res.IngressAgent[len(path)-1]
			g.Expect(last).To(And(HaveField("Found", true), HaveField("Action", "Drop"), HaveField("Node", e.nodeOf(j)),
				HaveField("Rule", HavePrefix(path[len(path)-1].Tier+"/no-https-into-shop/ingress/"))), out.String())
			g.Expect(out.String()).To(ContainSubstring("nftables rule " + last.Rule + " (agent meridian-system/agent-" + e.nodeOf(j) + " on node " + e.nodeOf(j) + ")"))
			outcome, err := nettest.Probe(e.topo.Pods[i], e.topo.Pods[j].IP, "TCP", 443, 300*time.Millisecond)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(outcome).To(Equal(nettest.TimedOut))
			again := run(i, j).IngressAgent[len(path)-1]
			g.Expect(again.Packets).To(BeNumerically(">", last.Packets), "one more dropped SYN (and its retries) on the same rule")
			t.Logf("%s -> %s: rule %s counted %d packets, %d after one more probe", pods[i].Name, pods[j].Name, last.Rule, last.Packets, again.Packets)
			found = true
			break pairs
		}
	}
	if !found {
		t.Fatalf("no pair of pods is denied on ingress by no-https-into-shop on 443/TCP: the fleet changed?")
	}

	// Sides decided by the NetworkPolicies or by the default, one of each kind the fleet has.
	outcomes := map[policy.Verdict]nettest.Outcome{policy.Allow: nettest.Connected, policy.Drop: nettest.TimedOut, policy.Reject: nettest.Refused}
	seen := map[string]bool{}
	for i := range pods {
		for j := range pods {
			if i == j {
				continue
			}
			res := run(i, j)
			for _, s := range []struct {
				dir  string
				side policy.Side
				node string
				rule func(*trace.Result) *trace.AgentRule
			}{
				{"egress", res.Decision.Egress, e.nodeOf(i), func(r *trace.Result) *trace.AgentRule { return r.EgressAgentDecision }},
				{"ingress", res.Decision.Ingress, e.nodeOf(j), func(r *trace.Result) *trace.AgentRule { return r.IngressAgentDecision }},
			} {
				var kind, stage string
				switch {
				case s.side.DecidedBy == policy.ByDefault:
					kind, stage = "the default accept", "default"
				case s.side.DecidedBy != policy.ByNetworkPolicy:
					continue
				case s.side.Verdict.Denied():
					kind, stage = "the NetworkPolicy isolation drop", "networkpolicy"
				default:
					kind, stage = "a NetworkPolicy allow rule", "networkpolicy"
				}
				// An ingress side behind a denying egress side never sees the packet.
				if seen[kind] || (s.dir == "ingress" && res.Decision.Egress.Verdict.Denied()) {
					continue
				}
				seen[kind] = true
				var out strings.Builder
				res.Print(&out)
				t.Log(out.String())
				got := s.rule(res)
				g.Expect(got).NotTo(BeNil(), "%s side of %s -> %s: no agent rule for %s\n%s", s.dir, pods[i].Name, pods[j].Name, kind, out.String())
				g.Expect(*got).To(And(HaveField("Found", true), HaveField("Note", ""), HaveField("Node", s.node), HaveField("Stage", stage),
					HaveField("Action", string(s.side.Verdict))), out.String())
				name := got.Rule
				if got.Index < 0 {
					name = strconv.Quote(got.Rule)
				} else {
					g.Expect(got.Rule).To(HavePrefix("networkpolicy/"+map[string]string{"egress": pods[i].Namespace, "ingress": pods[j].Namespace}[s.dir]+"/"), out.String())
				}
				g.Expect(out.String()).To(ContainSubstring("nftables rule " + name + " (agent meridian-system/agent-" + s.node + " on node " + s.node + ")"))
				outcome, err := nettest.Probe(e.topo.Pods[i], e.topo.Pods[j].IP, "TCP", 443, 300*time.Millisecond)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(outcome).To(Equal(outcomes[res.Decision.Verdict]))
				again := s.rule(run(i, j))
				g.Expect(again).NotTo(BeNil())
				g.Expect(again.Packets).To(BeNumerically(">", got.Packets), "one more connection on %s", kind)
				t.Logf("%s -> %s, %s side: %s, rule %s counted %d packets, %d after one more probe", pods[i].Name, pods[j].Name, s.dir, kind, got.Rule, got.Packets, again.Packets)
			}
		}
	}
	t.Logf("sides decided by the NetworkPolicies or the default, checked: %v", keys(seen))
	g.Expect(keys(seen)).To(ConsistOf("the default accept", "the NetworkPolicy isolation drop", "a NetworkPolicy allow rule"))
}

// isolateOne adds to f a NetworkPolicy that isolates the first pod outside shop (where
// no-https-into-shop decides 443 first) for ingress and allows TCP 443 from one other pod: a
// side decided by a NetworkPolicy's allow rule and one by the isolation, whatever labels the
// fleet drew.
func isolateOne(f policy.Fleet) policy.Fleet {
	c := f.Clusters[0]
	pods := c.Pods
	j := slices.IndexFunc(pods, func(p policy.Pod) bool { return p.Namespace != "shop" })
	from := pods[(j+1)%len(pods)]
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: pods[j].Namespace, Name: "trace-isolate"}}
	np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: pods[j].Labels}
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	port := intstr.FromInt32(443)
	np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: from.IP + "/32"}}},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &port}},
	}}
	c.NetworkPolicies = append(append([]networkingv1.NetworkPolicy(nil), c.NetworkPolicies...), np)
	f.Clusters = append([]policy.Cluster(nil), f.Clusters...)
	f.Clusters[0] = c
	return f
}
