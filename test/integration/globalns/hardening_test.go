package globalns_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/mcs"
)

// service creates a Service without pods in a member.
func service(member, ns, name string, ports ...corev1.ServicePort) {
	GinkgoHelper()
	Expect(bed.Member(member).Client.Create(bg(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: ports},
	})).To(Succeed())
}

// importedWithVIP is nil once the member holds Meridian's ServiceImport of ns/name with the VIP
// of its derived Service.
func importedWithVIP(member, ns, name string) func(Gomega) {
	return func(g Gomega) {
		si, err := serviceImport(member, ns, name)()
		g.Expect(err).NotTo(HaveOccurred())
		derived := &corev1.Service{}
		g.Expect(bed.Member(member).Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: mcs.DerivedServiceName(name)}, derived)).To(Succeed())
		g.Expect(derived.Spec.ClusterIP).NotTo(BeEmpty())
		g.Expect(si.Spec.IPs).To(Equal([]string{derived.Spec.ClusterIP}))
	}
}

func plainNamespace(name string) {
	GinkgoHelper()
	for _, m := range members {
		Expect(bed.Member(m).Client.Create(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
		DeferCleanup(func() {
			_ = bed.Member(m).Client.Delete(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		})
	}
}

var _ = Describe("Service discovery, hardened", func() {
	It("imports both services of a pair whose old Work names collided (namespace a-b service c, namespace a service b-c)", func() {
		base := uniqueName("col")
		nsLong, nsShort := base+"-x", base // mcs-<base>-x-svc under the old scheme, for both
		plainNamespace(nsLong)
		plainNamespace(nsShort)
		service("member-1", nsLong, "svc", port("http", 80))
		service("member-1", nsShort, "x-svc", port("http", 80))
		export("member-1", nsLong, "svc", nil)
		export("member-1", nsShort, "x-svc", nil)
		for _, m := range members {
			Eventually(importedWithVIP(m, nsLong, "svc"), settle, poll).Should(Succeed(), "%s/svc in %s", nsLong, m)
			Eventually(importedWithVIP(m, nsShort, "x-svc"), settle, poll).Should(Succeed(), "%s/x-svc in %s", nsShort, m)
		}
		Eventually(exportCondition("member-1", nsLong, "svc", "Ready"), settle, poll).Should(And(beTrueWith("Exported"), HaveField("Message", ContainSubstring("3 clusters"))))
		Eventually(exportCondition("member-1", nsShort, "x-svc", "Ready"), settle, poll).Should(And(beTrueWith("Exported"), HaveField("Message", ContainSubstring("3 clusters"))))
	})

	It("imports a Service made like kubectl create service clusterip c --tcp=80:8080, with a VIP", func() {
		// bin/ has no kubectl: this is the Service kubectl makes (port named 80-8080, targetPort 8080).
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		Expect(bed.Member("member-1").Client.Create(bg(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c", Labels: map[string]string{"app": "c"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": "c"},
				Ports: []corev1.ServicePort{{Name: "80-8080", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})).To(Succeed())
		export("member-1", ns, "c", nil)
		for _, m := range members {
			Eventually(importedWithVIP(m, ns, "c"), settle, poll).Should(Succeed(), "in %s", m)
		}
		Eventually(exportCondition("member-1", ns, "c", "Ready"), settle, poll).Should(beTrueWith("Exported"))
		Eventually(func(g Gomega) []string {
			svcs := current(ns)(g).Status.Services
			g.Expect(svcs).To(HaveLen(1))
			return svcs[0].ImportingClusters
		}, settle, poll).Should(Equal(members))
	})

	It("imports the union of port sets that differ without clashing, with PortConflict on every export", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		pp := func(name string, n int32, proto corev1.Protocol) corev1.ServicePort {
			return corev1.ServicePort{Name: name, Port: n, Protocol: proto, TargetPort: intstr.FromInt32(n)}
		}
		service("member-1", ns, "mix", pp("tcp", 42, corev1.ProtocolTCP), pp("udp", 42, corev1.ProtocolUDP))
		export("member-1", ns, "mix", nil)
		Eventually(importedWithVIP("member-3", ns, "mix"), settle, poll).Should(Succeed())
		service("member-2", ns, "mix", pp("tcp", 42, corev1.ProtocolTCP), pp("sctp", 142, corev1.ProtocolSCTP))
		export("member-2", ns, "mix", nil)
		Eventually(func(g Gomega) {
			si, err := serviceImport("member-3", ns, "mix")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(si.Spec.Ports).To(ConsistOf(
				mcsv1beta1.ServicePort{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: 42},
				mcsv1beta1.ServicePort{Name: "udp", Protocol: corev1.ProtocolUDP, Port: 42},
				mcsv1beta1.ServicePort{Name: "sctp", Protocol: corev1.ProtocolSCTP, Port: 142}))
		}, settle, poll).Should(Succeed())
		for _, m := range []string{"member-1", "member-2"} {
			Eventually(exportCondition(m, ns, "mix", "Conflict"), settle, poll).Should(beTrueWith("PortConflict"), "in %s", m)
		}
	})

	It("removes its label from the namespaces a deleted GlobalNamespace retained", func() {
		name := uniqueName("keep")
		g := &netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: netv1alpha1.GlobalNamespaceSpec{Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
				DeletionPolicy: netv1alpha1.NamespaceRetain, Labels: map[string]string{"team": "keep"}},
		}
		createGNS(g)
		Eventually(condition(name, netv1alpha1.ReadyCondition), timeout, poll).Should(beTrueWith(netv1alpha1.AllAppliedReason))
		for _, m := range members {
			DeferCleanup(func() {
				_ = bed.Member(m).Client.Delete(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
			})
		}
		Expect(bed.Hub.Client.Delete(bg(), g)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(bed.Hub.Client.Get(bg(), client.ObjectKeyFromObject(g), &netv1alpha1.GlobalNamespace{}))
		}, timeout, poll).Should(BeTrue())
		for _, m := range members {
			ns, err := memberNS(m, name)()
			Expect(err).NotTo(HaveOccurred(), "Retain lost the namespace in %s", m)
			Expect(ns.DeletionTimestamp).To(BeNil())
			Expect(ns.Labels).NotTo(HaveKey(netv1alpha1.GlobalNamespaceLabel), "in %s", m)
			Expect(ns.Labels).NotTo(HaveKey(fleetv1alpha1.ManagedByLabel), "in %s", m)
			Expect(ns.Annotations).NotTo(HaveKey(fleetv1alpha1.WorkAnnotation), "in %s", m)
			Expect(ns.Labels).To(HaveKeyWithValue("team", "keep"), "in %s", m)
		}
	})

	It("with member-2 hung, reaches member-1 and member-3 as fast as with all healthy, reports member-2 truly, and member-2 catches up after Resume", func() {
		// bound is the same for the healthy and the hung round, and for the negative checks:
		// everything here is Meridian's own way (services without pods, namespaces, status).
		const bound = propagate
		reach := func(what string, check func(Gomega)) time.Duration {
			GinkgoHelper()
			start := time.Now()
			Eventually(check, bound, poll).Should(Succeed(), what)
			return time.Since(start)
		}
		nsIn := func(name string, labels map[string]string, ms ...string) func(Gomega) {
			return func(g Gomega) {
				for _, m := range ms {
					ns, err := memberNS(m, name)()
					g.Expect(err).NotTo(HaveOccurred(), "in %s", m)
					for k, v := range labels {
						g.Expect(ns.Labels).To(HaveKeyWithValue(k, v), "in %s", m)
					}
				}
			}
		}
		importedIn := func(ns, name string, ms ...string) func(Gomega) {
			return func(g Gomega) {
				for _, m := range ms {
					importedWithVIP(m, ns, name)(g)
				}
			}
		}
		portsIn := func(ns, name string, n int, ms ...string) func(Gomega) {
			return func(g Gomega) {
				for _, m := range ms {
					si, err := serviceImport(m, ns, name)()
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(si.Spec.Ports).To(HaveLen(n), "in %s", m)
				}
			}
		}
		newGNS := func() string {
			name := uniqueName("hang")
			createGNS(&netv1alpha1.GlobalNamespace{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: netv1alpha1.GlobalNamespaceSpec{Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
					DeletionPolicy: netv1alpha1.NamespaceDelete}})
			return name
		}
		addPort := func(ns, name string) {
			Eventually(func() error {
				svc := &corev1.Service{}
				if err := bed.Member("member-1").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
					return err
				}
				svc.Spec.Ports = append(svc.Spec.Ports, port("metrics", 9100))
				return bed.Member("member-1").Client.Update(bg(), svc)
			}, timeout, poll).Should(Succeed())
		}
		healthy1 := []string{"member-1", "member-3"}
		type round struct{ newNS, changedNS, newExport, changedExport time.Duration }
		measure := func() (round, string) {
			var r round
			ns := newGNS()
			r.newNS = reach("new GlobalNamespace", nsIn(ns, nil, healthy1...))
			updateGNS(ns, func(g *netv1alpha1.GlobalNamespace) { g.Spec.Labels = map[string]string{"changed": "yes"} })
			r.changedNS = reach("changed GlobalNamespace", nsIn(ns, map[string]string{"changed": "yes"}, healthy1...))
			service("member-1", ns, "svc", port("http", 80))
			export("member-1", ns, "svc", nil)
			r.newExport = reach("new export", importedIn(ns, "svc", healthy1...))
			addPort(ns, "svc")
			r.changedExport = reach("changed export", portsIn(ns, "svc", 2, healthy1...))
			return r, ns
		}

		By("all three healthy")
		healthy, before := measure()
		Eventually(importedIn(before, "svc", "member-2"), bound, poll).Should(Succeed())

		By("member-2 hung")
		Expect(bed.Member("member-2").Hang()).To(Succeed())
		resumed := false
		DeferCleanup(func() {
			if !resumed {
				Expect(bed.Member("member-2").Resume()).To(Succeed())
			}
		})
		Eventually(func(g Gomega) {
			m := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: "member-2"}, m)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, fleetv1alpha1.ReachableCondition)).To(BeFalse())
		}, bound, poll).Should(Succeed(), "member-2 is not reported unreachable")
		hung, ns := measure()
		// A new export into a namespace member-2 has: its import there cannot be known.
		service("member-1", before, "late", port("http", 80))
		export("member-1", before, "late", nil)
		lateExport := reach("new export into an existing namespace", importedIn(before, "late", healthy1...))

		GinkgoWriter.Printf("healthy: new GlobalNamespace %v, changed %v, new export %v, changed export %v\n", healthy.newNS, healthy.changedNS, healthy.newExport, healthy.changedExport)
		GinkgoWriter.Printf("member-2 hung: new GlobalNamespace %v, changed %v, new export %v, changed export %v; new export into an existing namespace %v\n",
			hung.newNS, hung.changedNS, hung.newExport, hung.changedExport, lateExport)
		AddReportEntry("healthy", healthy)
		AddReportEntry("member-2 hung", hung)

		By("the export's status and the GlobalNamespace do not count member-2")
		notCounted := func(g Gomega) {
			c := exportCondition("member-1", before, "late", "Ready")(g)
			g.Expect(c.Status).NotTo(Equal(metav1.ConditionTrue), "Ready says %q", c.Message)
			svcs := getGNS(g, before).Status.Services
			for _, s := range svcs {
				if s.Name == "late" {
					g.Expect(s.ImportingClusters).NotTo(ContainElement("member-2"))
				}
			}
		}
		Eventually(func(g Gomega) {
			g.Expect(exportCondition("member-1", before, "late", "Ready")(g)).To(And(beFalseWith("Pending"), HaveField("Message", ContainSubstring("member-2 (unreachable)"))))
			svcs := getGNS(g, before).Status.Services
			found := false
			for _, s := range svcs {
				if s.Name == "late" {
					found = true
					g.Expect(s.ImportingClusters).To(Equal(healthy1))
				}
			}
			g.Expect(found).To(BeTrue())
		}, bound, poll).Should(Succeed())
		Consistently(notCounted, bound, time.Second).Should(Succeed())

		By("member-2 resumed: it catches up")
		Expect(bed.Member("member-2").Resume()).To(Succeed())
		resumed = true
		Eventually(nsIn(ns, map[string]string{"changed": "yes"}, "member-2"), bound, poll).Should(Succeed())
		Eventually(portsIn(ns, "svc", 2, "member-2"), bound, poll).Should(Succeed())
		Eventually(importedIn(before, "late", "member-2"), bound, poll).Should(Succeed())
		Eventually(exportCondition("member-1", before, "late", "Ready"), bound, poll).Should(And(beTrueWith("Exported"), HaveField("Message", ContainSubstring("3 clusters"))))
		fleetSteady()
	})
})
