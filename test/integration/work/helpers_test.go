package work_test

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
	"github.com/meridian-io/meridian/test/testbed"
)

const (
	timeout = 20 * time.Second
	poll    = 100 * time.Millisecond
)

func hubNS(member string) string { return fleetv1alpha1.MemberClusterNamespacePrefix + member }

func objects(objs ...any) []fleetv1alpha1.WorkObject {
	out := make([]fleetv1alpha1.WorkObject, 0, len(objs))
	for _, o := range objs {
		b, err := json.Marshal(o)
		Expect(err).NotTo(HaveOccurred())
		out = append(out, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: b}})
	}
	return out
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       data,
	}
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func newWork(member, name string, objs ...any) *fleetv1alpha1.ClusterWork {
	return &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{Namespace: hubNS(member), Name: name},
		Spec:       fleetv1alpha1.ClusterWorkSpec{Objects: objects(objs...)},
	}
}

// createWork creates a Work and deletes it (waiting for its cleanup) when the spec ends.
func createWork(w *fleetv1alpha1.ClusterWork) {
	ExpectWithOffset(1, bed.Hub.Client.Create(bg(), w)).To(Succeed())
	DeferCleanup(func() {
		_ = client.IgnoreNotFound(bed.Hub.Client.Delete(bg(), w))
		Eventually(func() bool {
			return bed.Hub.Client.Get(bg(), client.ObjectKeyFromObject(w), &fleetv1alpha1.ClusterWork{}) != nil
		}, timeout, poll).Should(BeTrue(), "Work %s was not removed", w.Name)
	})
}

func getWork(g Gomega, member, name string) *fleetv1alpha1.ClusterWork {
	w := &fleetv1alpha1.ClusterWork{}
	g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Namespace: hubNS(member), Name: name}, w)).To(Succeed())
	return w
}

func workCondition(member, name, condType string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		w := getWork(g, member, name)
		c := meta.FindStatusCondition(w.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.ObservedGeneration).To(Equal(w.Generation), "condition describes an older generation")
		return c
	}
}

func beTrueWith(reason string) OmegaMatcher {
	return And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", reason))
}

func beFalseWith(reason string) OmegaMatcher {
	return And(HaveField("Status", metav1.ConditionFalse), HaveField("Reason", reason))
}

func memberCM(member, ns, name string) func() (*corev1.ConfigMap, error) {
	return func() (*corev1.ConfigMap, error) {
		cm := &corev1.ConfigMap{}
		err := bed.Member(member).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: name}, cm)
		return cm, err
	}
}

func memberObj(member string) *testbed.Cluster { return bed.Member(member) }

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, GinkgoRandomSeed()%1000+int64(CurrentSpecReport().LeafNodeLocation.LineNumber))
}

// updateWork changes a Work on the hub, reading it again when the syncer's status write got there
// first (a conflict).
func updateWork(member, name string, change func(*fleetv1alpha1.ClusterWork)) {
	GinkgoHelper()
	Eventually(func() error {
		w := getWork(Default, member, name)
		change(w)
		return bed.Hub.Client.Update(bg(), w)
	}, timeout, poll).Should(Succeed())
}
