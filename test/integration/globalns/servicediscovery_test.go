package globalns_test

import (
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/mcs"
	"github.com/meridian-io/meridian/test/testbed"
)

// settle bounds how long a member's own controllers and kwok take to act, plus Meridian's way
// through hub and members, on a loaded 2-core machine.
const settle = 60 * time.Second

// propagate bounds Meridian's own way from hub to members when no pod, node or kwok is involved
// (a Service or export already there, a namespace, a status): under a second on a quiet machine,
// a few seconds on a loaded one. Positive checks of that kind and the negative checks that
// mirror them use it, so a negative check lasts as long as its positive bound and no longer.
const propagate = 20 * time.Second

// globalNamespace creates a GlobalNamespace over every member and waits until it is Ready.
func globalNamespace(mode netv1alpha1.ServiceDiscoveryMode, domain string) string {
	GinkgoHelper()
	name := uniqueName("sd")
	createGNS(&netv1alpha1.GlobalNamespace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: netv1alpha1.GlobalNamespaceSpec{
			Placement:        fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			DeletionPolicy:   netv1alpha1.NamespaceDelete,
			ServiceDiscovery: netv1alpha1.ServiceDiscovery{Mode: mode, Domain: domain},
		},
	})
	Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
	return name
}

// app runs a Deployment and its Service in a member.
func app(member, ns, name string, replicas int32, ports ...corev1.ServicePort) {
	GinkgoHelper()
	labels := map[string]string{"app": name}
	c := bed.Member(member).Client
	var cports []corev1.ContainerPort
	for _, p := range ports {
		cports = append(cports, corev1.ContainerPort{Name: p.TargetPort.StrVal, ContainerPort: 8000 + p.Port%1000})
	}
	Expect(c.Create(bg(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10", Ports: cports}}},
			},
		},
	})).To(Succeed())
	Expect(c.Create(bg(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: ports},
	})).To(Succeed())
}

func port(name string, number int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: number, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString(name)}
}

// export creates a ServiceExport, once the member serves the CRD (Meridian installs it).
func export(member, ns, name string, labels map[string]string) {
	GinkgoHelper()
	Eventually(func() error {
		err := bed.Member(member).Client.Create(bg(), &mcsv1beta1.ServiceExport{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       mcsv1beta1.ServiceExportSpec{ExportedLabels: labels},
		})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}, settle, poll).Should(Succeed())
}

func serviceImport(member, ns, name string) func() (*mcsv1beta1.ServiceImport, error) {
	return func() (*mcsv1beta1.ServiceImport, error) {
		si := &mcsv1beta1.ServiceImport{}
		err := bed.Member(member).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: name}, si)
		return si, err
	}
}

func exportCondition(member, ns, name, condType string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		se := &mcsv1beta1.ServiceExport{}
		g.Expect(bed.Member(member).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: name}, se)).To(Succeed())
		c := meta.FindStatusCondition(se.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), "ServiceExport %s/%s in %s has no %s condition", ns, name, member, condType)
		return c
	}
}

// importedEndpoints returns, by source cluster, the ready addresses Meridian imported into a member.
func importedEndpoints(member, ns, name string) func(Gomega) map[string][]string {
	return func(g Gomega) map[string][]string {
		list := &discoveryv1.EndpointSliceList{}
		g.Expect(bed.Member(member).Client.List(bg(), list, client.InNamespace(ns), client.MatchingLabels{
			mcsv1beta1.LabelServiceName: name, discoveryv1.LabelManagedBy: mcs.EndpointSliceManager,
		})).To(Succeed())
		out := map[string][]string{}
		for _, s := range list.Items {
			g.Expect(s.Labels).To(HaveKeyWithValue(discoveryv1.LabelServiceName, mcs.DerivedServiceName(name)))
			src := s.Labels[mcsv1beta1.LabelSourceCluster]
			for _, e := range s.Endpoints {
				out[src] = append(out[src], e.Addresses...)
			}
		}
		for k := range out {
			sort.Strings(out[k])
		}
		return out
	}
}

// readyPodIPs are the IPs of the member's ready pods of app name, from the member's own
// EndpointSlices (made by its EndpointSlice controller).
func readyPodIPs(member, ns, name string) func(Gomega) []string {
	return func(g Gomega) []string {
		list := &discoveryv1.EndpointSliceList{}
		g.Expect(bed.Member(member).Client.List(bg(), list, client.InNamespace(ns), client.MatchingLabels{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io",
		})).To(Succeed())
		var out []string
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					out = append(out, e.Addresses...)
				}
			}
		}
		sort.Strings(out)
		return out
	}
}

func scale(member, ns, name string, replicas int32) {
	GinkgoHelper()
	Eventually(func() error {
		d := &appsv1.Deployment{}
		if err := bed.Member(member).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		d.Spec.Replicas = ptr.To(replicas)
		return bed.Member(member).Client.Update(bg(), d)
	}, timeout, poll).Should(Succeed())
}

func notFound(f func() (*mcsv1beta1.ServiceImport, error)) func() bool {
	return func() bool { _, err := f(); return apierrors.IsNotFound(err) }
}

var _ = Describe("Service discovery", func() {
	It("imports an exported service into every member, VIP from the derived Service, endpoints following the source", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "shop.global")
		app("member-1", ns, "web", 2, port("http", 80))
		export("member-1", ns, "web", map[string]string{"tier": "front"})
		Eventually(readyPodIPs("member-1", ns, "web"), settle, poll).Should(HaveLen(2))
		ips := readyPodIPs("member-1", ns, "web")(Default)

		for _, m := range members {
			Eventually(importedEndpoints(m, ns, "web"), settle, poll).Should(Equal(map[string][]string{"member-1": ips}), "in %s", m)
			Eventually(func(g Gomega) {
				si, err := serviceImport(m, ns, "web")()
				g.Expect(err).NotTo(HaveOccurred())
				derived := &corev1.Service{}
				g.Expect(bed.Member(m).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: mcs.DerivedServiceName("web")}, derived)).To(Succeed())
				g.Expect(derived.Spec.Selector).To(BeEmpty())
				g.Expect(derived.Spec.ClusterIP).NotTo(BeEmpty())
				g.Expect(si.Spec.Type).To(Equal(mcsv1beta1.ClusterSetIP))
				g.Expect(si.Spec.IPs).To(Equal([]string{derived.Spec.ClusterIP}), "the VIP is the derived Service's ClusterIP")
				g.Expect(si.Spec.Ports).To(Equal([]mcsv1beta1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}))
				g.Expect(si.Labels).To(HaveKeyWithValue("tier", "front"))
				g.Expect(si.Status.Clusters).To(Equal([]mcsv1beta1.ClusterStatus{{Cluster: "member-1"}}))
			}, settle, poll).Should(Succeed(), "in %s", m)
		}
		Eventually(exportCondition("member-1", ns, "web", "Valid"), timeout, poll).Should(beTrueWith("Valid"))
		Eventually(exportCondition("member-1", ns, "web", "Ready"), timeout, poll).Should(beTrueWith("Exported"))
		Eventually(exportCondition("member-1", ns, "web", "Conflict"), timeout, poll).Should(beFalseWith("NoConflicts"))
		Eventually(func(g Gomega) {
			svcs := current(ns)(g).Status.Services
			g.Expect(svcs).To(HaveLen(1))
			g.Expect(svcs[0]).To(And(HaveField("Name", "web"), HaveField("Type", "ClusterSetIP"), HaveField("ReadyEndpoints", int32(2)),
				HaveField("SourceClusters", []string{"member-1"}), HaveField("ImportingClusters", members),
				HaveField("DNSNames", []string{"web." + ns + ".svc.clusterset.local", "web.shop.global"})))
		}, timeout, poll).Should(Succeed())

		By("scaling the source Deployment to 3: the imported endpoints follow")
		scale("member-1", ns, "web", 3)
		Eventually(readyPodIPs("member-1", ns, "web"), settle, poll).Should(HaveLen(3))
		ips = readyPodIPs("member-1", ns, "web")(Default)
		for _, m := range members {
			Eventually(importedEndpoints(m, ns, "web"), settle, poll).Should(Equal(map[string][]string{"member-1": ips}), "in %s", m)
		}
		Eventually(func(g Gomega) []netv1alpha1.GlobalServiceStatus { return current(ns)(g).Status.Services }, timeout, poll).Should(ConsistOf(HaveField("ReadyEndpoints", int32(3))))

		By("unexporting: the import disappears everywhere")
		Expect(bed.Member("member-1").Client.Delete(bg(), &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}})).To(Succeed())
		for _, m := range members {
			Eventually(notFound(serviceImport(m, ns, "web")), settle, poll).Should(BeTrue(), "in %s", m)
			Eventually(importedEndpoints(m, ns, "web"), settle, poll).Should(BeEmpty(), "in %s", m)
			Eventually(func() bool {
				return apierrors.IsNotFound(bed.Member(m).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: mcs.DerivedServiceName("web")}, &corev1.Service{}))
			}, settle, poll).Should(BeTrue(), "derived Service in %s", m)
		}
		Eventually(func(g Gomega) []netv1alpha1.GlobalServiceStatus { return current(ns)(g).Status.Services }, timeout, poll).Should(BeEmpty())
	})

	It("merges the same service exported from two members, and reports a conflict on both exports (oldest wins)", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		app("member-1", ns, "cart", 1, port("http", 80))
		export("member-1", ns, "cart", map[string]string{"team": "cart"})
		Eventually(serviceImport("member-3", ns, "cart"), settle, poll).Should(HaveField("Status.Clusters", HaveLen(1)))
		app("member-2", ns, "cart", 1, port("http", 80), port("metrics", 9100))
		export("member-2", ns, "cart", map[string]string{"team": "cart"})
		Eventually(func(g Gomega) {
			si, err := serviceImport("member-3", ns, "cart")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(si.Spec.Ports).To(ConsistOf(
				mcsv1beta1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
				mcsv1beta1.ServicePort{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9100}))
			g.Expect(si.Status.Clusters).To(Equal([]mcsv1beta1.ClusterStatus{{Cluster: "member-1"}, {Cluster: "member-2"}}), "oldest export first")
		}, settle, poll).Should(Succeed())
		Eventually(importedEndpoints("member-3", ns, "cart"), settle, poll).Should(And(HaveKeyWithValue("member-1", HaveLen(1)), HaveKeyWithValue("member-2", HaveLen(1))))
		// The port sets differ (metrics only in member-2): the union is imported, and the
		// Multi-Cluster Services API calls that a PortConflict.
		for _, m := range []string{"member-1", "member-2"} {
			Eventually(exportCondition(m, ns, "cart", "Conflict"), timeout, poll).Should(And(beTrueWith("PortConflict"), HaveField("Message", ContainSubstring("metrics 9100/TCP"))))
		}

		By("member-2 moving port http to 8080: PortConflict on both exports; member-1's older definition stays")
		Eventually(func() error {
			svc := &corev1.Service{}
			if err := bed.Member("member-2").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "cart"}, svc); err != nil {
				return err
			}
			svc.Spec.Ports[0].Port = 8080
			return bed.Member("member-2").Client.Update(bg(), svc)
		}, timeout, poll).Should(Succeed())
		for _, m := range []string{"member-1", "member-2"} {
			Eventually(exportCondition(m, ns, "cart", "Conflict"), settle, poll).Should(And(beTrueWith("PortConflict"), HaveField("Message", ContainSubstring("member-1"))))
		}
		Expect(serviceImport("member-3", ns, "cart")()).To(HaveField("Spec.Ports", ContainElement(mcsv1beta1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80})))
		Eventually(func(g Gomega) []netv1alpha1.GlobalServiceStatus { return current(ns)(g).Status.Services }, timeout, poll).Should(ConsistOf(HaveField("Conflict", ContainSubstring("port \"http\""))))

		By("member-2 exporting other labels: LabelsConflict once the ports agree again")
		Eventually(func() error {
			svc := &corev1.Service{}
			if err := bed.Member("member-2").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "cart"}, svc); err != nil {
				return err
			}
			svc.Spec.Ports = []corev1.ServicePort{port("http", 80)}
			return bed.Member("member-2").Client.Update(bg(), svc)
		}, timeout, poll).Should(Succeed())
		Eventually(func() error {
			se := &mcsv1beta1.ServiceExport{}
			if err := bed.Member("member-2").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "cart"}, se); err != nil {
				return err
			}
			se.Spec.ExportedLabels = map[string]string{"team": "checkout"}
			return bed.Member("member-2").Client.Update(bg(), se)
		}, timeout, poll).Should(Succeed())
		for _, m := range []string{"member-1", "member-2"} {
			Eventually(exportCondition(m, ns, "cart", "Conflict"), settle, poll).Should(beTrueWith("LabelsConflict"))
		}
		Expect(serviceImport("member-3", ns, "cart")()).To(HaveField("Labels", HaveKeyWithValue("team", "cart")))
	})

	It("imports a headless service as Headless, without a VIP", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		app("member-3", ns, "db", 2, port("sql", 5432))
		Eventually(func() error {
			svc := &corev1.Service{}
			if err := bed.Member("member-3").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "db"}, svc); err != nil {
				return err
			}
			return nil
		}, timeout, poll).Should(Succeed())
		// A Service's clusterIP cannot change: make the headless one under another name.
		Expect(bed.Member("member-3").Client.Create(bg(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-headless"},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{port("sql", 5432)}},
		})).To(Succeed())
		export("member-3", ns, "db-headless", nil)
		Eventually(func(g Gomega) {
			si, err := serviceImport("member-1", ns, "db-headless")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(si.Spec.Type).To(Equal(mcsv1beta1.Headless))
			g.Expect(si.Spec.IPs).To(BeEmpty())
			derived := &corev1.Service{}
			g.Expect(bed.Member("member-1").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: mcs.DerivedServiceName("db-headless")}, derived)).To(Succeed())
			g.Expect(derived.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		}, settle, poll).Should(Succeed())
		Eventually(importedEndpoints("member-1", ns, "db-headless"), settle, poll).Should(HaveKeyWithValue("member-3", HaveLen(2)))
	})

	It("leaves out a member that opts out of service discovery, and takes it back in", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		app("member-1", ns, "orders", 1, port("http", 80))
		export("member-1", ns, "orders", nil)
		app("member-3", ns, "stock", 1, port("http", 80))
		export("member-3", ns, "stock", nil)
		for _, m := range members {
			Eventually(importedEndpoints(m, ns, "orders"), settle, poll).Should(HaveKeyWithValue("member-1", HaveLen(1)), "in %s", m)
			Eventually(importedEndpoints(m, ns, "stock"), settle, poll).Should(HaveKeyWithValue("member-3", HaveLen(1)), "in %s", m)
		}
		setDiscovery := func(name string, p fleetv1alpha1.ServiceDiscoveryParticipation) {
			Eventually(func() error {
				mc := &fleetv1alpha1.MemberCluster{}
				if err := bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, mc); err != nil {
					return err
				}
				mc.Spec.ServiceDiscovery = p
				return bed.Hub.Client.Update(bg(), mc)
			}, timeout, poll).Should(Succeed())
		}
		By("member-3 opting out: it imports nothing, and its export is no longer imported elsewhere")
		setDiscovery("member-3", fleetv1alpha1.ServiceDiscoveryDisabled)
		DeferCleanup(setDiscovery, "member-3", fleetv1alpha1.ServiceDiscoveryEnabled)
		Eventually(notFound(serviceImport("member-3", ns, "orders")), settle, poll).Should(BeTrue())
		for _, m := range []string{"member-1", "member-2"} {
			Eventually(notFound(serviceImport(m, ns, "stock")), settle, poll).Should(BeTrue(), "in %s", m)
			Expect(importedEndpoints(m, ns, "orders")(Default)).To(HaveKeyWithValue("member-1", HaveLen(1)), "in %s", m)
		}

		By("member-3 opting in again")
		setDiscovery("member-3", fleetv1alpha1.ServiceDiscoveryEnabled)
		for _, m := range members {
			Eventually(importedEndpoints(m, ns, "stock"), settle, poll).Should(HaveKeyWithValue("member-3", HaveLen(1)), "in %s", m)
		}
		Eventually(importedEndpoints("member-3", ns, "orders"), settle, poll).Should(HaveKeyWithValue("member-1", HaveLen(1)))
	})

	It("keeps imports while a member is down and brings it up to date when it returns", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		app("member-1", ns, "pay", 1, port("http", 80))
		export("member-1", ns, "pay", nil)
		for _, m := range members {
			Eventually(importedEndpoints(m, ns, "pay"), settle, poll).Should(HaveKeyWithValue("member-1", HaveLen(1)), "in %s", m)
		}

		By("stopping member-2's apiserver and scaling the source to 2")
		Expect(bed.Member("member-2").StopAPIServer()).To(Succeed())
		restarted := false
		DeferCleanup(func() {
			if !restarted {
				Expect(bed.Member("member-2").StartAPIServer()).To(Succeed())
			}
		})
		scale("member-1", ns, "pay", 2)
		Eventually(readyPodIPs("member-1", ns, "pay"), settle, poll).Should(HaveLen(2))
		Eventually(importedEndpoints("member-3", ns, "pay"), settle, poll).Should(HaveKeyWithValue("member-1", HaveLen(2)))

		By("starting member-2 again: its import catches up")
		Expect(bed.Member("member-2").StartAPIServer()).To(Succeed())
		restarted = true
		Eventually(importedEndpoints("member-2", ns, "pay"), settle, poll).Should(HaveKeyWithValue("member-1", HaveLen(2)))
		fleetSteady() // leave the fleet as the next spec expects it
	})

	// Besides its own services, the steady state holds three cases whose negative half (something
	// Meridian must never do) is checked over the steady-state window, beside the silence, instead
	// of in three windows of their own one after the other: the cases are independent (namespaces of
	// their own) and the window (settle) lasts longer than their positive bound (propagate).
	It("is silent in steady state: no writes to hub or members while nothing changes; meanwhile an uncovered export makes no namespace, and an invalid export or one where discovery is off is not imported", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "quiet.global")
		app("member-1", ns, "a", 2, port("http", 80))
		export("member-1", ns, "a", nil)
		app("member-2", ns, "a", 1, port("http", 80))
		export("member-2", ns, "a", nil)
		for _, m := range members {
			Eventually(importedEndpoints(m, ns, "a"), settle, poll).Should(And(HaveKeyWithValue("member-1", HaveLen(2)), HaveKeyWithValue("member-2", HaveLen(1))), "in %s", m)
			Eventually(serviceImport(m, ns, "a"), settle, poll).Should(And(HaveField("Spec.IPs", HaveLen(1)), HaveField("Status.Clusters", HaveLen(2))))
		}
		Eventually(func(g Gomega) int32 {
			svcs := current(ns)(g).Status.Services
			g.Expect(svcs).To(HaveLen(1))
			return svcs[0].ReadyEndpoints
		}, timeout, poll).Should(Equal(int32(3)))
		fleetSteady()
		// Set up last, so that the window below follows closely on their positive checks.
		never := []func(Gomega){uncoveredExport(), invalidExports(), discoveryModes()}
		// Earlier specs' namespaces are deleted by each member's namespace controller, which
		// writes to every resource in them; wait until that is over.
		Eventually(func(g Gomega) {
			for _, m := range members {
				list := &corev1.NamespaceList{}
				g.Expect(bed.Member(m).Client.List(bg(), list)).To(Succeed())
				for _, n := range list.Items {
					g.Expect(n.DeletionTimestamp).To(BeNil(), "namespace %s in %s is being deleted", n.Name, m)
				}
			}
		}, settle, poll).Should(Succeed())
		// What Meridian writes: on the hub its own kinds, in members namespaces, services,
		// endpoint slices and the MCS kinds. Kubernetes' own components keep writing leases,
		// node status and events in a live member; those are not counted.
		meridian := []string{"/namespaces", "/services", "discovery.k8s.io/endpointslices",
			"multicluster.x-k8s.io/serviceimports", "multicluster.x-k8s.io/serviceexports",
			"fleet.meridian.io/clusterworks", "fleet.meridian.io/memberclusters", "networking.meridian.io/globalnamespaces"}
		clusters := append([]*testbed.Cluster{bed.Hub}, bed.Member("member-1"), bed.Member("member-2"), bed.Member("member-3"))
		writes := func(g Gomega) []map[string]float64 {
			out := make([]map[string]float64, len(clusters))
			for i, c := range clusters {
				w, err := c.WriteRequests(bg())
				g.Expect(err).NotTo(HaveOccurred())
				out[i] = w
			}
			return out
		}
		// silentSince fails when Meridian wrote to some cluster since before.
		silentSince := func(before []map[string]float64, window string) func(Gomega) {
			return func(g Gomega) {
				for i, after := range writes(g) {
					diff := testbed.DiffWrites(before[i], after)
					var n float64
					for _, r := range meridian {
						n += diff[r]
					}
					g.Expect(n).To(BeZero(), "writes to %s %s: %v", clusters[i].Name, window, diff)
				}
			}
		}
		// The last status writes land: wait for a 3-second poll interval without any.
		last := writes(Default)
		Eventually(func(g Gomega) {
			before := last
			last = writes(g)
			silentSince(before, "in the last poll interval")(g)
		}, settle, 3*time.Second).Should(Succeed())

		// The negative checks every poll, the writes (four metrics scrapes) every 2 s, and once more
		// at the end of the window.
		before := writes(Default)
		counted := time.Now()
		Consistently(func(g Gomega) {
			for _, check := range never {
				check(g)
			}
			if time.Since(counted) >= 2*time.Second {
				counted = time.Now()
				silentSince(before, "in steady state")(g)
			}
		}, settle, poll).Should(Succeed())
		silentSince(before, "in steady state")(Default)
		for i, after := range writes(Default) {
			GinkgoWriter.Printf("%s writes in %s of steady state: %v\n", clusters[i].Name, settle, testbed.DiffWrites(before[i], after))
		}
	})
})

// uncoveredExport exports a service from a namespace no GlobalNamespace covers, which exists in
// member-2 and member-3 only: it is imported there. It returns the negative half: Meridian never
// creates the namespace in member-1.
func uncoveredExport() func(Gomega) {
	GinkgoHelper()
	By("an export from a namespace no GlobalNamespace covers: imported only where that namespace exists")
	ns := uniqueName("plain")
	for _, m := range []string{"member-2", "member-3"} {
		Expect(bed.Member(m).Client.Create(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	app("member-2", ns, "api", 1, port("grpc", 9090))
	export("member-2", ns, "api", nil)
	for _, m := range []string{"member-2", "member-3"} {
		Eventually(importedEndpoints(m, ns, "api"), settle, poll).Should(HaveKeyWithValue("member-2", HaveLen(1)), "in %s", m)
	}
	return func(g Gomega) {
		err := bed.Member("member-1").Client.Get(bg(), client.ObjectKey{Name: ns}, &corev1.Namespace{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Meridian created the namespace %s in member-1 (%v)", ns, err)
	}
}

// invalidExports exports an ExternalName Service and a missing one: both Valid=False with a
// reason. It returns the negative half: neither is imported.
func invalidExports() func(Gomega) {
	GinkgoHelper()
	By("exporting an ExternalName Service and a missing one: refused (Valid=False)")
	ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
	Expect(bed.Member("member-1").Client.Create(bg(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
	})).To(Succeed())
	export("member-1", ns, "ext", nil)
	export("member-1", ns, "ghost", nil)
	Eventually(exportCondition("member-1", ns, "ext", "Valid"), propagate, poll).Should(beFalseWith("InvalidServiceType"))
	Eventually(exportCondition("member-1", ns, "ghost", "Valid"), propagate, poll).Should(beFalseWith("NoService"))
	Expect(exportCondition("member-1", ns, "ext", "Ready")(Default)).To(HaveField("Status", metav1.ConditionFalse))
	return func(g Gomega) {
		for _, name := range []string{"ext", "ghost"} {
			g.Expect(notFound(serviceImport("member-2", ns, name))()).To(BeTrue(), "the invalid export %s/%s was imported", ns, name)
		}
	}
}

// discoveryModes honours the GlobalNamespace's mode: None turns discovery off (the export says
// so), All exports every Service. It returns the negative half: the export under None is not
// imported.
func discoveryModes() func(Gomega) {
	GinkgoHelper()
	By("a GlobalNamespace with discovery None, and one with All")
	off := globalNamespace(netv1alpha1.ServiceDiscoveryNone, "")
	app("member-1", off, "quiet", 1, port("http", 80))
	export("member-1", off, "quiet", nil)
	Eventually(exportCondition("member-1", off, "quiet", "Valid"), propagate, poll).Should(beFalseWith("ServiceDiscoveryDisabled"))

	all := globalNamespace(netv1alpha1.ServiceDiscoveryAll, "")
	app("member-2", all, "loud", 1, port("http", 80))
	Eventually(importedEndpoints("member-1", all, "loud"), settle, poll).Should(HaveKeyWithValue("member-2", HaveLen(1)))
	return func(g Gomega) {
		g.Expect(notFound(serviceImport("member-2", off, "quiet"))()).To(BeTrue(), "%s/quiet was imported with discovery None", off)
	}
}
