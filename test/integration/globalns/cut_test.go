package globalns_test

import (
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// A member behind a network partition (Cut: its apiserver runs, every packet to it is dropped, so
// requests wait for their timeout rather than fail at once as against a stopped apiserver) costs
// only its own workers: new ClusterWorks and GlobalNamespaces reach the other members within the
// same bound as with every member healthy.
var _ = Describe("A member cut off the network", Serial, func() {
	It("does not slow new ClusterWorks and GlobalNamespaces for the others, is reported unreachable with a reason, and catches up after Restore", func() {
		// bound is the same for the healthy and the cut round.
		const bound = settle
		const perMember = 5
		live := []string{"member-1", "member-3"}

		cmWork := func(member, name string) *fleetv1alpha1.ClusterWork {
			var objs []fleetv1alpha1.WorkObject
			for _, o := range []any{
				&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name}},
				&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
					ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "cm"}, Data: map[string]string{"v": "1"}},
			} {
				b, err := json.Marshal(o)
				Expect(err).NotTo(HaveOccurred())
				objs = append(objs, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: b}})
			}
			return &fleetv1alpha1.ClusterWork{
				ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + member, Name: name},
				Spec:       fleetv1alpha1.ClusterWorkSpec{Objects: objs},
			}
		}
		cmIn := func(ns string, ms ...string) func(Gomega) {
			return func(g Gomega) {
				for _, m := range ms {
					cm := &corev1.ConfigMap{}
					g.Expect(bed.Member(m).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "cm"}, cm)).To(Succeed(), "in %s", m)
				}
			}
		}
		nsIn := func(name string, ms ...string) func(Gomega) {
			return func(g Gomega) {
				for _, m := range ms {
					_, err := memberNS(m, name)()
					g.Expect(err).NotTo(HaveOccurred(), "in %s", m)
				}
			}
		}
		// round creates perMember ClusterWorks on every member and a GlobalNamespace over all, and
		// returns how long they took to reach live, and their names.
		round := func(prefix string) (works, gns time.Duration, workNames []string, gnsName string) {
			GinkgoHelper()
			start := time.Now()
			for i := range perMember {
				name := uniqueName(fmt.Sprintf("%s-w%d", prefix, i))
				workNames = append(workNames, name)
				for _, m := range members {
					w := cmWork(m, name)
					Expect(bed.Hub.Client.Create(bg(), w)).To(Succeed())
					DeferCleanup(func() { _ = client.IgnoreNotFound(bed.Hub.Client.Delete(bg(), w)) })
				}
			}
			for _, name := range workNames {
				Eventually(cmIn(name, live...), bound, poll).Should(Succeed(), "ClusterWork %s", name)
			}
			works = time.Since(start)

			start = time.Now()
			gnsName = uniqueName(prefix)
			createGNS(&netv1alpha1.GlobalNamespace{ObjectMeta: metav1.ObjectMeta{Name: gnsName},
				Spec: netv1alpha1.GlobalNamespaceSpec{Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
					DeletionPolicy: netv1alpha1.NamespaceDelete}})
			Eventually(nsIn(gnsName, live...), bound, poll).Should(Succeed(), "GlobalNamespace %s", gnsName)
			gns = time.Since(start)
			return works, gns, workNames, gnsName
		}

		By("all three healthy")
		healthyWorks, healthyGNS, _, _ := round("whole")

		By("member-2 cut off")
		cut := bed.Member("member-2")
		Expect(cut.Cut()).To(Succeed())
		restored := false
		DeferCleanup(func() {
			if !restored {
				Expect(cut.Restore()).To(Succeed())
			}
		})
		Eventually(func(g Gomega) *metav1.Condition {
			m := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: "member-2"}, m)).To(Succeed())
			return meta.FindStatusCondition(m.Status.Conditions, fleetv1alpha1.ReachableCondition)
		}, bound, poll).Should(And(beFalseWith(fleetv1alpha1.MemberUnreachableReason), HaveField("Message", Not(BeEmpty()))),
			"member-2 is not reported unreachable")
		cutWorks, cutGNS, workNames, gnsName := round("cut")

		GinkgoWriter.Printf("all healthy: %d new ClusterWorks per member applied to member-1 and member-3 in %v, new GlobalNamespace in %v\n", perMember, healthyWorks, healthyGNS)
		GinkgoWriter.Printf("member-2 cut: %d new ClusterWorks per member applied to member-1 and member-3 in %v, new GlobalNamespace in %v (bound %v)\n", perMember, cutWorks, cutGNS, bound)
		AddReportEntry("healthy", fmt.Sprintf("works %v, GlobalNamespace %v", healthyWorks, healthyGNS))
		AddReportEntry("member-2 cut", fmt.Sprintf("works %v, GlobalNamespace %v", cutWorks, cutGNS))
		Expect(cutWorks).To(BeNumerically("<", bound))
		Expect(cutGNS).To(BeNumerically("<", bound))

		By("member-2's share is reported unreachable, not applied")
		Eventually(clusterStates(gnsName), bound, poll).Should(HaveKeyWithValue("member-2", netv1alpha1.ClusterNamespaceUnreachable))
		Eventually(func(g Gomega) *metav1.Condition {
			w := &fleetv1alpha1.ClusterWork{}
			g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + "member-2", Name: workNames[0]}, w)).To(Succeed())
			return meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.ReadyCondition)
		}, bound, poll).Should(And(beFalseWith(fleetv1alpha1.MemberUnreachableReason), HaveField("Message", ContainSubstring("member-2 is not reachable"))))

		By("member-2 restored: it catches up")
		Expect(cut.Restore()).To(Succeed())
		restored = true
		for _, name := range workNames {
			Eventually(cmIn(name, "member-2"), bound, poll).Should(Succeed(), "ClusterWork %s in member-2", name)
		}
		Eventually(nsIn(gnsName, "member-2"), bound, poll).Should(Succeed())
		Eventually(clusterStates(gnsName), bound, poll).Should(HaveKeyWithValue("member-2", netv1alpha1.ClusterNamespaceApplied))
		Eventually(condition(gnsName, netv1alpha1.ReadyCondition), bound, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		fleetSteady()
	})
})
