// Package realization_test checks the agents' realization writer against a real member
// apiserver: many nodes' reports fold into one status per MemberNetworkPolicy, with a bounded
// number of writes, and another agent takes the writing over when the elected one stops. The
// test writes the nodes' Leases and NodeAgentInfos itself, standing for their agents.
package realization_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2/textlogger"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	membercrds "github.com/meridian-io/meridian/config/crd/member"
	"github.com/meridian-io/meridian/internal/agent"
	"github.com/meridian-io/meridian/test/testbed"
)

const (
	nodes    = 100
	policies = 5
	writers  = 3 // agents standing for election
	interval = time.Second
)

func TestRealizationWritesAreBoundedPerPolicy(t *testing.T) {
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
	c := m.Client
	for _, name := range []string{"membernetworkpolicies.member.meridian.io", "nodeagentinfos.member.meridian.io"} {
		crd, err := membercrds.CRD(name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.Create(ctx, crd)).To(Succeed())
	}
	g.Eventually(func() error { return c.List(ctx, &memberv1alpha1.MemberNetworkPolicyList{}) }, 60*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func() error { return c.List(ctx, &memberv1alpha1.NodeAgentInfoList{}) }, 60*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: memberv1alpha1.AgentNamespace}})).To(Succeed())

	for i := range policies {
		p := &memberv1alpha1.MemberNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i)},
			Spec: memberv1alpha1.MemberNetworkPolicySpec{Tier: "application", TierPriority: 250, Priority: 1, Policy: fmt.Sprintf("p%d", i),
				AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}}}}
		g.Expect(c.Create(ctx, p)).To(Succeed())
	}
	// The nodes' agents are alive: Leases renewed now, for 10 minutes.
	for n := range nodes {
		node := fmt.Sprintf("node-%03d", n)
		g.Expect(c.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: memberv1alpha1.AgentNamespace, Name: memberv1alpha1.AgentLeaseName(node)},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To[int32](600), RenewTime: &metav1.MicroTime{Time: time.Now()}}})).To(Succeed())
		g.Expect(c.Create(ctx, &memberv1alpha1.NodeAgentInfo{ObjectMeta: metav1.ObjectMeta{Name: node}})).To(Succeed())
	}

	// Three agents stand for election; each can be stopped alone.
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for w := range writers {
		node := fmt.Sprintf("node-%03d", w)
		wctx, stop := context.WithCancel(ctx)
		stops[node] = stop
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent.RunRealization(wctx, m.Config, node, memberv1alpha1.AgentNamespace,
				agent.RealizationOptions{Interval: interval, LeaseDuration: 3 * time.Second},
				textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(testWriter{t}))))
		}()
	}

	// Every policy: generation 1 in force on no node yet, then on all, reported one node at a time.
	waitStatus(t, c, 1, 0)
	writesBefore := statusWrites(t, m)
	start := time.Now()
	report(t, c, 1)
	waitStatus(t, c, 1, nodes)
	elapsed := time.Since(start)
	writes := statusWrites(t, m) - writesBefore
	// A pass every interval at most, one write per policy each, plus the pass in flight at each end.
	bound := float64(policies) * (elapsed.Seconds()/interval.Seconds() + 2)
	t.Logf("%d nodes × %d policies reported one node at a time over %v: %.0f status writes (bound %.0f; one writer per node would make at least %d)",
		nodes, policies, elapsed.Round(time.Millisecond), writes, bound, nodes*policies)
	g.Expect(writes).To(BeNumerically("<=", bound))
	g.Expect(writes).To(BeNumerically(">=", policies)) // the status did move

	// The elected agent stops: another takes over and reports generation 2.
	lease := &coordinationv1.Lease{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: memberv1alpha1.RealizationLeaseName}, lease)).To(Succeed())
	leader := ptr.Deref(lease.Spec.HolderIdentity, "")
	g.Expect(stops).To(HaveKey(leader))
	stops[leader]()
	for i := range policies {
		p := &memberv1alpha1.MemberNetworkPolicy{}
		g.Expect(c.Get(ctx, client.ObjectKey{Name: fmt.Sprintf("p%d", i)}, p)).To(Succeed())
		p.Spec.Priority = 2
		g.Expect(c.Update(ctx, p)).To(Succeed())
	}
	report(t, c, 2)
	waitStatus(t, c, 2, nodes)
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: memberv1alpha1.RealizationLeaseName}, lease)).To(Succeed())
	g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).NotTo(Equal(leader))
}

// report has every node put generation gen of every policy in force, one node after the other.
func report(t *testing.T, c client.Client, gen int64) {
	g := NewWithT(t)
	for n := range nodes {
		info := &memberv1alpha1.NodeAgentInfo{}
		g.Expect(c.Get(context.Background(), client.ObjectKey{Name: fmt.Sprintf("node-%03d", n)}, info)).To(Succeed())
		info.Policies = nil
		for i := range policies {
			info.Policies = append(info.Policies, memberv1alpha1.RealizedPolicy{Name: fmt.Sprintf("p%d", i), Generation: gen})
		}
		g.Expect(c.Update(context.Background(), info)).To(Succeed())
	}
}

// waitStatus waits until every policy reports generation gen realized on that many of all nodes.
func waitStatus(t *testing.T, c client.Client, gen int64, realized int32) {
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		for i := range policies {
			p := &memberv1alpha1.MemberNetworkPolicy{}
			g.Expect(c.Get(context.Background(), client.ObjectKey{Name: fmt.Sprintf("p%d", i)}, p)).To(Succeed())
			g.Expect(p.Generation).To(Equal(gen))
			g.Expect(p.Status.ObservedGeneration).To(Equal(gen))
			g.Expect(p.Status.NodesDesired).To(BeEquivalentTo(nodes))
			g.Expect(p.Status.NodesRealized).To(Equal(realized))
			g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, memberv1alpha1.PolicyReadyCondition)).To(Equal(realized == nodes))
		}
	}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
}

// statusWrites counts the member apiserver's PATCHes of MemberNetworkPolicies: in this test only
// the realization writer sends them, to the status.
func statusWrites(t *testing.T, m *testbed.Cluster) float64 {
	w, err := m.WritesByVerb(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return w["PATCH member.meridian.io/membernetworkpolicies"]
}

// testWriter logs to the test; the writers stop (wg.Wait in a cleanup) before it ends.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
