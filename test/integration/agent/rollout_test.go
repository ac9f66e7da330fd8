package agent_test

// The AgentConfig controller over a hub and two live members: it writes one ClusterWork per
// member, the manager's work engine applies it, and each member's own DaemonSet controller and
// kwok run the agent's pods. Which cluster gets a change when is read from the hub's Works and
// checked against the DaemonSets in the members themselves.

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agentconfig"
)

var _ = Describe("AgentConfig rollout across members", Ordered, func() {
	var ac *fleetv1alpha1.AgentConfig

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
	// rollsInOrder watches the rollout to revision until the AgentConfig is Ready, and fails if
	// member-3's Work gets the revision before member-2's DaemonSet runs it everywhere, ready.
	rollsInOrder := func(ctx context.Context) {
		GinkgoHelper()
		m2 := &fleetv1alpha1.MemberCluster{}
		Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "member-2"}, m2)).To(Succeed())
		compiled, err := agentconfig.Compile(ac, m2)
		Expect(err).NotTo(HaveOccurred())
		sawSecondWaveWait := false
		Eventually(func(g Gomega) {
			m3HasIt := workRevision(ctx, g, "member-3") == compiled.Revision
			m2Done := daemonSetDone(ctx, g, "member-2", compiled.ConfigHash)
			if m3HasIt {
				// Checked in every poll, not only at the end: a violation fails at once.
				Expect(m2Done).To(BeTrue(), "member-3 got the revision before member-2's agents were all updated and ready")
			} else if workRevision(ctx, g, "member-2") == compiled.Revision && !m2Done {
				sawSecondWaveWait = true
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
				g.Expect(c.ConfigHash).To(Equal(compiled.ConfigHash))
			}
			g.Expect(daemonSetDone(ctx, g, "member-3", compiled.ConfigHash)).To(BeTrue())
		}).WithContext(ctx).WithTimeout(4 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(sawSecondWaveWait).To(BeTrue(), "never saw member-3 wait while member-2 rolled out")
	}

	It("installs the agent on the first member, then on the second once the first reports every agent ready", func(ctx SpecContext) {
		ac = &fleetv1alpha1.AgentConfig{
			ObjectMeta: metav1.ObjectMeta{Name: "fleet"},
			Spec: fleetv1alpha1.AgentConfigSpec{
				Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rollout": "yes"}}},
				Image:     "meridian-node-agent:v0.1.0",
				Version:   "v0.1.0",
				Rollout:   fleetv1alpha1.AgentRollout{WaveSize: ptr.To(intstr.FromInt32(1))},
			},
		}
		Expect(bed.Hub.Client.Create(ctx, ac)).To(Succeed())
		rollsInOrder(ctx)
	}, SpecTimeout(5*time.Minute))

	It("rolls a config change out wave by wave", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), ac)).To(Succeed())
			ac.Spec.Config.LogVerbosity = 3
			g.Expect(bed.Hub.Client.Update(ctx, ac)).To(Succeed())
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		rollsInOrder(ctx)
	}, SpecTimeout(5*time.Minute))

	It("reports a second AgentConfig for the same clusters as a conflict on both and leaves the clusters alone", func(ctx SpecContext) {
		second := ac.DeepCopy()
		second.ObjectMeta = metav1.ObjectMeta{Name: "fleet-2"}
		second.Spec.Config.LogVerbosity = 9
		Expect(bed.Hub.Client.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			got := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(second), got)).To(Succeed())
			c := meta.FindStatusCondition(got.Status.Conditions, fleetv1alpha1.DegradedCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(fleetv1alpha1.AgentConfigConflictReason))
			g.Expect(c.Message).To(ContainSubstring("An older AgentConfig holds clusters member-2, member-3"))
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeFalse())

			first := &fleetv1alpha1.AgentConfig{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), first)).To(Succeed())
			c = meta.FindStatusCondition(first.Status.Conditions, fleetv1alpha1.DegradedCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Message).To(ContainSubstring("A younger AgentConfig also selects clusters member-2, member-3"))
		}).WithContext(ctx).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		works := &fleetv1alpha1.ClusterWorkList{}
		Expect(bed.Hub.Client.List(ctx, works, client.MatchingLabels{fleetv1alpha1.AgentConfigLabel: "fleet-2"})).To(Succeed())
		Expect(works.Items).To(BeEmpty())
	}, SpecTimeout(2*time.Minute))
})
