package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	membercrds "github.com/meridian-io/meridian/config/crd/member"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/agent"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/agent/agenttest"
	"github.com/meridian-io/meridian/internal/dataplane/nettest"
	"github.com/meridian-io/meridian/test/bench/benchkit"
	"github.com/meridian-io/meridian/test/testbed"
)

// ChainResult is the hub-change-to-kernel measurement: a GlobalNetworkPolicy changed on the hub
// until both nodes' agents report the new MemberNetworkPolicy generation programmed (the agent
// reports it only after the table holds it), against the baseline of the same change written
// straight into the member's own MemberNetworkPolicy, measured alternately in the same run.
type ChainResult struct {
	Pods           int     `json:"pods"`
	Nodes          int     `json:"nodes"`
	Changes        int     `json:"changes"`
	HubP50Ms       float64 `json:"hub_to_kernel_p50_ms"`
	HubP99Ms       float64 `json:"hub_to_kernel_p99_ms"`
	BaselineP50Ms  float64 `json:"baseline_member_to_kernel_p50_ms"`
	BaselineP99Ms  float64 `json:"baseline_member_to_kernel_p99_ms"`
	RulesPerNode   int32   `json:"rules_per_node"`
	PodsPerNodeSet int32   `json:"pods_enforced_per_node"`
}

// benchChain runs a hub with the manager in this process, one bare member "m0" holding
// BENCH_CHAIN_PODS Pod objects spread over two nodes (this program plays the kubelet), and one
// agent per node programming its table in its own network namespace.
func benchChain(r *Result) error {
	ctrl.SetLogger(logr.Discard())
	c := &r.Chain
	c.Pods, c.Nodes, c.Changes = benchkit.EnvInt("BENCH_CHAIN_PODS", 1000), 2, benchkit.EnvInt("BENCH_CHAIN_CHANGES", 30)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	if err := memberv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	bed, err := testbed.Start(ctx, testbed.Options{Members: []string{"m0"}, Scheme: scheme})
	if bed != nil {
		defer func() { _ = bed.Stop() }()
	}
	if err != nil {
		return err
	}
	m := bed.Member("m0")
	mc, hub := m.Client, bed.Hub.Client
	for _, name := range []string{"membernetworkpolicies.member.meridian.io", "nodeagentinfos.member.meridian.io"} {
		crd, err := membercrds.CRD(name)
		if err != nil {
			return err
		}
		if err := mc.Create(ctx, crd); err != nil {
			return err
		}
	}
	if err := benchkit.WaitFor(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
		return mc.List(ctx, &memberv1alpha1.MemberNetworkPolicyList{}) == nil && mc.List(ctx, &memberv1alpha1.NodeAgentInfoList{}) == nil, nil
	}); err != nil {
		return err
	}
	for _, ns := range []string{memberv1alpha1.AgentNamespace, "bench"} {
		if err := mc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	nodes := []string{"nodea", "nodeb"}
	logf("chain: creating %d Pod objects", c.Pods)
	if err := createPods(ctx, mc, c.Pods, nodes); err != nil {
		return err
	}
	opts := controllers.DefaultOptions()
	opts.EnableWebhooks = false
	mgr, err := bed.StartManager(opts)
	if err != nil {
		return err
	}
	defer func() { _ = mgr.Stop() }()
	if err := bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1}, nil); err != nil {
		return err
	}

	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer func() { stopAgents(); wg.Wait() }()
	for _, node := range nodes {
		ns, err := nettest.NewNS("chain-" + node)
		if err != nil {
			return err
		}
		defer ns.Close()
		dir, err := os.MkdirTemp("", "meridian-bench-agent-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		metricsPort := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: []byte(fmt.Sprintf("apiVersion: agent.meridian.io/v1alpha1\nkind: NodeAgentConfiguration\nmetricsPort: %d\n", metricsPort))}); err != nil {
			return err
		}
		cl, err := agent.NewClient(m.Config)
		if err != nil {
			return err
		}
		a, err := agent.New(agent.Options{NodeName: node, ConfigPath: filepath.Join(dir, agentfile.FileName), Version: "bench", Client: cl,
			MetricsHost: "127.0.0.1", LogOutput: io.Discard, Dataplane: &agent.DataplaneOptions{RESTConfig: m.Config, NetNSFd: int(ns.Handle)}})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(agentCtx) }()
	}

	// The measured policy comes from the hub; the baseline's is the member's own.
	g := &policyv1alpha1.GlobalNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
		AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Ingress:   []policyv1alpha1.Rule{{Name: "from-db", Action: policyv1alpha1.ActionAllow, Peers: []policyv1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}, Ports: []policyv1alpha1.Port{port(2000)}}},
	}}
	if err := hub.Create(ctx, g); err != nil {
		return err
	}
	direct := &memberv1alpha1.MemberNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "direct"}, Spec: memberv1alpha1.MemberNetworkPolicySpec{
		Tier: "application", TierPriority: 250, Priority: 2000, Policy: "direct", AppliedTo: g.Spec.AppliedTo,
		Ingress: []memberv1alpha1.MemberRule{{Name: "from-db", Action: policyv1alpha1.ActionAllow, Peers: []memberv1alpha1.MemberPeer{{PodSelector: g.Spec.Ingress[0].Peers[0].PodSelector}}, Ports: []policyv1alpha1.Port{port(3000)}}},
	}}
	if err := mc.Create(ctx, direct); err != nil {
		return err
	}
	logf("chain: waiting for both agents to enforce both policies over %d pods", c.Pods)
	for _, name := range []string{"bench", "direct"} {
		if _, err := enforced(ctx, mc, nodes, name, 0, 3*time.Minute); err != nil {
			cur := &policyv1alpha1.GlobalNetworkPolicy{}
			_ = hub.Get(ctx, client.ObjectKey{Name: "bench"}, cur)
			var infos memberv1alpha1.NodeAgentInfoList
			_ = mc.List(ctx, &infos)
			return fmt.Errorf("%w\nGlobalNetworkPolicy status: %+v\nNodeAgentInfos: %+v", err, cur.Status, infos.Items)
		}
	}
	info := &memberv1alpha1.NodeAgentInfo{}
	if err := mc.Get(ctx, client.ObjectKey{Name: nodes[0]}, info); err == nil && info.Dataplane != nil {
		c.RulesPerNode, c.PodsPerNodeSet = info.Dataplane.Rules, info.Dataplane.Pods
	}

	var viaHub, baseline []float64
	for i := range c.Changes {
		// Through the hub: the GlobalNetworkPolicy's port.
		cur := &policyv1alpha1.GlobalNetworkPolicy{}
		if err := hub.Get(ctx, client.ObjectKey{Name: "bench"}, cur); err != nil {
			return err
		}
		cur.Spec.Ingress[0].Ports = []policyv1alpha1.Port{port(int32(2001 + i))}
		mnp := &memberv1alpha1.MemberNetworkPolicy{}
		if err := mc.Get(ctx, client.ObjectKey{Name: "bench"}, mnp); err != nil {
			return err
		}
		start := time.Now()
		if err := hub.Update(ctx, cur); err != nil {
			return err
		}
		if _, err := enforced(ctx, mc, nodes, "bench", mnp.Generation+1, time.Minute); err != nil {
			return err
		}
		viaHub = append(viaHub, ms(time.Since(start)))

		// Baseline: the member's own object, the agents alone.
		if err := mc.Get(ctx, client.ObjectKey{Name: "direct"}, direct); err != nil {
			return err
		}
		direct.Spec.Ingress[0].Ports = []policyv1alpha1.Port{port(int32(3001 + i))}
		start = time.Now()
		if err := mc.Update(ctx, direct); err != nil {
			return err
		}
		if _, err := enforced(ctx, mc, nodes, "direct", direct.Generation, time.Minute); err != nil {
			return err
		}
		baseline = append(baseline, ms(time.Since(start)))
	}
	c.HubP50Ms, c.HubP99Ms = percentile(viaHub, 50), percentile(viaHub, 99)
	c.BaselineP50Ms, c.BaselineP99Ms = percentile(baseline, 50), percentile(baseline, 99)
	return nil
}

func port(p int32) policyv1alpha1.Port {
	v := intstr.FromInt32(p)
	return policyv1alpha1.Port{Protocol: policyv1alpha1.ProtocolTCP, Port: &v}
}

// enforced waits until every node's agent reports the policy programmed at generation gen (any
// generation when gen is 0), polling every 5 ms.
func enforced(ctx context.Context, c client.Client, nodes []string, policy string, gen int64, timeout time.Duration) (int64, error) {
	var seen int64
	err := benchkit.WaitFor(ctx, timeout, 5*time.Millisecond, func() (bool, error) {
		for _, node := range nodes {
			info := &memberv1alpha1.NodeAgentInfo{}
			if err := c.Get(ctx, client.ObjectKey{Name: node}, info); err != nil {
				return false, nil
			}
			if !meta.IsStatusConditionTrue(info.Conditions, memberv1alpha1.DataplaneReadyCondition) {
				return false, nil
			}
			ok := false
			for _, p := range info.Policies {
				if p.Name == policy && (gen == 0 || p.Generation == gen) {
					ok, seen = true, p.Generation
				}
			}
			if !ok {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("policy %s generation %d not enforced on every node: %w", policy, gen, err)
	}
	return seen, nil
}

// createPods creates n running pods in namespace bench, half web and half db, spread over nodes,
// with addresses in 198.19.0.0/16.
func createPods(ctx context.Context, c client.Client, n int, nodes []string) error {
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("pod-%04d", i), Labels: map[string]string{"app": []string{"web", "db"}[i%2]}},
				Spec:       corev1.PodSpec{NodeName: nodes[i%len(nodes)], Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/none:0"}}},
			}
			if err := c.Create(ctx, p); err != nil {
				errs <- err
				return
			}
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(1 + i%250)}).String()}
			if err := c.Status().Update(ctx, p); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}

func percentile(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
