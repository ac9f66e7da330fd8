package globalns_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

var _ = Describe("GlobalNamespace", func() {
	It("creates the namespace in every selected cluster; clusters join and leave by their labels (Retain)", func() {
		name := uniqueName("shop")
		createGNS(&netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement:   fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
				Labels:      map[string]string{"team": "shop"},
				Annotations: map[string]string{"example.com/owner": "shop-team"},
			},
		})
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		Expect(kstatusOf(name)(Default)).To(Equal(status.CurrentStatus))
		gns := getGNS(Default, name)
		Expect(gns.Status.Summary).To(Equal("2/2"))
		Expect(gns.Finalizers).To(ContainElement(netv1alpha1.GlobalNamespaceFinalizer))
		Expect(gns.Status.Clusters).To(Equal([]netv1alpha1.ClusterNamespaceStatus{
			{Cluster: "member-1", Namespace: name, State: netv1alpha1.ClusterNamespaceApplied},
			{Cluster: "member-2", Namespace: name, State: netv1alpha1.ClusterNamespaceApplied},
		}))
		for _, m := range []string{"member-1", "member-2"} {
			ns, err := memberNS(m, name)()
			Expect(err).NotTo(HaveOccurred())
			Expect(ns.Labels).To(HaveKeyWithValue("team", "shop"))
			Expect(ns.Labels).To(HaveKeyWithValue(netv1alpha1.GlobalNamespaceLabel, name))
			Expect(ns.Annotations).To(HaveKeyWithValue("example.com/owner", "shop-team"))
			Expect(ns).To(managedBy())
		}
		_, err := memberNS("member-3", name)()
		Expect(err).To(HaveOccurred(), "member-3 is not selected")

		By("member-3 joining: labelled env=prod")
		setMemberLabels("member-3", map[string]string{"env": "prod", "region": "eu"})
		Eventually(memberNS("member-3", name), timeout, poll).Should(managedBy())
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		Expect(getGNS(Default, name).Status.Summary).To(Equal("3/3"))

		By("member-2 leaving: relabelled env=dev; Retain keeps its namespace, without Meridian's marks")
		setMemberLabels("member-2", map[string]string{"env": "dev"})
		Eventually(func(g Gomega) {
			ns, err := memberNS("member-2", name)()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ns.DeletionTimestamp).To(BeNil())
			g.Expect(ns.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
			g.Expect(ns.Labels).To(HaveKeyWithValue("team", "shop"), "the stamped labels stay")
			g.Expect(ns.Labels).NotTo(HaveKey(netv1alpha1.GlobalNamespaceLabel), "the retained namespace still names the GlobalNamespace")
		}, timeout, poll).Should(Succeed())
		Eventually(clusterStates(name), timeout, poll).Should(Equal(map[string]netv1alpha1.ClusterNamespaceState{
			"member-1": netv1alpha1.ClusterNamespaceApplied, "member-3": netv1alpha1.ClusterNamespaceApplied,
		}))
		Expect(condition(name, netv1alpha1.ReadyCondition)(Default)).To(beTrueWith(netv1alpha1.AllAppliedReason))
		// After the member's Work is gone (its finalizer carried out Retain), a window as long
		// as the bound in which a deletion would have come.
		Eventually(memberWorks(name, "member-2"), timeout, poll).Should(BeEmpty())
		Consistently(gone("member-2", name), timeout, poll).Should(BeFalse(), "Retain deleted a namespace")

		By("member-2 joining again: its retained namespace is taken back without adopt")
		setMemberLabels("member-2", map[string]string{"env": "prod"})
		Eventually(memberNS("member-2", name), timeout, poll).Should(managedBy())
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))

		By("deleting the GlobalNamespace: Retain keeps every namespace")
		Expect(bed.Hub.Client.Delete(bg(), getGNS(Default, name))).To(Succeed())
		Eventually(func() error {
			return bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, &netv1alpha1.GlobalNamespace{})
		}, timeout, poll).ShouldNot(Succeed())
		for _, m := range members {
			ns, err := memberNS(m, name)()
			Expect(err).NotTo(HaveOccurred())
			Expect(ns.DeletionTimestamp).To(BeNil())
			Expect(ns.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
		}
	})

	It("with Delete, deletes the namespaces Meridian created, and never an adopted one", func() {
		name := uniqueName("ledger")
		By("member-2 already having the namespace, made by someone else")
		Expect(bed.Member("member-2").Client.Create(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, client.FieldOwner("team-ledger"))).To(Succeed())
		createGNS(&netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement:      fleetv1alpha1.Placement{ClusterNames: []string{"member-1", "member-2", "member-3"}},
				DeletionPolicy: netv1alpha1.NamespaceDelete,
				Adopt:          true,
			},
		})
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		Expect(memberNS("member-2", name)()).To(HaveField("Labels", HaveKeyWithValue(fleetv1alpha1.AdoptedLabel, "true")))

		By("member-1 leaving the placement: its namespace is deleted")
		updateGNS(name, func(g *netv1alpha1.GlobalNamespace) { g.Spec.Placement.ClusterNames = []string{"member-2", "member-3"} })
		Eventually(gone("member-1", name), timeout, poll).Should(BeTrue())
		Eventually(clusterStates(name), timeout, poll).Should(Equal(map[string]netv1alpha1.ClusterNamespaceState{
			"member-2": netv1alpha1.ClusterNamespaceApplied, "member-3": netv1alpha1.ClusterNamespaceApplied,
		}))

		By("deleting the GlobalNamespace: member-3's namespace is deleted, member-2's adopted one stays")
		Expect(bed.Hub.Client.Delete(bg(), getGNS(Default, name))).To(Succeed())
		Eventually(gone("member-3", name), timeout, poll).Should(BeTrue())
		Eventually(func() error {
			return bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, &netv1alpha1.GlobalNamespace{})
		}, timeout, poll).ShouldNot(Succeed())
		ns, err := memberNS("member-2", name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(ns.DeletionTimestamp).To(BeNil(), "an adopted namespace was deleted")
		Expect(ns.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
		Expect(ns.Labels).NotTo(HaveKey(fleetv1alpha1.AdoptedLabel))
	})

	It("reports an existing namespace as a Conflict and leaves it untouched; adopt takes it over", func() {
		name := uniqueName("billing")
		member := bed.Member("member-3")
		Expect(member.Client.Create(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"owner": "team-billing"}}},
			client.FieldOwner("team-billing"))).To(Succeed())
		before, err := memberNS("member-3", name)()
		Expect(err).NotTo(HaveOccurred())
		createGNS(&netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}},
				Labels:    map[string]string{"billing": "true"},
			},
		})
		Eventually(condition(name, netv1alpha1.StalledCondition), timeout, poll).Should(beTrueWith(netv1alpha1.ConflictReason))
		Expect(condition(name, netv1alpha1.ReadyCondition)(Default)).To(And(beFalseWith(netv1alpha1.ConflictReason),
			HaveField("Message", And(ContainSubstring("member-3"), ContainSubstring("team-billing"), ContainSubstring("spec.adopt")))))
		// Reconciling is present only while True (Flux: one of Reconciling and Stalled at a time).
		Expect(meta.FindStatusCondition(current(name)(Default).Status.Conditions, netv1alpha1.ReconcilingCondition)).To(BeNil())
		Expect(kstatusOf(name)(Default)).To(Equal(status.FailedStatus))
		// Stalled comes from member-3's conflict; member-1's Work may still be on its way.
		Eventually(clusterStates(name), timeout, poll).Should(Equal(map[string]netv1alpha1.ClusterNamespaceState{
			"member-1": netv1alpha1.ClusterNamespaceApplied, "member-3": netv1alpha1.ClusterNamespaceConflict,
		}))
		// A pass follows a change of the Work (here from a change of the GlobalNamespace) or of
		// the member's namespace: both are made, the first check follows the pass over the
		// Work's new generation (its Conflict reported), and the window after the owner's edit
		// is as long as the bound in which a pass would act.
		unchanged := func() (string, error) {
			ns, err := memberNS("member-3", name)()
			return ns.ResourceVersion, err
		}
		Expect(unchanged()).To(Equal(before.ResourceVersion), "the namespace was modified")
		workOf := func(g Gomega) *fleetv1alpha1.ClusterWork {
			works := memberWorks(name, "member-3")(g)
			g.Expect(works).To(HaveLen(1))
			return &works[0]
		}
		generation := workOf(Default).Generation
		updateGNS(name, func(g *netv1alpha1.GlobalNamespace) { g.Spec.Labels["pass"] = "2" })
		Eventually(func(g Gomega) {
			w := workOf(g)
			g.Expect(w.Generation).To(BeNumerically(">", generation))
			c := meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.ObservedGeneration).To(Equal(w.Generation))
			g.Expect(c.Reason).To(Equal(fleetv1alpha1.ConflictReason))
		}, timeout, poll).Should(Succeed())
		Expect(unchanged()).To(Equal(before.ResourceVersion), "the namespace was modified by a pass over a new generation")
		owned, err := memberNS("member-3", name)()
		Expect(err).NotTo(HaveOccurred())
		owned.Labels["edited"] = "yes"
		Expect(member.Client.Update(bg(), owned, client.FieldOwner("team-billing"))).To(Succeed())
		Consistently(unchanged, timeout, poll).Should(Equal(owned.ResourceVersion), "the namespace was modified")

		By("setting adopt")
		updateGNS(name, func(g *netv1alpha1.GlobalNamespace) { g.Spec.Adopt = true })
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		ns, err := memberNS("member-3", name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(ns).To(managedBy())
		Expect(ns.Labels).To(HaveKeyWithValue("billing", "true"))
		Expect(ns.Labels).To(HaveKeyWithValue("owner", "team-billing"), "adopting keeps what others set")
	})

	It("gives the namespace another name where an override says so", func() {
		name := uniqueName("search")
		createGNS(&netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement:     fleetv1alpha1.Placement{ClusterNames: []string{"member-1", "member-2"}},
				NamespaceName: name + "-app",
				Overrides:     []netv1alpha1.NamespaceOverride{{Cluster: "member-2", NamespaceName: name + "-legacy"}},
			},
		})
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		Expect(memberNS("member-1", name+"-app")()).To(managedBy())
		Expect(memberNS("member-2", name+"-legacy")()).To(managedBy())
		Expect(getGNS(Default, name).Status.Clusters).To(ContainElement(
			netv1alpha1.ClusterNamespaceStatus{Cluster: "member-2", Namespace: name + "-legacy", State: netv1alpha1.ClusterNamespaceApplied}))
	})

	It("refuses a GlobalNamespace a member could not hold, saying what to fix", func() {
		err := bed.Hub.Client.Create(bg(), &netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: uniqueName("bad")},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement: fleetv1alpha1.Placement{ClusterNames: []string{"member-1"}},
				Labels:    map[string]string{netv1alpha1.GlobalNamespaceLabel: "x", "ok": "not a label value"},
			},
		})
		Expect(err).To(MatchError(And(ContainSubstring("set by Meridian itself"), ContainSubstring("spec.labels"))))
		err = bed.Hub.Client.Create(bg(), &netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: uniqueName("bad")},
			Spec:       netv1alpha1.GlobalNamespaceSpec{},
		})
		Expect(err).To(MatchError(ContainSubstring("placement.clusterSelector")))
	})
})
