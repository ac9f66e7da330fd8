package agent_test

// What is real here: the member's kube-apiserver (RBAC, the ValidatingAdmissionPolicy, the
// TokenRequest API and the service account authenticator), its DaemonSet controller and scheduler,
// and kwok, which plays each Node's kubelet and takes the DaemonSet's pods to Running. The node
// agent code (internal/agent, as cmd/node-agent runs it) runs for real, once per Node, in this
// process, each with its Node's name and a token bound to that Node's DaemonSet pod.
//
// What the test plays: the kubelet's part that kwok does not do. It requests each pod's
// service account token (TokenRequest bound to the pod, as the kubelet's projected token volume
// does), writes the ConfigMap's file into a folder per Node the way the kubelet's atomic writer
// updates a mounted ConfigMap (a ..data symlink swap), and starts the agent as the container
// runtime would. The compiled objects are applied to the member directly with a client: the
// ClusterWork that will carry them from the hub is wired by the AgentConfig controller later.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/agent/agenttest"
	"github.com/meridian-io/meridian/internal/agentconfig"
	"github.com/meridian-io/meridian/test/testbed"
)

const (
	version   = "v0.1.0"
	heartbeat = 2 // seconds
	nodes     = 3
)

// runningAgent is one Node's agent, as its container would run it.
type runningAgent struct {
	node   string
	pod    *corev1.Pod
	dir    string
	host   string
	port   int32
	client client.Client
	cancel context.CancelFunc
	done   chan error
}

var _ = Describe("The node agent on a live member", Ordered, func() {
	var (
		m        *testbed.Cluster
		mc       *fleetv1alpha1.MemberCluster
		ac       *fleetv1alpha1.AgentConfig
		compiled *agentconfig.Member
		agents   []*runningAgent
		port     int32
		cs       *kubernetes.Clientset
		dir      string
	)

	BeforeAll(func() {
		m = bed.Member("member-1")
		mc = &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: m.Name, Labels: map[string]string{"env": "test"}}}
		port = 20000 + rand.Int32N(10000)
		ac = &fleetv1alpha1.AgentConfig{
			ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: fleetv1alpha1.AgentConfigSpec{
				Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
				Image:     "meridian-node-agent:" + version,
				Version:   version,
				Config: fleetv1alpha1.AgentSettings{
					EnforcementMode: fleetv1alpha1.EnforcementEnforce, HeartbeatIntervalSeconds: heartbeat, LogVerbosity: 2,
					MetricsPort: port, DropLogging: fleetv1alpha1.DropLogging{RatePerSecond: 100},
				},
			},
		}
		var err error
		cs, err = kubernetes.NewForConfig(m.Config)
		Expect(err).NotTo(HaveOccurred())
		// The Nodes' config folders outlive each spec (GinkgoT().TempDir() would not).
		dir, err = os.MkdirTemp("", "meridian-agents-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		DeferCleanup(func() {
			for _, a := range agents {
				a.cancel()
				Eventually(a.done).WithTimeout(30 * time.Second).Should(Receive(BeNil()))
			}
		})
	})

	It("installs the agent and the DaemonSet's pods run on every simulated node", func(ctx SpecContext) {
		var err error
		compiled, err = agentconfig.Compile(ac, mc)
		Expect(err).NotTo(HaveOccurred())
		apply(ctx, m.Client, compiled.Objects)

		Eventually(func(g Gomega) {
			ds := &appsv1.DaemonSet{}
			g.Expect(m.Client.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: agentconfig.AgentName}, ds)).To(Succeed())
			g.Expect(ds.Status.DesiredNumberScheduled).To(BeEquivalentTo(nodes))
			g.Expect(ds.Status.NumberReady).To(BeEquivalentTo(nodes))
		}).WithContext(ctx).WithTimeout(90 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())

		pods := agentPods(ctx, m.Client)
		Expect(pods).To(HaveLen(nodes))
		for _, n := range m.Live.Nodes {
			p := pods[n]
			Expect(p).NotTo(BeNil(), "no agent pod on node %s", n)
			Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
			Expect(p.Spec.HostNetwork).To(BeTrue())
			Expect(p.Annotations).To(HaveKeyWithValue(fleetv1alpha1.AgentConfigHashAnnotation, compiled.ConfigHash))
		}
	}, SpecTimeout(3*time.Minute))

	It("runs one agent per node, each with a token bound to its node's pod, renewing its Lease", func(ctx SpecContext) {
		pods := agentPods(ctx, m.Client)
		for i, n := range m.Live.Nodes {
			a := &runningAgent{node: n, pod: pods[n], dir: filepath.Join(dir, n), host: fmt.Sprintf("127.0.0.%d", i+2), port: port, done: make(chan error, 1)}
			Expect(agenttest.WriteConfigMapDir(a.dir, map[string][]byte{agentfile.FileName: compiled.ConfigFile})).To(Succeed())
			a.client = agentClient(ctx, cs, m.Config, a.pod)
			ag, err := agent.New(agent.Options{
				NodeName: n, ConfigPath: filepath.Join(a.dir, agentfile.FileName), Version: a.pod.Labels["app.kubernetes.io/version"],
				Client: a.client, MetricsHost: a.host, LogOutput: GinkgoWriter, ConfigCheckPeriod: time.Hour,
			})
			Expect(err).NotTo(HaveOccurred())
			runCtx, cancel := context.WithCancel(context.Background())
			a.cancel = cancel
			go func() { a.done <- ag.Run(runCtx) }()
			agents = append(agents, a)
		}

		first := map[string]time.Time{}
		Eventually(func(g Gomega) {
			for _, a := range agents {
				l := lease(ctx, g, m.Client, a.node)
				g.Expect(*l.Spec.HolderIdentity).To(Equal(a.node))
				g.Expect(*l.Spec.LeaseDurationSeconds).To(BeEquivalentTo(agent.LeaseDurationFactor * heartbeat))
				first[a.node] = l.Spec.RenewTime.Time
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		Eventually(func(g Gomega) {
			for _, a := range agents {
				g.Expect(lease(ctx, g, m.Client, a.node).Spec.RenewTime.Time).To(BeTemporally(">", first[a.node]))
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(2*time.Minute))

	It("writes each node's NodeAgentInfo once and not again while nothing changes", func(ctx SpecContext) {
		rvs := map[string]string{}
		Eventually(func(g Gomega) {
			for _, a := range agents {
				info := nodeAgentInfo(ctx, g, m.Client, a.node)
				g.Expect(info.Version).To(Equal(version))
				g.Expect(info.ConfigHash).To(Equal(compiled.ConfigHash))
				g.Expect(info.EnforcementMode).To(Equal("Enforce"))
				expectCondition(g, info, memberv1alpha1.ConfigValidCondition, metav1.ConditionTrue, memberv1alpha1.ConfigLoadedReason)
				expectCondition(g, info, memberv1alpha1.HealthyCondition, metav1.ConditionTrue, memberv1alpha1.AgentRunningReason)
				expectCondition(g, info, memberv1alpha1.DataplaneReadyCondition, metav1.ConditionFalse, memberv1alpha1.DataplaneDisabledReason)
				rvs[a.node] = info.ResourceVersion
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

		before := map[string]time.Time{}
		for _, a := range agents {
			before[a.node] = lease(ctx, Default, m.Client, a.node).Spec.RenewTime.Time
		}
		// Three heartbeats: the Leases move, the NodeAgentInfos do not.
		Consistently(func(g Gomega) {
			for _, a := range agents {
				g.Expect(nodeAgentInfo(ctx, g, m.Client, a.node).ResourceVersion).To(Equal(rvs[a.node]))
			}
		}).WithContext(ctx).WithTimeout(3 * heartbeat * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
		for _, a := range agents {
			Expect(lease(ctx, Default, m.Client, a.node).Spec.RenewTime.Time).To(BeTemporally(">", before[a.node]))
			Expect(metric(a, "meridian_agent_nodeagentinfo_writes_total")).To(BeEquivalentTo(1))
		}
	}, SpecTimeout(2*time.Minute))

	It("picks up a changed config file without a restart", func(ctx SpecContext) {
		audit := ac.DeepCopy()
		audit.Spec.Config.EnforcementMode = fleetv1alpha1.EnforcementAudit
		next, err := agentconfig.Compile(audit, mc)
		Expect(err).NotTo(HaveOccurred())
		Expect(next.ConfigHash).NotTo(Equal(compiled.ConfigHash))

		beats := map[string]float64{}
		for _, a := range agents {
			beats[a.node] = metric(a, "meridian_agent_heartbeats_total")
			Expect(beats[a.node]).To(BeNumerically(">=", 2))
			Expect(agenttest.WriteConfigMapDir(a.dir, map[string][]byte{agentfile.FileName: next.ConfigFile})).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for _, a := range agents {
				info := nodeAgentInfo(ctx, g, m.Client, a.node)
				g.Expect(info.ConfigHash).To(Equal(next.ConfigHash))
				g.Expect(info.EnforcementMode).To(Equal("Audit"))
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		// The same agents, not restarted ones: their heartbeat counters went on from where they were.
		for _, a := range agents {
			Expect(metric(a, "meridian_agent_heartbeats_total")).To(BeNumerically(">=", beats[a.node]))
			Expect(metric(a, "meridian_agent_nodeagentinfo_writes_total")).To(BeEquivalentTo(2))
		}
		compiled, ac = next, audit
	}, SpecTimeout(2*time.Minute))

	It("keeps the last good config and says ConfigValid=False when the file turns invalid", func(ctx SpecContext) {
		a := agents[0]
		bad := []byte("apiVersion: agent.meridian.io/v1alpha1\nkind: NodeAgentConfiguration\nenforcementMode: Block\nfeatureGates: {Teleport: true}\n")
		Expect(agenttest.WriteConfigMapDir(a.dir, map[string][]byte{agentfile.FileName: bad})).To(Succeed())
		Eventually(func(g Gomega) {
			info := nodeAgentInfo(ctx, g, m.Client, a.node)
			c := expectCondition(g, info, memberv1alpha1.ConfigValidCondition, metav1.ConditionFalse, memberv1alpha1.InvalidConfigReason)
			g.Expect(c.Message).To(ContainSubstring(`enforcementMode must be Enforce or Audit, not "Block"`))
			g.Expect(c.Message).To(ContainSubstring("unknown gates Teleport"))
			g.Expect(c.Message).To(ContainSubstring("keeping the last good config (hash " + compiled.ConfigHash + ")"))
			g.Expect(info.ConfigHash).To(Equal(compiled.ConfigHash))
			g.Expect(info.EnforcementMode).To(Equal("Audit"))
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		// Still alive on the last good config.
		renewed := lease(ctx, Default, m.Client, a.node).Spec.RenewTime.Time
		Eventually(func(g Gomega) {
			g.Expect(lease(ctx, g, m.Client, a.node).Spec.RenewTime.Time).To(BeTemporally(">", renewed))
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

		Expect(agenttest.WriteConfigMapDir(a.dir, map[string][]byte{agentfile.FileName: compiled.ConfigFile})).To(Succeed())
		Eventually(func(g Gomega) {
			expectCondition(g, nodeAgentInfo(ctx, g, m.Client, a.node), memberv1alpha1.ConfigValidCondition, metav1.ConditionTrue, memberv1alpha1.ConfigLoadedReason)
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(2*time.Minute))

	It("lets an agent write only its own node's NodeAgentInfo and Lease (denied by the member's admission policy)", func(ctx SpecContext) {
		a, b := agents[0], agents[1]
		info := &memberv1alpha1.NodeAgentInfo{}
		Expect(a.client.Get(ctx, client.ObjectKey{Name: b.node}, info)).To(Succeed(), "RBAC lets the agent read")
		info.Version = "forged"
		err := a.client.Update(ctx, info)
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "error %v", err)
		Expect(err.Error()).To(ContainSubstring(agentconfig.OwnNodePolicyName))
		Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("the Meridian node agent of node %s may write only NodeAgentInfo %s, not %s", a.node, a.node, b.node)))

		err = a.client.Create(ctx, &memberv1alpha1.NodeAgentInfo{ObjectMeta: metav1.ObjectMeta{Name: "member-1-node-99"}})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("may write only NodeAgentInfo " + a.node + ", not member-1-node-99"))

		l := &coordinationv1.Lease{}
		Expect(a.client.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: memberv1alpha1.AgentLeaseName(b.node)}, l)).To(Succeed())
		l.Spec.RenewTime = ptr.To(metav1.NowMicro())
		err = a.client.Update(ctx, l)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("may write only Lease meridian-agent-" + a.node + ", not meridian-agent-" + b.node))

		// A token of the agent's service account that is not bound to a pod carries no node: refused.
		tr, err := cs.CoreV1().ServiceAccounts(memberv1alpha1.AgentNamespace).CreateToken(ctx, agentconfig.AgentName,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		unbound := tokenClient(m.Config, tr.Status.Token)
		own := &memberv1alpha1.NodeAgentInfo{}
		Expect(unbound.Get(ctx, client.ObjectKey{Name: a.node}, own)).To(Succeed())
		own.Version = "forged"
		err = unbound.Update(ctx, own)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("must authenticate with a service account token bound to its pod"))

		// The agents' own writes still pass: B's agent keeps renewing its Lease.
		renewed := lease(ctx, Default, m.Client, b.node).Spec.RenewTime.Time
		Eventually(func(g Gomega) {
			g.Expect(lease(ctx, g, m.Client, b.node).Spec.RenewTime.Time).To(BeTemporally(">", renewed))
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(2*time.Minute))

	It("rolls the DaemonSet when the config changes (its hash is in the pod template)", func(ctx SpecContext) {
		apply(ctx, m.Client, compiled.Objects)
		Eventually(func(g Gomega) {
			ds := &appsv1.DaemonSet{}
			g.Expect(m.Client.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: agentconfig.AgentName}, ds)).To(Succeed())
			g.Expect(ds.Status.ObservedGeneration).To(Equal(ds.Generation))
			g.Expect(ds.Status.UpdatedNumberScheduled).To(BeEquivalentTo(nodes))
			g.Expect(ds.Status.NumberReady).To(BeEquivalentTo(nodes))
			pods := agentPods(ctx, m.Client)
			g.Expect(pods).To(HaveLen(nodes))
			for _, p := range pods {
				g.Expect(p.Annotations).To(HaveKeyWithValue(fleetv1alpha1.AgentConfigHashAnnotation, compiled.ConfigHash))
			}
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(3*time.Minute))

	It("refuses an AgentConfig with an unknown feature gate on the hub, saying which gates exist", func(ctx SpecContext) {
		bad := ac.DeepCopy()
		bad.Name = "bad-gates"
		bad.Spec.Config.FeatureGates = map[string]bool{"Teleport": true}
		err := bed.Hub.Client.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("config.featureGates: unknown gate; the agent knows only ProcessMetrics"))

		bad = ac.DeepCopy()
		bad.Name = "bad-waves"
		bad.Spec.Rollout.WaveSize = ptr.To(intstr.FromString("0%"))
		err = bed.Hub.Client.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("rollout.waveSize must be a count of clusters of at least 1 or a percentage from 1% to 100%"))

		good := ac.DeepCopy()
		good.Spec.Config = fleetv1alpha1.AgentSettings{}
		good.Spec.Placement = fleetv1alpha1.Placement{ClusterNames: []string{"nowhere"}} // not the rollout's clusters
		Expect(bed.Hub.Client.Create(ctx, good)).To(Succeed())
		Expect(good.Spec.Config.HeartbeatIntervalSeconds).To(BeEquivalentTo(agentfile.DefaultHeartbeatIntervalSeconds))
		Expect(good.Spec.Rollout.FailurePolicy).To(Equal(fleetv1alpha1.RolloutStop))
	}, SpecTimeout(time.Minute))
})

func apply(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) {
	GinkgoHelper()
	for _, o := range objs {
		Expect(c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("meridian-agent-test"), client.ForceOwnership)).
			To(Succeed(), "apply %s %s", o.GetKind(), o.GetName())
	}
}

// agentPods returns the running agent pods by node.
func agentPods(ctx context.Context, c client.Client) map[string]*corev1.Pod {
	GinkgoHelper()
	list := &corev1.PodList{}
	Expect(c.List(ctx, list, client.InNamespace(memberv1alpha1.AgentNamespace), client.MatchingLabels{"app.kubernetes.io/name": agentconfig.AgentName})).To(Succeed())
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp.IsZero() && p.Spec.NodeName != "" {
			out[p.Spec.NodeName] = p
		}
	}
	return out
}

// agentClient requests the pod's service account token as the kubelet does for a projected token
// volume (bound to the pod, hence carrying its node), and returns the agent's client with it.
func agentClient(ctx context.Context, cs *kubernetes.Clientset, admin *rest.Config, pod *corev1.Pod) client.Client {
	GinkgoHelper()
	tr, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tokenClient(admin, tr.Status.Token)
}

func tokenClient(admin *rest.Config, token string) client.Client {
	GinkgoHelper()
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = token
	c, err := agent.NewClient(cfg)
	Expect(err).NotTo(HaveOccurred())
	return c
}

func lease(ctx context.Context, g Gomega, c client.Client, node string) *coordinationv1.Lease {
	l := &coordinationv1.Lease{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: memberv1alpha1.AgentLeaseName(node)}, l)).To(Succeed())
	g.Expect(l.Spec.RenewTime).NotTo(BeNil())
	return l
}

func nodeAgentInfo(ctx context.Context, g Gomega, c client.Client, node string) *memberv1alpha1.NodeAgentInfo {
	info := &memberv1alpha1.NodeAgentInfo{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: node}, info)).To(Succeed())
	return info
}

func expectCondition(g Gomega, info *memberv1alpha1.NodeAgentInfo, t string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	c := meta.FindStatusCondition(info.Conditions, t)
	g.Expect(c).NotTo(BeNil(), "condition %s", t)
	g.Expect(c.Status).To(Equal(status), "condition %s: %s", t, c.Message)
	g.Expect(c.Reason).To(Equal(reason))
	return c
}

// metric reads one counter from the agent's metrics endpoint, on its configured port.
func metric(a *runningAgent, name string) float64 {
	GinkgoHelper()
	r, err := http.Get("http://" + a.host + ":" + strconv.Itoa(int(a.port)) + "/metrics")
	Expect(err).NotTo(HaveOccurred())
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	Expect(err).NotTo(HaveOccurred())
	match := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
	Expect(match).NotTo(BeNil(), "no %s in %s", name, strings.TrimSpace(string(body)))
	v, err := strconv.ParseFloat(string(match[1]), 64)
	Expect(err).NotTo(HaveOccurred())
	return v
}
