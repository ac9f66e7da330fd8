package live_test

import (
	"context"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

const (
	// settle bounds how long Kubernetes' own controllers and kwok take to act on a change; they
	// take about 2 s here, the rest is slack for a loaded 2-core machine.
	settle = 30 * time.Second
	poll   = 200 * time.Millisecond
)

// ctx is the context of a spec's requests; they are bounded by Eventually timeouts.
func ctx() context.Context { return context.Background() }

// namespace creates a namespace on the member for one spec and deletes it afterwards.
func namespace(m *testbed.Cluster) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "live-"}}
	ExpectWithOffset(1, m.Client.Create(ctx(), ns)).To(Succeed())
	DeferCleanup(func() { _ = m.Client.Delete(ctx(), ns) })
	return ns.Name
}

func create(m *testbed.Cluster, obj client.Object) {
	ExpectWithOffset(1, m.Client.Create(ctx(), obj)).To(Succeed())
}

var app = map[string]string{"app": "web"}

func deployment(ns string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: app},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: app},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
}

// runningPods lists the pods of app in ns that are Running and Ready, with their IPs.
func runningPods(g Gomega, m *testbed.Cluster, ns string) []corev1.Pod {
	list := &corev1.PodList{}
	g.Expect(m.Client.List(ctx(), list, client.InNamespace(ns), client.MatchingLabels(app))).To(Succeed())
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && podReady(&p) {
			out = append(out, p)
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeSummary(name string) func(Gomega) *fleetv1alpha1.NodeSummary {
	return func(g Gomega) *fleetv1alpha1.NodeSummary {
		mc := &fleetv1alpha1.MemberCluster{}
		g.Expect(bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: name}, mc)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(mc.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeTrue(), "MemberCluster %s is not Ready", name)
		return mc.Status.Nodes
	}
}

var _ = Describe("A live member", func() {
	It("has the requested Nodes, Ready and schedulable, labelled, with pod CIDRs inside the member's", func() {
		m := bed.Member("member-2")
		nodes := &corev1.NodeList{}
		Expect(m.Client.List(ctx(), nodes)).To(Succeed())
		Expect(nodes.Items).To(HaveLen(2))
		for _, n := range nodes.Items {
			Expect(m.Live.Nodes).To(ContainElement(n.Name))
			Expect(n.Labels).To(HaveKeyWithValue("topology.kubernetes.io/zone", "zone-b"))
			Expect(n.Labels).To(HaveKeyWithValue(corev1.LabelHostname, n.Name))
			Expect(n.Spec.Taints).To(BeEmpty(), "the node-lifecycle controller removes the not-ready taint")
			Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
			podCIDR := netip.MustParsePrefix(n.Spec.PodCIDR)
			Expect(m.Live.PodCIDR.Contains(podCIDR.Addr()) && podCIDR.Bits() >= m.Live.PodCIDR.Bits()).To(BeTrue(),
				"Node %s has pod CIDR %s outside the member's %s", n.Name, podCIDR, m.Live.PodCIDR)
			Expect(n.Status.Addresses).To(ContainElement(HaveField("Type", corev1.NodeInternalIP)))
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					Expect(m.Live.NodeCIDR.Contains(netip.MustParseAddr(a.Address))).To(BeTrue())
				}
			}
		}
		Expect(m.Live.PodCIDR.Overlaps(bed.Member("member-1").Live.PodCIDR)).To(BeFalse(), "members have disjoint pod CIDRs")
	})

	It("runs a DaemonSet's pod on every Node until numberReady equals the node count", func() {
		m := bed.Member("member-1")
		ns := namespace(m)
		ds := &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "registry.k8s.io/pause:3.10"}}},
				},
			},
		}
		create(m, ds)
		Eventually(func(g Gomega) appsv1.DaemonSetStatus {
			g.Expect(m.Client.Get(ctx(), client.ObjectKeyFromObject(ds), ds)).To(Succeed())
			return ds.Status
		}, settle, poll).Should(And(
			HaveField("DesiredNumberScheduled", int32(len(m.Live.Nodes))),
			HaveField("NumberReady", int32(len(m.Live.Nodes))),
		))
		pods := &corev1.PodList{}
		Expect(m.Client.List(ctx(), pods, client.InNamespace(ns))).To(Succeed())
		var onNodes []string
		for _, p := range pods.Items {
			onNodes = append(onNodes, p.Spec.NodeName)
		}
		Expect(onNodes).To(ConsistOf(m.Live.Nodes), "one pod on each Node")
	})

	It("gives a Deployment's pods IPs from each member's own pod CIDR", func() {
		for _, m := range bed.Members {
			ns := namespace(m)
			d := deployment(ns, 4)
			create(m, d)
			Eventually(func(g Gomega) int32 {
				g.Expect(m.Client.Get(ctx(), client.ObjectKeyFromObject(d), d)).To(Succeed())
				return d.Status.AvailableReplicas
			}, settle, poll).Should(Equal(int32(4)), "Deployment on %s", m.Name)

			var pods []corev1.Pod
			Eventually(func(g Gomega) {
				pods = runningPods(g, m, ns)
				g.Expect(pods).To(HaveLen(4))
			}, settle, poll).Should(Succeed())
			ips := map[string]bool{}
			for _, p := range pods {
				ip := netip.MustParseAddr(p.Status.PodIP)
				Expect(m.Live.PodCIDR.Contains(ip)).To(BeTrue(), "pod %s on %s has IP %s outside %s", p.Name, m.Name, ip, m.Live.PodCIDR)
				node := &corev1.Node{}
				Expect(m.Client.Get(ctx(), client.ObjectKey{Name: p.Spec.NodeName}, node)).To(Succeed())
				Expect(netip.MustParsePrefix(node.Spec.PodCIDR).Contains(ip)).To(BeTrue(), "pod %s has IP %s outside its Node's pod CIDR %s", p.Name, ip, node.Spec.PodCIDR)
				Expect(ips).NotTo(HaveKey(p.Status.PodIP), "pod IPs are unique")
				ips[p.Status.PodIP] = true
			}
		}
	})

	It("lists the ready pods in a Service's EndpointSlices, and removes a deleted pod's endpoint", func() {
		m := bed.Member("member-1")
		ns := namespace(m)
		create(m, deployment(ns, 3))
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: corev1.ServiceSpec{
				Selector: app,
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		create(m, svc)
		Expect(m.Live.ServiceCIDR.Contains(netip.MustParseAddr(svc.Spec.ClusterIP))).To(BeTrue(), "cluster IP %s from the member's service CIDR", svc.Spec.ClusterIP)

		// endpoints maps the pod UID of every endpoint of the Service to its address, and says
		// whether all of them are ready.
		endpoints := func(g Gomega) map[types.UID]string {
			slices := &discoveryv1.EndpointSliceList{}
			g.Expect(m.Client.List(ctx(), slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name})).To(Succeed())
			out := map[types.UID]string{}
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					g.Expect(e.TargetRef).NotTo(BeNil())
					g.Expect(e.Conditions.Ready).To(HaveValue(BeTrue()), "endpoint of pod %s is not ready", e.TargetRef.Name)
					out[e.TargetRef.UID] = e.Addresses[0]
				}
			}
			return out
		}
		// podEndpoints is what endpoints should be: the Service's Running and Ready pods.
		podEndpoints := func(g Gomega) map[types.UID]string {
			out := map[types.UID]string{}
			for _, p := range runningPods(g, m, ns) {
				out[p.UID] = p.Status.PodIP
			}
			return out
		}
		var pods []corev1.Pod
		Eventually(func(g Gomega) {
			pods = runningPods(g, m, ns)
			g.Expect(pods).To(HaveLen(3))
			g.Expect(endpoints(g)).To(Equal(podEndpoints(g)))
		}, settle, poll).Should(Succeed())

		By("deleting a pod")
		gone := pods[0]
		Expect(m.Client.Delete(ctx(), &gone)).To(Succeed())
		Eventually(func(g Gomega) {
			eps := endpoints(g)
			g.Expect(eps).NotTo(HaveKey(gone.UID), "the deleted pod's endpoint leaves")
			g.Expect(eps).To(HaveLen(3), "the replacement pod's endpoint arrives")
			g.Expect(eps).To(Equal(podEndpoints(g)))
		}, settle, poll).Should(Succeed())
	})

	It("runs new workloads again after its apiserver is stopped and started", func() {
		m := bed.Member("member-2")
		Expect(m.StopAPIServer()).To(Succeed())
		Expect(m.StartAPIServer()).To(Succeed())
		ns := namespace(m)
		d := deployment(ns, 2)
		create(m, d)
		Eventually(func(g Gomega) int32 {
			g.Expect(m.Client.Get(ctx(), client.ObjectKeyFromObject(d), d)).To(Succeed())
			return d.Status.AvailableReplicas
		}, settle, poll).Should(Equal(int32(2)))
		nodes := &corev1.NodeList{}
		Expect(m.Client.List(ctx(), nodes)).To(Succeed())
		for _, n := range nodes.Items {
			Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))), "Node %s", n.Name)
		}
		procs, err := m.Processes()
		Expect(err).NotTo(HaveOccurred(), "every process of the member survived the outage")
		Expect(procs).To(HaveLen(5))
	})

	It("turns the MemberCluster's ready-node count down on the hub when a Node goes NotReady, and up when it returns", func() {
		m := bed.Member("member-1")
		mc := &fleetv1alpha1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: m.Name},
			Spec: fleetv1alpha1.MemberClusterSpec{
				KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: testbed.KubeconfigSecretNamespace, Name: testbed.KubeconfigSecretName(m.Name)},
				Probe:               fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1},
			},
		}
		Expect(bed.Hub.Client.Create(ctx(), mc)).To(Succeed())
		DeferCleanup(func() { _ = bed.Hub.Client.Delete(ctx(), mc) })
		Eventually(nodeSummary(m.Name), settle, poll).Should(Equal(&fleetv1alpha1.NodeSummary{Total: 3, Ready: 3, Summary: "3/3"}))

		node := m.Live.Nodes[1]
		By("making " + node + " NotReady")
		Expect(m.SetNodeReady(ctx(), node, false)).To(Succeed())
		DeferCleanup(func() { _ = m.SetNodeReady(ctx(), node, true) })
		Eventually(nodeSummary(m.Name), settle, poll).Should(Equal(&fleetv1alpha1.NodeSummary{Total: 3, Ready: 2, Summary: "2/3"}))
		Eventually(func(g Gomega) []corev1.Taint {
			n := &corev1.Node{}
			g.Expect(m.Client.Get(ctx(), client.ObjectKey{Name: node}, n)).To(Succeed())
			return n.Spec.Taints
		}, settle, poll).Should(ContainElement(HaveField("Key", corev1.TaintNodeNotReady)), "the node-lifecycle controller taints the NotReady Node")

		By("bringing " + node + " back")
		Expect(m.SetNodeReady(ctx(), node, true)).To(Succeed())
		Eventually(nodeSummary(m.Name), settle, poll).Should(Equal(&fleetv1alpha1.NodeSummary{Total: 3, Ready: 3, Summary: "3/3"}))
		Eventually(func(g Gomega) []corev1.Taint {
			n := &corev1.Node{}
			g.Expect(m.Client.Get(ctx(), client.ObjectKey{Name: node}, n)).To(Succeed())
			return n.Spec.Taints
		}, settle, poll).Should(BeEmpty(), "the node-lifecycle controller removes the taint again")
	})
})
