package agent_test

// The AgentConfig controller over a hub and two live members: it writes one ClusterWork per
// member, the manager's work engine applies it, and each member's own DaemonSet controller and
// kwok run the agent's pods. Which cluster gets a change when is read from the hub's Works and
// checked against the DaemonSets in the members themselves.
//
// The node agents run for real, one per simulated node, in this process (kubelet.Kubelet plays
// the kubelet's token, volume and container parts that kwok does not): their Leases and
// NodeAgentInfos are what the hub aggregates into each MemberCluster's status.agents and the
// AgentConfig's per-cluster status. These agents play a build that knows no feature gate (an
// agent older than the hub), which is how a config the hub accepts gets refused on the nodes.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agenttest/kubelet"
	"github.com/meridian-io/meridian/internal/agentconfig"
	"github.com/meridian-io/meridian/test/testbed"
)

var _ = Describe("AgentConfig rollout across members", Ordered, func() {
	var (
		ac       *fleetv1alpha1.AgentConfig
		kubelets = map[string]*kubelet.Kubelet{}
	)

	BeforeAll(func() {
		dir, err := os.MkdirTemp("", "meridian-rollout-agents-")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		ctx, cancel := context.WithCancel(context.Background())
		DeferCleanup(cancel)
		for i, name := range []string{"member-2", "member-3"} {
			k := &kubelet.Kubelet{Config: bed.Member(name).Config, Dir: filepath.Join(dir, name), HostPrefix: fmt.Sprintf("127.0.%d.", 20+i),
				KnownGates: []string{}, Log: GinkgoWriter}
			kubelets[name] = k
			done := make(chan error, 1)
			go func() { done <- k.Run(ctx) }()
			DeferCleanup(func() { cancel(); Eventually(done).WithTimeout(time.Minute).Should(Receive(BeNil())) })
		}
	})

	// workRevision is the revision member's Work carries ("" without a Work).
	workRevision := func(ctx context.Context, g Gomega, member string) string {
		w := &fleetv1alpha1.ClusterWork{}
		err := bed.Hub.Client.Get(ctx, client.ObjectKey{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + member, Name: agentconfig.WorkName(ac)}, w)
		if client.IgnoreNotFound(err) != nil {
			g.Expect(err).NotTo(HaveOccurred())
		}
		return w.Annotations[agentconfig.RevisionAnnotation]
	}
	// daemonSetDone says the member's agent DaemonSet runs configHash on every node, all ready.
	daemonSetDone := func(ctx context.Context, g Gomega, member, configHash string) bool {
		ds := &appsv1.DaemonSet{}
		err := bed.Member(member).Client.Get(ctx, client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: agentconfig.AgentName}, ds)
		if client.IgnoreNotFound(err) != nil {
			g.Expect(err).NotTo(HaveOccurred())
		}
		return err == nil && ds.Spec.Template.Annotations[fleetv1alpha1.AgentConfigHashAnnotation] == configHash &&
			ds.Status.ObservedGeneration == ds.Generation && ds.Status.DesiredNumberScheduled == 2 &&
			ds.Status.UpdatedNumberScheduled == 2 && ds.Status.NumberReady == 2
	}
	// rolloutWatch watches, from before a change until ctx ends, the AgentConfig's status and its
	// Works on the hub. A watch sees every write in the hub's order; a poll of the members can
	// miss member-2's rollout, which with kwok takes a few hundred milliseconds.
	type rolloutWatch struct {
		// waves is keyed "waves": each cluster's phase and, once it has the revision, config hash.
		waves *testbed.Transitions
		// handOver is keyed "member-3 <revision>", written when member-3's Work first carries
		// a revision: "member-2 done" when member-2's Work, as the hub held it at that moment,
		// already reported its DaemonSet on that revision, observed, every agent updated and
		// ready; "member-2 not done" otherwise.
		handOver *testbed.Transitions
	}
	watchRollout := func(ctx context.Context) rolloutWatch {
		GinkgoHelper()
		waves, err := bed.Hub.WatchTransitions(ctx, &fleetv1alpha1.AgentConfigList{}, ac.Name, func(o client.Object) map[string]string {
			var parts []string
			for _, c := range o.(*fleetv1alpha1.AgentConfig).Status.Clusters {
				parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Cluster, c.Phase, c.ConfigHash))
			}
			return map[string]string{"waves": strings.Join(parts, " ")}
		})
		Expect(err).NotTo(HaveOccurred())
		// Called in the watch's order, from one goroutine.
		var m2 *fleetv1alpha1.ClusterWork
		m3Revision := ""
		handOver, err := bed.Hub.WatchTransitions(ctx, &fleetv1alpha1.ClusterWorkList{}, agentconfig.WorkName(ac), func(o client.Object) map[string]string {
			w := o.(*fleetv1alpha1.ClusterWork)
			switch w.Labels[fleetv1alpha1.MemberClusterLabel] {
			case "member-2":
				m2 = w
			case "member-3":
				rev := w.Annotations[agentconfig.RevisionAnnotation]
				if rev == m3Revision {
					break
				}
				m3Revision = rev
				s := agentconfig.StateFromWork("member-2", rev, m2)
				done := "member-2 not done"
				if s.HasRevision && s.Observed && s.Desired == 2 && s.Updated == 2 && s.Ready == 2 {
					done = "member-2 done"
				}
				return map[string]string{"member-3 " + rev: done}
			}
			return nil
		})
		Expect(err).NotTo(HaveOccurred())
		return rolloutWatch{waves: waves, handOver: handOver}
	}
	// rollsInOrder follows the rollout to revision until the AgentConfig is Ready. It fails if
	// member-3's Work got the revision before member-2's DaemonSet ran it everywhere, ready: as
	// the member itself says (every poll) and in the hub's order of writes (watched, the
	// member-2 Work's report of its DaemonSet before member-3's Work got the revision); and if
	// the hub never said that member-3 waits for its wave while member-2 rolls out.
	rollsInOrder := func(ctx context.Context, watched rolloutWatch) {
		GinkgoHelper()
		m2 := &fleetv1alpha1.MemberCluster{}
		Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "member-2"}, m2)).To(Succeed())
		compiled, err := agentconfig.Compile(ac, m2)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			if workRevision(ctx, g, "member-3") == compiled.Revision {
				// Checked in every poll, not only at the end: a violation fails at once.
				Expect(daemonSetDone(ctx, g, "member-2", compiled.ConfigHash)).To(BeTrue(), "member-3 got the revision before member-2's agents were all updated and ready")
			}
			got := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeTrue(), "%+v", got.Status.Conditions)
			g.Expect(got.Status.Rollout.Phase).To(Equal(fleetv1alpha1.RolloutComplete))
			g.Expect(got.Status.Rollout.Summary).To(Equal("2/2 clusters"))
			for _, c := range got.Status.Clusters {
				g.Expect(c.Phase).To(Equal(fleetv1alpha1.AgentClusterUpdated), "cluster %s: %s", c.Cluster, c.Message)
				g.Expect(c.Ready).To(BeEquivalentTo(2))
				g.Expect(c.Updated).To(BeEquivalentTo(2))
				g.Expect(c.Stale).To(BeEquivalentTo(0))
				g.Expect(c.ConfigHash).To(Equal(compiled.ConfigHash))
			}
			g.Expect(daemonSetDone(ctx, g, "member-3", compiled.ConfigHash)).To(BeTrue())
		}).WithContext(ctx).WithTimeout(4 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		seen, err := watched.waves.Counts()
		Expect(err).NotTo(HaveOccurred())
		wait := fmt.Sprintf("waves=member-2=%s/%s member-3=%s/", fleetv1alpha1.AgentClusterProgressing, compiled.ConfigHash, fleetv1alpha1.AgentClusterPending)
		Expect(seen).To(HaveKey(wait), "the hub never said member-3 waits while member-2 rolls out")
		handed, err := watched.handOver.Counts()
		Expect(err).NotTo(HaveOccurred())
		Expect(handed).To(HaveKeyWithValue("member-3 "+compiled.Revision+"=member-2 done", 1), "member-3's Work got the revision before member-2's reported its DaemonSet rolled out: %v", handed)
		Expect(handed).NotTo(HaveKey("member-3 " + compiled.Revision + "=member-2 not done"))
	}

	It("installs the agent on the first member, then on the second once the first reports every agent ready", func(ctx SpecContext) {
		ac = &fleetv1alpha1.AgentConfig{
			ObjectMeta: metav1.ObjectMeta{Name: "fleet"},
			Spec: fleetv1alpha1.AgentConfigSpec{
				Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rollout": "yes"}}},
				Image:     "meridian-node-agent:v0.1.0",
				Version:   "v0.1.0",
				Config:    fleetv1alpha1.AgentSettings{HeartbeatIntervalSeconds: rolloutHeartbeat},
				Rollout:   fleetv1alpha1.AgentRollout{WaveSize: ptr.To(intstr.FromInt32(1))},
			},
		}
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		rollout, err := bed.Hub.WatchTransitions(watchCtx, &fleetv1alpha1.AgentConfigList{}, ac.Name, func(o client.Object) map[string]string {
			if r := o.(*fleetv1alpha1.AgentConfig).Status.Rollout; r != nil {
				return map[string]string{"rollout": fmt.Sprintf("%s %d", r.Phase, r.Wave)}
			}
			return nil
		})
		Expect(err).NotTo(HaveOccurred())
		watched := watchRollout(watchCtx)
		Expect(bed.Hub.Client.Create(ctx, ac)).To(Succeed())
		rollsInOrder(ctx, watched)

		By("recording the first wave's start and the rollout's completion once per transition (as a watch sees the status written)")
		Eventually(func(g Gomega) {
			list := &eventsv1.EventList{}
			g.Expect(bed.Hub.Client.List(ctx, list)).To(Succeed())
			reasons := map[string]int{}
			for _, e := range list.Items {
				if e.Regarding.Kind != "AgentConfig" || e.Regarding.Name != ac.Name {
					continue
				}
				g.Expect(e.ReportingController).To(Equal("meridian-agentconfig"))
				g.Expect(e.Type).To(Equal(corev1.EventTypeNormal), "%s: %s", e.Reason, e.Note)
				// The recorder folds a repeated Event into a series.
				n := 1
				if e.Series != nil {
					n = int(e.Series.Count)
				}
				if e.Reason == "WaveStarted" && strings.HasPrefix(e.Note, "Rolling out wave 1 of 2 ") {
					reasons["WaveStarted 1"] += n
				} else {
					reasons[e.Reason] += n
				}
			}
			// Wave 2's start is written only if the coalesced status write falls within it.
			delete(reasons, "WaveStarted")
			seen, err := rollout.Counts()
			g.Expect(err).NotTo(HaveOccurred())
			completed := 0
			for k, n := range seen {
				if strings.HasPrefix(k, "rollout="+string(fleetv1alpha1.RolloutComplete)+" ") {
					completed += n
				}
			}
			g.Expect(seen["rollout="+string(fleetv1alpha1.RolloutProgressing)+" 1"]).To(BeNumerically(">=", 1))
			g.Expect(completed).To(BeNumerically(">=", 1))
			g.Expect(reasons).To(Equal(map[string]int{"WaveStarted 1": seen["rollout="+string(fleetv1alpha1.RolloutProgressing)+" 1"], fleetv1alpha1.RolloutCompleteReason: completed}))
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(5*time.Minute))

	It("rolls a config change out wave by wave", func(ctx SpecContext) {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		watched := watchRollout(watchCtx)
		Eventually(func(g Gomega) {
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), ac)).To(Succeed())
			ac.Spec.Config.LogVerbosity = 3
			g.Expect(bed.Hub.Client.Update(ctx, ac)).To(Succeed())
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		rollsInOrder(ctx, watched)
	}, SpecTimeout(5*time.Minute))

	It("reports a second AgentConfig for the same clusters as a conflict on both, the younger Stalled, and leaves the clusters alone", func(ctx SpecContext) {
		second := ac.DeepCopy()
		second.ObjectMeta = metav1.ObjectMeta{Name: "fleet-2"}
		second.Spec.Config.LogVerbosity = 9
		Expect(bed.Hub.Client.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			got := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(second), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			// Waiting does not resolve a conflict: the younger is Stalled (kstatus Failed, Argo CD
			// Degraded), naming the AgentConfig that holds the clusters, not InProgress forever.
			for _, t := range []string{fleetv1alpha1.StalledCondition, fleetv1alpha1.DegradedCondition} {
				c := meta.FindStatusCondition(got.Status.Conditions, t)
				g.Expect(c).NotTo(BeNil(), "no %s condition", t)
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "%s: %+v", t, c)
				g.Expect(c.Reason).To(Equal(fleetv1alpha1.AgentConfigConflictReason))
				g.Expect(c.Message).To(ContainSubstring("held by an older one: AgentConfig fleet (clusters member-2, member-3)"))
			}
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, fleetv1alpha1.ReconcilingCondition)).To(BeNil())
			ready := meta.FindStatusCondition(got.Status.Conditions, fleetv1alpha1.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(fleetv1alpha1.AgentConfigConflictReason))
			g.Expect(kstatusOf(g, got)).To(Equal(kstatus.FailedStatus))
			for _, c := range got.Status.Clusters {
				g.Expect(c.Phase).To(Equal(fleetv1alpha1.AgentClusterConflict), "cluster %s", c.Cluster)
				g.Expect(c.Message).To(ContainSubstring("The older AgentConfig fleet holds this cluster"))
			}

			first := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), first)).To(Succeed())
			c := meta.FindStatusCondition(first.Status.Conditions, fleetv1alpha1.DegradedCondition)
			g.Expect(c).NotTo(BeNil())
			// The older keeps its clusters and works: Degraded stays False (Ready=True beside a
			// negative condition True fails Flux's checks), its reason and message name the conflict.
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(fleetv1alpha1.AgentConfigConflictReason))
			g.Expect(c.Message).To(ContainSubstring("A younger AgentConfig also selects clusters this one holds: AgentConfig fleet-2 (clusters member-2, member-3)"))
			g.Expect(meta.IsStatusConditionTrue(first.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeTrue())
			g.Expect(meta.FindStatusCondition(first.Status.Conditions, fleetv1alpha1.StalledCondition)).To(BeNil())
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		works := &fleetv1alpha1.ClusterWorkList{}
		Expect(bed.Hub.Client.List(ctx, works, client.MatchingLabels{fleetv1alpha1.AgentConfigLabel: "fleet-2"})).To(Succeed())
		Expect(works.Items).To(BeEmpty())
	}, SpecTimeout(2*time.Minute))
	// summary is member's status.agents on the hub.
	summary := func(ctx context.Context, g Gomega, member string) *fleetv1alpha1.AgentSummary {
		mc := &fleetv1alpha1.MemberCluster{}
		g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: member}, mc)).To(Succeed())
		g.Expect(mc.Status.Agents).NotTo(BeNil(), "member %s has no agents summary", member)
		return mc.Status.Agents
	}
	clusterStatus := func(ctx context.Context, g Gomega, member string) fleetv1alpha1.AgentClusterStatus {
		got := &fleetv1alpha1.AgentConfig{}
		g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), got)).To(Succeed())
		for _, c := range got.Status.Clusters {
			if c.Cluster == member {
				return c
			}
		}
		g.Expect(member).To(BeEmpty(), "no status for cluster %s", member)
		return fleetv1alpha1.AgentClusterStatus{}
	}

	It("shows each member's agents on its MemberCluster, with a printer column", func(ctx SpecContext) {
		m2 := &fleetv1alpha1.MemberCluster{}
		Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "member-2"}, m2)).To(Succeed())
		compiled, err := agentconfig.Compile(ac, m2)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			for _, member := range []string{"member-2", "member-3"} {
				s := summary(ctx, g, member)
				g.Expect(s.AgentConfig).To(Equal("fleet"))
				g.Expect(s.ConfigHash).To(Equal(compiled.ConfigHash))
				g.Expect(s.Desired).To(BeEquivalentTo(2))
				g.Expect(s.Ready).To(BeEquivalentTo(2))
				g.Expect(s.UpToDate).To(BeEquivalentTo(2))
				g.Expect(s.Stale).To(BeEquivalentTo(0))
				g.Expect(s.Versions).To(Equal([]fleetv1alpha1.AgentVersionCount{{Version: "v0.1.0", Agents: 2}}))
				g.Expect(s.Summary).To(Equal("2/2"))
			}
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())

		// What `kubectl get memberclusters` (and -o wide) prints: the server's table.
		table := memberClusterTable(ctx, "member-2")
		cells := map[string]any{}
		priority := map[string]int32{}
		for i, c := range table.ColumnDefinitions {
			cells[c.Name], priority[c.Name] = table.Rows[0].Cells[i], c.Priority
		}
		Expect(cells).To(HaveKeyWithValue("Agents", "2/2"))
		Expect(priority["Agents"]).To(BeEquivalentTo(0), "the Agents column shows without -o wide")
		Expect(cells).To(HaveKeyWithValue("Agents-Updated", BeNumerically("==", 2)))
		Expect(cells).To(HaveKeyWithValue("Agents-Stale", BeNumerically("==", 0)))
		Expect(priority["Agents-Stale"]).To(BeEquivalentTo(1), "-o wide only")
	}, SpecTimeout(2*time.Minute))

	It("reports a killed agent stale within three heartbeat intervals and ready again once restarted", func(ctx SpecContext) {
		node := bed.Member("member-2").Live.Nodes[0]
		kubelets["member-2"].Kill(node)
		// The agent is gone: its Lease's last renewal is when the hub's clock starts.
		l := lease(ctx, Default, bed.Member("member-2").Client, node)
		lastRenewal := l.Spec.RenewTime.Time
		Eventually(func(g Gomega) {
			s := summary(ctx, g, "member-2")
			g.Expect(s.Stale).To(BeEquivalentTo(1))
			g.Expect(s.Ready).To(BeEquivalentTo(1))
			g.Expect(s.Summary).To(Equal("1/2"))
			g.Expect(s.Message).To(ContainSubstring("The agent of node " + node + " is stale"))
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		seen := time.Now()
		// Not before three intervals (the agent might just be slow), and not much after: three
		// intervals, plus at most one interval of write coalescing, plus a margin for a loaded machine.
		interval := rolloutHeartbeat * time.Second
		Expect(seen.Sub(lastRenewal)).To(BeNumerically(">=", 3*interval), "reported stale too early")
		Expect(seen.Sub(lastRenewal)).To(BeNumerically("<=", 3*interval+interval+5*time.Second), "reported stale too late")
		Expect(lease(ctx, Default, bed.Member("member-2").Client, node).Spec.RenewTime.Time).To(Equal(lastRenewal), "the killed agent renewed its Lease")
		Eventually(func(g Gomega) {
			c := clusterStatus(ctx, g, "member-2")
			g.Expect(c.Stale).To(BeEquivalentTo(1))
			g.Expect(c.Ready).To(BeEquivalentTo(1))
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

		starts := kubelets["member-2"].Starts(node)
		kubelets["member-2"].Restart(node)
		Eventually(func(g Gomega) {
			s := summary(ctx, g, "member-2")
			g.Expect(s.Stale).To(BeEquivalentTo(0))
			g.Expect(s.Summary).To(Equal("2/2"))
			c := clusterStatus(ctx, g, "member-2")
			g.Expect(c.Stale).To(BeEquivalentTo(0))
			g.Expect(c.Ready).To(BeEquivalentTo(2))
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(kubelets["member-2"].Starts(node)).To(Equal(starts+1), "the agent was not restarted")
	}, SpecTimeout(3*time.Minute))

	It("shows a paused rollout as such and hands the change to no cluster", func(ctx SpecContext) {
		before := workRevision(ctx, Default, "member-2")
		Eventually(func(g Gomega) {
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), ac)).To(Succeed())
			ac.Spec.Rollout.Paused = true
			ac.Spec.Config.LogVerbosity = 5
			g.Expect(bed.Hub.Client.Update(ctx, ac)).To(Succeed())
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Eventually(func(g Gomega) {
			got := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Rollout.Phase).To(Equal(fleetv1alpha1.RolloutPaused))
			c := meta.FindStatusCondition(got.Status.Conditions, fleetv1alpha1.ReconcilingCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(fleetv1alpha1.RolloutPausedReason))
			// Waves count from 1 everywhere: the message, the rollout and each cluster's line.
			g.Expect(c.Message).To(Equal("The rollout is paused at wave 1 of 2; clusters member-2 keep their previous agents."))
			g.Expect(got.Status.Rollout.Wave).To(BeEquivalentTo(1))
			g.Expect(got.Status.Rollout.Waves).To(BeEquivalentTo(2))
			for _, cl := range got.Status.Clusters {
				g.Expect(cl.Wave).To(BeEquivalentTo(map[string]int{"member-2": 1, "member-3": 2}[cl.Cluster]), "cluster %s", cl.Cluster)
			}
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeFalse())
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(workRevision(ctx, g, "member-2")).To(Equal(before))
		}).WithContext(ctx).WithTimeout(5 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(2*time.Minute))

	It("stops the rollout with Stalled when the first wave's agents refuse the config, and later clusters keep theirs", func(ctx SpecContext) {
		m3Before := workRevision(ctx, Default, "member-3")
		good := summary(ctx, Default, "member-2").ConfigHash
		Expect(good).NotTo(BeEmpty())
		starts := map[string]int{}
		for _, n := range bed.Member("member-2").Live.Nodes {
			starts[n] = kubelets["member-2"].Starts(n)
		}
		// The hub accepts the gate; these agents' build does not know it.
		Eventually(func(g Gomega) {
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), ac)).To(Succeed())
			ac.Spec.Rollout.Paused = false
			ac.Spec.Config.FeatureGates = map[string]bool{"ProcessMetrics": true}
			g.Expect(bed.Hub.Client.Update(ctx, ac)).To(Succeed())
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		m2 := &fleetv1alpha1.MemberCluster{}
		Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "member-2"}, m2)).To(Succeed())
		bad, err := agentconfig.Compile(ac, m2)
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			got := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.Rollout.Phase).To(Equal(fleetv1alpha1.RolloutStalled))
			c := meta.FindStatusCondition(got.Status.Conditions, fleetv1alpha1.StalledCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(fleetv1alpha1.ConfigInvalidReason))
			g.Expect(c.Message).To(ContainSubstring("cluster member-2 failed"))
			g.Expect(c.Message).To(ContainSubstring("unknown gates ProcessMetrics"))
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeFalse())
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, fleetv1alpha1.ReconcilingCondition)).To(BeFalse())
			g.Expect(clusterStatus(ctx, g, "member-2").Phase).To(Equal(fleetv1alpha1.AgentClusterFailed))
			g.Expect(clusterStatus(ctx, g, "member-3").Phase).To(Equal(fleetv1alpha1.AgentClusterPending))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())

		// The agents that got it say ConfigValid=False and none runs it; an agent still in its
		// pod from before keeps its last good config (one whose pod the DaemonSet replaced
		// starts on the built-in defaults: a new container has no last good file).
		Eventually(func(g Gomega) {
			for _, n := range bed.Member("member-2").Live.Nodes {
				info := nodeAgentInfo(ctx, g, bed.Member("member-2").Client, n)
				c := expectCondition(g, info, memberv1alpha1.ConfigValidCondition, metav1.ConditionFalse, memberv1alpha1.InvalidConfigReason)
				g.Expect(c.Message).To(ContainSubstring("unknown gates ProcessMetrics"))
				g.Expect(info.RefusedConfigHash).To(Equal(bad.ConfigHash))
				g.Expect(info.ConfigHash).NotTo(Equal(bad.ConfigHash))
				if kubelets["member-2"].Starts(n) == starts[n] {
					g.Expect(info.ConfigHash).To(Equal(good), "node %s kept its pod but not its last good config", n)
				}
			}
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(summary(ctx, Default, "member-2").ConfigInvalid).To(BeEquivalentTo(2))

		// The next wave keeps its previous install, untouched.
		Consistently(func(g Gomega) {
			g.Expect(workRevision(ctx, g, "member-3")).To(Equal(m3Before))
			g.Expect(summary(ctx, g, "member-3").ConfigInvalid).To(BeEquivalentTo(0))
		}).WithContext(ctx).WithTimeout(5 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	}, SpecTimeout(4*time.Minute))

})

// rolloutHeartbeat is the rollout's agents' heartbeat interval, in seconds: stale after three.
const rolloutHeartbeat = 2

// memberClusterTable fetches a MemberCluster as the server's table, what kubectl get prints.
func memberClusterTable(ctx context.Context, name string) *metav1.Table {
	GinkgoHelper()
	cs, err := kubernetes.NewForConfig(bed.Hub.Config)
	Expect(err).NotTo(HaveOccurred())
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/apis/fleet.meridian.io/v1alpha1/memberclusters", name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Raw()
	Expect(err).NotTo(HaveOccurred())
	table := &metav1.Table{}
	Expect(json.Unmarshal(raw, table)).To(Succeed())
	Expect(table.Rows).To(HaveLen(1))
	return table
}

// kstatusOf is what kstatus (Flux, Argo CD's kstatus-based tools, kubectl apply --wait) reads
// from the object.
func kstatusOf(g Gomega, obj client.Object) kstatus.Status {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: u})
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}
