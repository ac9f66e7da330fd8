package globalns_test

import (
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

const (
	timeout = 30 * time.Second
	poll    = 200 * time.Millisecond
)

var seq atomic.Int64

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

func setMemberLabels(name string, labels map[string]string) {
	GinkgoHelper()
	Eventually(func() error {
		m := &fleetv1alpha1.MemberCluster{}
		if err := bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, m); err != nil {
			return err
		}
		m.Labels = labels
		return bed.Hub.Client.Update(bg(), m)
	}, timeout, poll).Should(Succeed())
}

// createGNS creates a GlobalNamespace and, when the spec ends, deletes it and waits until it is gone.
func createGNS(g *netv1alpha1.GlobalNamespace) {
	GinkgoHelper()
	Expect(bed.Hub.Client.Create(bg(), g)).To(Succeed())
	DeferCleanup(func() {
		_ = client.IgnoreNotFound(bed.Hub.Client.Delete(bg(), g))
		Eventually(func() bool {
			return apierrors.IsNotFound(bed.Hub.Client.Get(bg(), client.ObjectKeyFromObject(g), &netv1alpha1.GlobalNamespace{}))
		}, timeout, poll).Should(BeTrue(), "GlobalNamespace %s was not removed", g.Name)
	})
}

func getGNS(g Gomega, name string) *netv1alpha1.GlobalNamespace {
	out := &netv1alpha1.GlobalNamespace{}
	g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, out)).To(Succeed())
	return out
}

// current asserts that the GlobalNamespace's status describes its spec and returns it.
func current(name string) func(Gomega) *netv1alpha1.GlobalNamespace {
	return func(g Gomega) *netv1alpha1.GlobalNamespace {
		out := getGNS(g, name)
		g.Expect(out.Status.ObservedGeneration).To(Equal(out.Generation), "status describes an older generation")
		return out
	}
}

func condition(name, condType string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		out := current(name)(g)
		c := meta.FindStatusCondition(out.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil())
		return c
	}
}

// kstatusOf is what kstatus (kubectl wait, Argo CD, Flux) reads from the GlobalNamespace.
func kstatusOf(name string) func(Gomega) status.Status {
	return func(g Gomega) status.Status {
		out := current(name)(g)
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(out)
		g.Expect(err).NotTo(HaveOccurred())
		res, err := status.Compute(&unstructured.Unstructured{Object: u})
		g.Expect(err).NotTo(HaveOccurred())
		return res.Status
	}
}

func clusterStates(name string) func(Gomega) map[string]netv1alpha1.ClusterNamespaceState {
	return func(g Gomega) map[string]netv1alpha1.ClusterNamespaceState {
		out := map[string]netv1alpha1.ClusterNamespaceState{}
		for _, c := range current(name)(g).Status.Clusters {
			out[c.Cluster] = c.State
		}
		return out
	}
}

// memberWorks lists the GlobalNamespace's ClusterWorks for one member on the hub.
func memberWorks(name, member string) func(Gomega) []fleetv1alpha1.ClusterWork {
	return func(g Gomega) []fleetv1alpha1.ClusterWork {
		works := &fleetv1alpha1.ClusterWorkList{}
		g.Expect(bed.Hub.Client.List(bg(), works, client.MatchingLabels{
			netv1alpha1.GlobalNamespaceLabel: name, fleetv1alpha1.MemberClusterLabel: member})).To(Succeed())
		return works.Items
	}
}

func memberNS(member, name string) func() (*corev1.Namespace, error) {
	return func() (*corev1.Namespace, error) {
		ns := &corev1.Namespace{}
		err := bed.Member(member).Client.Get(bg(), client.ObjectKey{Name: name}, ns)
		return ns, err
	}
}

// gone is true when the namespace does not exist in the member or is being deleted.
func gone(member, name string) func() bool {
	return func() bool {
		ns, err := memberNS(member, name)()
		return apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp != nil)
	}
}

func beTrueWith(reason string) OmegaMatcher {
	return And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", reason))
}

func beFalseWith(reason string) OmegaMatcher {
	return And(HaveField("Status", metav1.ConditionFalse), HaveField("Reason", reason))
}

func managedBy() OmegaMatcher {
	return HaveField("Labels", HaveKeyWithValue(fleetv1alpha1.ManagedByLabel, fleetv1alpha1.ManagedByValue))
}

// fleetSteady waits until every MemberCluster is Ready with all its nodes ready, as after a
// member restart its nodes and status take a while to settle.
func fleetSteady() {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, name := range members {
			m := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, m)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeTrue(), "%s is not Ready", name)
			g.Expect(m.Status.Nodes).NotTo(BeNil())
			g.Expect(m.Status.Nodes.Ready).To(Equal(m.Status.Nodes.Total), "%s has nodes not ready", name)
		}
	}, 2*time.Minute, poll).Should(Succeed())
}

// updateGNS changes a GlobalNamespace, reading it again when a status write got there first.
func updateGNS(name string, change func(*netv1alpha1.GlobalNamespace)) {
	GinkgoHelper()
	Eventually(func() error {
		g := getGNS(Default, name)
		change(g)
		return bed.Hub.Client.Update(bg(), g)
	}, timeout, poll).Should(Succeed())
}
