package globalns_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

var _ = Describe("GlobalNamespace rename", func() {
	It("releases the old namespace when an override renames it: retained, without the GlobalNamespace's label or Meridian's marks", func() {
		name := uniqueName("ren")
		oldName, newName := name+"-old", name+"-new"
		for _, n := range []string{name, oldName, newName} {
			for _, m := range []string{"member-1", "member-2"} {
				DeferCleanup(func() {
					_ = bed.Member(m).Client.Delete(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})
				})
			}
		}
		createGNS(&netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement:      fleetv1alpha1.Placement{ClusterNames: []string{"member-1", "member-2"}},
				DeletionPolicy: netv1alpha1.NamespaceRetain,
				Labels:         map[string]string{"team": "ren"},
				Overrides:      []netv1alpha1.NamespaceOverride{{Cluster: "member-2", NamespaceName: oldName}},
			},
		})
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		Expect(memberNS("member-2", oldName)()).To(And(managedBy(), HaveField("Labels", HaveKeyWithValue(netv1alpha1.GlobalNamespaceLabel, name))))

		updateGNS(name, func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Overrides = []netv1alpha1.NamespaceOverride{{Cluster: "member-2", NamespaceName: newName}}
		})
		Eventually(func(g Gomega) {
			st := getGNS(g, name)
			g.Expect(st.Status.ObservedGeneration).To(Equal(st.Generation))
			g.Expect(st.Status.Clusters).To(ContainElement(netv1alpha1.ClusterNamespaceStatus{
				Cluster: "member-2", Namespace: newName, State: netv1alpha1.ClusterNamespaceApplied}))
			g.Expect(meta.FindStatusCondition(st.Status.Conditions, netv1alpha1.ReadyCondition)).To(beTrueWith(netv1alpha1.AllAppliedReason))
		}, settle, poll).Should(Succeed())
		Expect(memberNS("member-2", newName)()).To(And(managedBy(), HaveField("Labels", HaveKeyWithValue(netv1alpha1.GlobalNamespaceLabel, name))))

		old, err := memberNS("member-2", oldName)()
		Expect(err).NotTo(HaveOccurred(), "Retain lost the old namespace")
		Expect(old.DeletionTimestamp).To(BeNil())
		Expect(old.Labels).NotTo(HaveKey(netv1alpha1.GlobalNamespaceLabel), "the old namespace still names the GlobalNamespace")
		Expect(old.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel))
		Expect(old.Annotations).NotTo(HaveKey(fleetv1alpha1.WorkAnnotation))
		Expect(old.Labels).To(HaveKeyWithValue("team", "ren"))
		Expect(memberNS("member-1", name)()).To(managedBy(), "member-1's namespace is untouched")
	})
})
