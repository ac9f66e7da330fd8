package work_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

var _ = Describe("ClusterWork", func() {
	It("creates the objects, namespaces first, and labels them as Meridian's", func() {
		ns := uniqueName("create")
		// The ConfigMap is listed before its namespace: the syncer applies namespaces first.
		createWork(newWork("member-1", ns, configMap(ns, "settings", map[string]string{"a": "1"}), namespace(ns)))
		Eventually(workCondition("member-1", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))
		Eventually(workCondition("member-1", ns, fleetv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAvailableReason))

		cm, err := memberCM("member-1", ns, "settings")()
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.Data).To(Equal(map[string]string{"a": "1"}))
		Expect(cm.Labels).To(HaveKeyWithValue(fleetv1alpha1.ManagedByLabel, fleetv1alpha1.ManagedByValue))
		Expect(cm.Annotations).To(HaveKeyWithValue(fleetv1alpha1.WorkAnnotation, ns))
		Expect(cm.ManagedFields).To(ContainElement(HaveField("Manager", fleetv1alpha1.FieldManager)))

		w := getWork(Default, "member-1", ns)
		Expect(w.Status.Summary).To(Equal("2/2 applied"))
		Expect(w.Status.Objects).To(HaveLen(2))
		Expect(w.Status.Objects[0]).To(And(HaveField("Kind", "ConfigMap"), HaveField("State", fleetv1alpha1.ObjectApplied), HaveField("Health", "Current")))
		Expect(w.Finalizers).To(ContainElement(fleetv1alpha1.WorkFinalizer))
		Expect(w.Status.ObservedGeneration).To(Equal(w.Generation))
	})

	It("puts its finalizer back when someone removes it", func() {
		ns := uniqueName("refinalize")
		createWork(newWork("member-1", ns, namespace(ns)))
		Eventually(workCondition("member-1", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))

		w := getWork(Default, "member-1", ns)
		Expect(w.Finalizers).To(ContainElement(fleetv1alpha1.WorkFinalizer))
		before := w.DeepCopy()
		w.Finalizers = nil
		Expect(bed.Hub.Client.Patch(bg(), w, client.MergeFrom(before))).To(Succeed())
		Eventually(func(g Gomega) []string { return getWork(g, "member-1", ns).Finalizers }, timeout, poll).Should(ContainElement(fleetv1alpha1.WorkFinalizer))
	})

	It("updates an object when the Work changes, prunes one the Work drops, and cleans up when the Work is deleted", func() {
		ns := uniqueName("update")
		createWork(newWork("member-1", ns, namespace(ns), configMap(ns, "keep", map[string]string{"v": "1"}), configMap(ns, "drop", nil)))
		Eventually(workCondition("member-1", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))

		By("changing one object and dropping the other")
		updateWork("member-1", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = objects(namespace(ns), configMap(ns, "keep", map[string]string{"v": "2"}))
		})
		Eventually(func() (map[string]string, error) {
			cm, err := memberCM("member-1", ns, "keep")()
			return cm.Data, err
		}, timeout, poll).Should(Equal(map[string]string{"v": "2"}))
		Eventually(func() error { _, err := memberCM("member-1", ns, "drop")(); return err }, timeout, poll).Should(Satisfy(apierrors.IsNotFound))
		Eventually(func(g Gomega) string { return getWork(g, "member-1", ns).Status.Summary }, timeout, poll).Should(Equal("2/2 applied"))

		By("deleting the Work")
		Expect(bed.Hub.Client.Delete(bg(), getWork(Default, "member-1", ns))).To(Succeed())
		Eventually(func() error { _, err := memberCM("member-1", ns, "keep")(); return err }, timeout, poll).Should(Satisfy(apierrors.IsNotFound))
	})

	It("leaves objects in place without Meridian's labels under the Orphan policy", func() {
		ns := uniqueName("orphan")
		w := newWork("member-2", ns, namespace(ns), configMap(ns, "stays", map[string]string{"k": "v"}))
		w.Spec.DeletionPolicy = fleetv1alpha1.DeletionPolicyOrphan
		createWork(w)
		Eventually(workCondition("member-2", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))

		By("dropping the ConfigMap from the Work")
		updateWork("member-2", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = objects(namespace(ns))
		})
		Eventually(func(g Gomega) {
			cm, err := memberCM("member-2", ns, "stays")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
			g.Expect(cm.Annotations).NotTo(HaveKey(fleetv1alpha1.WorkAnnotation))
			g.Expect(cm.Data).To(Equal(map[string]string{"k": "v"}))
		}, timeout, poll).Should(Succeed())

		By("deleting the Work: the namespace stays too")
		Expect(bed.Hub.Client.Delete(bg(), w)).To(Succeed())
		Eventually(func() error {
			return bed.Hub.Client.Get(bg(), client.ObjectKeyFromObject(w), &fleetv1alpha1.ClusterWork{})
		}, timeout, poll).Should(Satisfy(apierrors.IsNotFound))
		nsObj := &corev1.Namespace{}
		Expect(memberObj("member-2").Client.Get(bg(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		Expect(nsObj.DeletionTimestamp).To(BeNil())
		Expect(nsObj.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
	})

	It("repairs an object edited or deleted out of band in the member, from watch events", func() {
		ns := uniqueName("drift")
		createWork(newWork("member-1", ns, namespace(ns), configMap(ns, "guarded", map[string]string{"mode": "strict"})))
		Eventually(workCondition("member-1", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))
		member := memberObj("member-1")

		By("editing the ConfigMap with another client")
		cm, err := memberCM("member-1", ns, "guarded")()
		Expect(err).NotTo(HaveOccurred())
		cm.Data["mode"] = "loose"
		cm.Data["extra"] = "x"
		Expect(member.Client.Update(bg(), cm, client.FieldOwner("intruder"))).To(Succeed())
		edited := time.Now()
		Eventually(func() (string, error) {
			cm, err := memberCM("member-1", ns, "guarded")()
			return cm.Data["mode"], err
		}, 5*time.Second, 50*time.Millisecond).Should(Equal("strict"))
		GinkgoWriter.Printf("edit repaired after %s\n", time.Since(edited))

		By("deleting the ConfigMap with another client")
		Expect(member.Client.Delete(bg(), cm)).To(Succeed())
		deleted := time.Now()
		Eventually(func() (map[string]string, error) {
			cm, err := memberCM("member-1", ns, "guarded")()
			return cm.Data, err
		}, 5*time.Second, 50*time.Millisecond).Should(HaveKeyWithValue("mode", "strict"))
		GinkgoWriter.Printf("deletion repaired after %s\n", time.Since(deleted))
	})

	It("reports a pre-existing object it did not create as a Conflict, leaves it untouched, and takes it over with adopt", func() {
		ns := uniqueName("conflict")
		member := memberObj("member-2")
		Expect(member.Client.Create(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		theirs := configMap(ns, "theirs", map[string]string{"owner": "team-a"})
		Expect(member.Client.Create(bg(), theirs, client.FieldOwner("team-a-deployer"))).To(Succeed())
		before, err := memberCM("member-2", ns, "theirs")()
		Expect(err).NotTo(HaveOccurred())

		w := newWork("member-2", ns, configMap(ns, "theirs", map[string]string{"owner": "meridian"}))
		createWork(w)
		Eventually(workCondition("member-2", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beFalseWith(fleetv1alpha1.ConflictReason))
		Expect(workCondition("member-2", ns, fleetv1alpha1.StalledCondition)(Default)).To(beTrueWith(fleetv1alpha1.ConflictReason))
		Expect(workCondition("member-2", ns, fleetv1alpha1.DegradedCondition)(Default)).To(beTrueWith(fleetv1alpha1.ConflictReason))
		// Reconciling is present only while True (Flux: one of Reconciling and Stalled at a time).
		Expect(meta.FindStatusCondition(getWork(Default, "member-2", ns).Status.Conditions, fleetv1alpha1.ReconcilingCondition)).To(BeNil())
		st := getWork(Default, "member-2", ns).Status.Objects[0]
		Expect(st.State).To(Equal(fleetv1alpha1.ObjectConflict))
		Expect(st.ConflictManagers).To(ContainElement("team-a-deployer"))
		Expect(st.Message).To(ContainSubstring("team-a-deployer"))
		// A pass follows a change of the Work or of the member's object: both are made below,
		// the first check follows the pass over the Work's new generation (its Conflict
		// reported), and the window after the owner's edit is as long as the bound in which a
		// pass would act.
		unchanged := func() (string, error) {
			cm, err := memberCM("member-2", ns, "theirs")()
			return cm.ResourceVersion, err
		}
		Expect(unchanged()).To(Equal(before.ResourceVersion), "the object was modified")
		updateWork("member-2", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = objects(configMap(ns, "theirs", map[string]string{"owner": "meridian", "pass": "2"}))
		})
		Eventually(workCondition("member-2", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beFalseWith(fleetv1alpha1.ConflictReason))
		Expect(unchanged()).To(Equal(before.ResourceVersion), "the object was modified by a pass over a new generation")
		theirs, err = memberCM("member-2", ns, "theirs")()
		Expect(err).NotTo(HaveOccurred())
		theirs.Data["owner"] = "team-a, edited"
		Expect(member.Client.Update(bg(), theirs, client.FieldOwner("team-a-deployer"))).To(Succeed())
		edited := theirs.ResourceVersion
		Consistently(unchanged, timeout, 200*time.Millisecond).Should(Equal(edited), "the object was modified")

		By("setting adopt")
		updateWork("member-2", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Adopt = true
		})
		Eventually(workCondition("member-2", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))
		cm, err := memberCM("member-2", ns, "theirs")()
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.Data).To(Equal(map[string]string{"owner": "meridian", "pass": "2"}))
		Expect(cm.Labels).To(HaveKeyWithValue(fleetv1alpha1.ManagedByLabel, fleetv1alpha1.ManagedByValue))
		Expect(cm.Labels).To(HaveKeyWithValue(fleetv1alpha1.AdoptedLabel, "true"))

		By("dropping the adopted object from a Work whose policy is Delete: it is orphaned, not deleted")
		Expect(getWork(Default, "member-2", ns).Spec.DeletionPolicy).To(Equal(fleetv1alpha1.DeletionPolicyDelete))
		updateWork("member-2", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = nil
		})
		Eventually(func(g Gomega) {
			cm, err := memberCM("member-2", ns, "theirs")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
			g.Expect(cm.Labels).NotTo(HaveKey(fleetv1alpha1.AdoptedLabel))
			g.Expect(cm.Annotations).NotTo(HaveKey(fleetv1alpha1.WorkAnnotation))
			g.Expect(cm.Annotations).NotTo(HaveKey(fleetv1alpha1.OrphanedFromAnnotation))
		}, timeout, poll).Should(Succeed())
		// After the pass that orphaned it (the Work's status for the new generation says so), a
		// window as long as the bound in which a pass would act.
		Eventually(func(g Gomega) {
			w := getWork(g, "member-2", ns)
			g.Expect(w.Status.ObservedGeneration).To(Equal(w.Generation))
			g.Expect(w.Status.Objects).To(BeEmpty())
		}, timeout, poll).Should(Succeed())
		Consistently(memberCM("member-2", ns, "theirs"), timeout, 200*time.Millisecond).Should(
			HaveField("Data", Equal(map[string]string{"owner": "meridian", "pass": "2"})), "the adopted object was deleted")
	})

	It("takes back, without adopt, an object it created and orphaned for the same Work", func() {
		ns := uniqueName("retake")
		w := newWork("member-3", ns, namespace(ns), configMap(ns, "kept", map[string]string{"k": "v1"}))
		w.Spec.DeletionPolicy = fleetv1alpha1.DeletionPolicyOrphan
		createWork(w)
		Eventually(workCondition("member-3", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))

		updateWork("member-3", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = objects(namespace(ns))
		})
		Eventually(func(g Gomega) {
			cm, err := memberCM("member-3", ns, "kept")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
			g.Expect(cm.Annotations).To(HaveKeyWithValue(fleetv1alpha1.OrphanedFromAnnotation, ns))
		}, timeout, poll).Should(Succeed())

		By("listing it again in the same Work")
		updateWork("member-3", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = objects(namespace(ns), configMap(ns, "kept", map[string]string{"k": "v2"}))
		})
		Eventually(func(g Gomega) {
			cm, err := memberCM("member-3", ns, "kept")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.Data).To(HaveKeyWithValue("k", "v2"))
			g.Expect(cm.Labels).To(HaveKeyWithValue(fleetv1alpha1.ManagedByLabel, fleetv1alpha1.ManagedByValue))
			g.Expect(cm.Labels).NotTo(HaveKey(fleetv1alpha1.AdoptedLabel))
			g.Expect(cm.Annotations).NotTo(HaveKey(fleetv1alpha1.OrphanedFromAnnotation))
		}, timeout, poll).Should(Succeed())
		Eventually(workCondition("member-3", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))

		By("another Work listing an object orphaned by the first still needs adopt")
		other := newWork("member-3", ns+"-other", configMap(ns, "kept", map[string]string{"k": "other"}))
		updateWork("member-3", ns, func(w *fleetv1alpha1.ClusterWork) {
			w.Spec.Objects = objects(namespace(ns))
		})
		Eventually(func(g Gomega) {
			cm, err := memberCM("member-3", ns, "kept")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cm.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
		}, timeout, poll).Should(Succeed())
		createWork(other)
		Eventually(workCondition("member-3", ns+"-other", fleetv1alpha1.AppliedCondition), timeout, poll).Should(beFalseWith(fleetv1alpha1.ConflictReason))
	})

	It("reports a Work's objects that another Work already owns as a Conflict", func() {
		ns := uniqueName("twoworks")
		createWork(newWork("member-1", ns+"-a", namespace(ns), configMap(ns, "shared", map[string]string{"from": "a"})))
		Eventually(workCondition("member-1", ns+"-a", fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))
		createWork(newWork("member-1", ns+"-b", configMap(ns, "shared", map[string]string{"from": "b"})))
		Eventually(workCondition("member-1", ns+"-b", fleetv1alpha1.AppliedCondition), timeout, poll).Should(And(
			beFalseWith(fleetv1alpha1.ConflictReason), HaveField("Message", ContainSubstring(ns+"-a"))))
		cm, err := memberCM("member-1", ns, "shared")()
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.Data).To(HaveKeyWithValue("from", "a"))
	})

	It("reads back the status fields a Work asks for", func() {
		ns := uniqueName("feedback")
		labels := map[string]string{"app": "agent"}
		ds := &appsv1.DaemonSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "registry.example/agent:1"}}},
				},
			},
		}
		w := newWork("member-3", ns, namespace(ns), ds)
		w.Spec.StatusFeedback = []fleetv1alpha1.FeedbackRule{{Group: "apps", Kind: "DaemonSet", Fields: []fleetv1alpha1.FeedbackField{
			{Name: "numberReady", JSONPath: ".status.numberReady"},
			{Name: "desired", JSONPath: ".status.desiredNumberScheduled"},
		}}}
		createWork(w)
		Eventually(workCondition("member-3", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAppliedReason))

		By("the member's DaemonSet controller reporting 3 of 3 ready (written by the test: this member runs no controllers)")
		member := memberObj("member-3")
		live := &appsv1.DaemonSet{}
		Expect(member.Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "agent"}, live)).To(Succeed())
		live.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 3, NumberAvailable: 3, UpdatedNumberScheduled: 3, ObservedGeneration: live.Generation}
		Expect(member.Client.Status().Update(bg(), live)).To(Succeed())
		Eventually(func(g Gomega) []fleetv1alpha1.FeedbackValue {
			return getWork(g, "member-3", ns).Status.Objects[1].Feedback
		}, timeout, poll).Should(ConsistOf(
			fleetv1alpha1.FeedbackValue{Name: "numberReady", Value: "3"},
			fleetv1alpha1.FeedbackValue{Name: "desired", Value: "3"},
		))
		Eventually(workCondition("member-3", ns, fleetv1alpha1.AvailableCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAvailableReason))
	})

	It("reports an object the member refuses as Failed and applies the rest", func() {
		ns := uniqueName("refused")
		bad := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"namespace": ns, "name": "Not_A_Name"}}
		createWork(newWork("member-1", ns, namespace(ns), bad, configMap(ns, "fine", nil)))
		Eventually(workCondition("member-1", ns, fleetv1alpha1.AppliedCondition), timeout, poll).Should(beFalseWith(fleetv1alpha1.ApplyFailedReason))
		w := getWork(Default, "member-1", ns)
		Expect(w.Status.Objects[1].State).To(Equal(fleetv1alpha1.ObjectFailed))
		Expect(w.Status.Objects[1].Message).To(ContainSubstring("Not_A_Name"))
		Expect(w.Status.Objects[2].State).To(Equal(fleetv1alpha1.ObjectApplied))
	})
})

var _ = Describe("ClusterWork isolation", Serial, func() {
	It("reports a dead member's Works as unreachable while two live members converge on time", func() {
		const perMember = 10
		name := uniqueName("iso")
		dead := memberObj("member-3")
		Expect(dead.StopAPIServer()).To(Succeed())
		restarted := false
		DeferCleanup(func() {
			if !restarted {
				Expect(dead.StartAPIServer()).To(Succeed())
			}
		})
		Eventually(func(g Gomega) {
			m := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: "member-3"}, m)).To(Succeed())
			g.Expect(m.Status.Conditions).To(ContainElement(And(HaveField("Type", "Reachable"), HaveField("Status", metav1.ConditionFalse))))
		}, timeout, poll).Should(Succeed())

		start := time.Now()
		for _, m := range members {
			createWork(newWork(m, name+"-ns", namespace(name)))
			for i := range perMember {
				createWork(newWork(m, fmt.Sprintf("%s-%d", name, i), configMap(name, fmt.Sprintf("cm-%d", i), map[string]string{"i": fmt.Sprint(i)})))
			}
		}
		for _, m := range members[:2] {
			for i := range perMember {
				Eventually(workCondition(m, fmt.Sprintf("%s-%d", name, i), fleetv1alpha1.AppliedCondition), 10*time.Second, poll).
					Should(beTrueWith(fleetv1alpha1.AllAppliedReason))
			}
		}
		GinkgoWriter.Printf("%d Works on two live members applied %s after creation, with a third member down\n", 2*perMember, time.Since(start))
		for i := range perMember {
			Eventually(workCondition("member-3", fmt.Sprintf("%s-%d", name, i), fleetv1alpha1.AppliedCondition), timeout, poll).
				Should(And(HaveField("Status", metav1.ConditionUnknown), HaveField("Reason", fleetv1alpha1.MemberUnreachableReason)))
		}

		By("bringing the member back: its Works converge")
		Expect(dead.StartAPIServer()).To(Succeed())
		restarted = true
		for i := range perMember {
			Eventually(workCondition("member-3", fmt.Sprintf("%s-%d", name, i), fleetv1alpha1.AppliedCondition), 30*time.Second, poll).
				Should(beTrueWith(fleetv1alpha1.AllAppliedReason))
		}
	})
})

var _ = Describe("ClusterWork steady state", Serial, func() {
	// Besides the 100 Works, the steady state holds a ConfigMap and two Secrets whose negative
	// half (Meridian does not write them again) is checked from the moment each is applied to the
	// end of the steady-state window, instead of in three windows of their own one after the other:
	// they are independent objects, and each is held longer than the 20 s bound a Work's apply has.
	It("sends no write to the hub or the members over 30 s once 100 Works are applied; a ConfigMap, a Secret given partly as stringData and a Secret repaired after an edit are never written again", func() {
		unchanged := []func(Gomega){quietConfigMap(), stringDataSecret(false), stringDataSecret(true)}
		name := uniqueName("steady")
		var works []*fleetv1alpha1.ClusterWork
		for _, m := range members {
			w := newWork(m, name+"-ns", namespace(name))
			createWork(w)
			works = append(works, w)
		}
		for i := range 100 {
			m := members[i%len(members)]
			w := newWork(m, fmt.Sprintf("%s-%d", name, i), configMap(name, fmt.Sprintf("cm-%d", i), map[string]string{"i": fmt.Sprint(i)}))
			createWork(w)
			works = append(works, w)
		}
		for _, w := range works {
			Eventually(workCondition(w.Namespace[len(fleetv1alpha1.MemberClusterNamespacePrefix):], w.Name, fleetv1alpha1.ReadyCondition), 60*time.Second, poll).
				Should(beTrueWith(fleetv1alpha1.AllAvailableReason))
		}
		clusters := append([]*testbed.Cluster{bed.Hub}, bed.Members...)
		snapshot := func(g Gomega) []map[string]float64 {
			out := make([]map[string]float64, len(clusters))
			for i, c := range clusters {
				var err error
				out[i], err = c.WriteRequests(bg())
				g.Expect(err).NotTo(HaveOccurred())
			}
			return out
		}
		// quiet fails when any cluster saw a write, other than the apiserver renewing its own
		// identity lease every ~10 s, since before.
		quiet := func(before []map[string]float64) func(Gomega) {
			return func(g Gomega) {
				for i, after := range snapshot(g) {
					diff := testbed.DiffWrites(before[i], after)
					g.Expect(testbed.WritesExcept(diff, "coordination.k8s.io/leases")).To(BeZero(), "writes to %s: %v", clusters[i].Name, diff)
				}
			}
		}
		// The last status patches and watch events settle: the first 3 s without a write.
		var before []map[string]float64
		Eventually(func(g Gomega) {
			before = snapshot(g)
			g.Consistently(quiet(before), 3*time.Second, 500*time.Millisecond).Should(Succeed())
		}, 60*time.Second, poll).Should(Succeed())
		// The objects every poll, the writes (four metrics scrapes) every second, and once more at
		// the end of the window.
		counted := time.Now()
		Consistently(func(g Gomega) {
			for _, check := range unchanged {
				check(g)
			}
			if time.Since(counted) >= time.Second {
				counted = time.Now()
				quiet(before)(g)
			}
		}, 30*time.Second, 300*time.Millisecond).Should(Succeed())
		quiet(before)(Default)
		for i, after := range snapshot(Default) {
			GinkgoWriter.Printf("%s writes in 30 s of steady state: %v\n", clusters[i].Name, testbed.DiffWrites(before[i], after))
		}
	})
})

// quietConfigMap applies a ConfigMap through a Work and returns a check that it still has the
// resourceVersion it had once the Work was Ready: never a timer. The steady-state window would
// catch a rewrite; this guards the other direction, that a drift repair is not the only thing
// keeping objects right, from the first moment.
func quietConfigMap() func(Gomega) {
	GinkgoHelper()
	By("a ConfigMap applied through a Work")
	ns := uniqueName("quiet")
	createWork(newWork("member-2", ns, namespace(ns), configMap(ns, "c", map[string]string{"x": "y"})))
	Eventually(workCondition("member-2", ns, fleetv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAvailableReason))
	cm, err := memberCM("member-2", ns, "c")()
	Expect(err).NotTo(HaveOccurred())
	return func(g Gomega) {
		now, err := memberCM("member-2", ns, "c")()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(now.ResourceVersion).To(Equal(cm.ResourceVersion), "ConfigMap %s/c was written again", ns)
	}
}

// stringDataSecret applies a Secret given partly as stringData, which the member turns into data,
// so that what the member holds never equals the manifest field for field: the syncer must learn
// the object's shape from its own write and neither write it again nor miss an edit. With edit,
// another client changes its data and Meridian repairs it. It returns a check that the Secret
// keeps the resourceVersion it had once applied (or repaired).
func stringDataSecret(edit bool) func(Gomega) {
	GinkgoHelper()
	ns := uniqueName("secret")
	if edit {
		ns = uniqueName("repaired") // uniqueName is unique per spec and prefix
	}
	By("a Secret given partly as stringData, in " + ns)
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token"},
		Data:       map[string][]byte{"user": []byte("meridian")},
		StringData: map[string]string{"token": "s3cret"},
	}
	createWork(newWork("member-2", ns, namespace(ns), secret))
	Eventually(workCondition("member-2", ns, fleetv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(fleetv1alpha1.AllAvailableReason))
	member := memberObj("member-2")
	get := func() (*corev1.Secret, error) {
		s := &corev1.Secret{}
		return s, member.Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "token"}, s)
	}
	live, err := get()
	Expect(err).NotTo(HaveOccurred())
	Expect(string(live.Data["token"])).To(Equal("s3cret"))
	Expect(string(live.Data["user"])).To(Equal("meridian"))
	if edit {
		By("editing its data with another client")
		live.Data["user"] = []byte("intruder")
		Expect(member.Client.Update(bg(), live, client.FieldOwner("intruder"))).To(Succeed())
		Eventually(func() (string, error) { s, err := get(); return string(s.Data["user"]), err }, 5*time.Second, 50*time.Millisecond).Should(Equal("meridian"))
		live, err = get()
		Expect(err).NotTo(HaveOccurred())
	}
	return func(g Gomega) {
		now, err := get()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(now.ResourceVersion).To(Equal(live.ResourceVersion), "Secret %s/token was written again", ns)
	}
}
