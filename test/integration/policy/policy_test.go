package policy_test

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

var (
	web = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	db  = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
)

// allowFromDB lets every member's web pods take connections from the db pods of all members.
func allowFromDB(name string) *policyv1alpha1.GlobalNetworkPolicy {
	g := &policyv1alpha1.GlobalNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Tier:      policyv1alpha1.TierApplication,
			Priority:  ptr.To[int32](10),
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy": "on"}}},
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: web},
			Egress: []policyv1alpha1.Rule{{Name: "to-db", Action: policyv1alpha1.ActionAllow,
				Peers: []policyv1alpha1.Peer{{PodSelector: db, Scope: policyv1alpha1.ScopeClusterSet}}}},
		},
	}
	return g
}

func gnp(name string) func(Gomega) *policyv1alpha1.GlobalNetworkPolicy {
	return func(g Gomega) *policyv1alpha1.GlobalNetworkPolicy {
		p := &policyv1alpha1.GlobalNetworkPolicy{}
		g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: name}, p)).To(Succeed())
		return p
	}
}

func clusterStatus(name, member string) func(Gomega) policyv1alpha1.ClusterPolicyStatus {
	return func(g Gomega) policyv1alpha1.ClusterPolicyStatus {
		for _, c := range gnp(name)(g).Status.Clusters {
			if c.Cluster == member {
				return c
			}
		}
		g.Expect(member).To(BeEmpty(), "no status for the member")
		return policyv1alpha1.ClusterPolicyStatus{}
	}
}

// memberObject is the JSON of the policy's object in a member, in the member's form.
func memberObject(member, policy string) func(Gomega) string {
	return func(g Gomega) string {
		c := bed.Member(member).Client
		var o any
		switch member {
		case "member-1":
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("crd.antrea.io/v1beta1")
			u.SetKind("ClusterNetworkPolicy")
			g.Expect(c.Get(bg(), client.ObjectKey{Name: "meridian-" + policy}, u)).To(Succeed())
			o = u.Object["spec"]
		case "member-2":
			p := &npav1beta1.ClusterNetworkPolicy{}
			g.Expect(c.Get(bg(), client.ObjectKey{Name: "meridian-" + policy}, p)).To(Succeed())
			o = p.Spec
		default:
			p := &networkingv1.NetworkPolicy{}
			g.Expect(c.Get(bg(), client.ObjectKey{Namespace: "default", Name: "meridian-" + policy}, p)).To(Succeed())
			o = p.Spec
		}
		raw, err := json.Marshal(o)
		g.Expect(err).NotTo(HaveOccurred())
		return string(raw)
	}
}

func podIPs(member, ns string, sel *metav1.LabelSelector) func(Gomega) []string {
	return func(g Gomega) []string {
		list := &corev1.PodList{}
		g.Expect(bed.Member(member).Client.List(bg(), list, client.InNamespace(ns), client.MatchingLabels(sel.MatchLabels))).To(Succeed())
		var out []string
		for _, p := range list.Items {
			if p.Status.PodIP != "" && p.DeletionTimestamp.IsZero() {
				out = append(out, p.Status.PodIP)
			}
		}
		return out
	}
}

func deployment(member, ns, name string, replicas int32, labels map[string]string) {
	GinkgoHelper()
	c := bed.Member(member).Client
	err := c.Create(bg(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
	Expect(c.Create(bg(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	})).To(Succeed())
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
	}, settle, poll).Should(Succeed())
}

// hasAddresses checks that a member's object carries exactly these ClusterSet addresses among
// the candidates.
func hasAddresses(obj string, want, gone []string) bool {
	for _, ip := range want {
		if !strings.Contains(obj, `"`+ip+`/32"`) {
			return false
		}
	}
	for _, ip := range gone {
		if strings.Contains(obj, `"`+ip+`/32"`) {
			return false
		}
	}
	return true
}

// watchPhases counts, per member, the status writes in which a policy's phase there changed
// (testbed.Transitions), keyed "member=Phase".
func watchPhases(name string) *testbed.Transitions {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(bg())
	DeferCleanup(cancel)
	t, err := bed.Hub.WatchTransitions(ctx, &policyv1alpha1.GlobalNetworkPolicyList{}, name, func(o client.Object) map[string]string {
		out := map[string]string{}
		for _, c := range o.(*policyv1alpha1.GlobalNetworkPolicy).Status.Clusters {
			out[c.Cluster] = string(c.Phase)
		}
		return out
	})
	Expect(err).NotTo(HaveOccurred())
	return t
}

var _ = Describe("GlobalNetworkPolicy", func() {
	It("ensures the default tiers", func() {
		for _, t := range policyv1alpha1.DefaultTiers {
			Eventually(func(g Gomega) int32 {
				tier := &policyv1alpha1.Tier{}
				g.Expect(bed.Hub.Client.Get(bg(), client.ObjectKey{Name: t.Name}, tier)).To(Succeed())
				return tier.Spec.Priority
			}, settle, poll).Should(Equal(t.Priority), "tier %s", t.Name)
		}
	})

	It("gives each member its form and shows it on the hub", func() {
		phases := watchPhases("forms")
		Expect(bed.Hub.Client.Create(bg(), allowFromDB("forms"))).To(Succeed())
		want := map[string]policyv1alpha1.Form{
			"member-1": policyv1alpha1.FormAntrea,
			"member-2": policyv1alpha1.FormClusterNetworkPolicy,
			"member-3": policyv1alpha1.FormNetworkPolicy,
		}
		for m, form := range want {
			Eventually(clusterStatus("forms", m), settle, poll).Should(And(
				HaveField("Form", form), HaveField("Phase", policyv1alpha1.PhaseRealized)), "in %s", m)
			Eventually(memberObject(m, "forms"), settle, poll).ShouldNot(BeEmpty(), "in %s", m)
		}
		Eventually(func(g Gomega) {
			p := gnp("forms")(g)
			g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
			g.Expect(p.Status.Summary).To(Equal("3/3"))
			g.Expect(p.Status.Forms).To(Equal("member-1=Antrea,member-2=ClusterNetworkPolicy,member-3=NetworkPolicy"))
			// NetworkPolicy isolates the web pods: Restricted in member-3, Exact in Antrea.
			g.Expect(p.Status.Enforcement).To(Equal(policyv1alpha1.EnforcementRestricted))
			g.Expect(p.Status.Conditions).To(ContainElement(And(HaveField("Type", policyv1alpha1.ReadyCondition), HaveField("Status", metav1.ConditionTrue))))
			g.Expect(p.Status.Conditions).NotTo(ContainElement(HaveField("Type", policyv1alpha1.ReconcilingCondition)))
		}, settle, poll).Should(Succeed())
		Expect(clusterStatus("forms", "member-1")(Default).Enforcement).To(Equal(policyv1alpha1.EnforcementExact))
		Expect(clusterStatus("forms", "member-3")(Default).Rules).To(ContainElement(HaveField("Reason", policyv1alpha1.IsolationReason)))

		By("recording one Realized Event per member and transition (as a watch sees the status written), not one per pass")
		Eventually(func(g Gomega) {
			list := &eventsv1.EventList{}
			g.Expect(bed.Hub.Client.List(bg(), list)).To(Succeed())
			realized, inForm := map[string]int{}, map[string]bool{}
			for _, e := range list.Items {
				if e.Regarding.Kind != "GlobalNetworkPolicy" || e.Regarding.Name != "forms" || e.Reason != "Realized" {
					continue
				}
				g.Expect(e.Type).To(Equal(corev1.EventTypeNormal))
				g.Expect(e.ReportingController).To(Equal("meridian-globalnetworkpolicy"))
				// Each Event is about its cluster: the recorder folds Events of one object
				// version, reason and related object into a series, keeping the first one's
				// note, which would lose the others' clusters.
				g.Expect(e.Related).NotTo(BeNil(), e.Note)
				g.Expect(e.Related.Kind).To(Equal("MemberCluster"), e.Note)
				m := e.Related.Name
				g.Expect(e.Note).To(HavePrefix("Realized in cluster " + m + " (form "))
				inForm[m] = inForm[m] || strings.HasPrefix(e.Note, "Realized in cluster "+m+" (form "+string(want[m])+",")
				realized[m]++
				if e.Series != nil {
					realized[m] += int(e.Series.Count) - 1
				}
			}
			seen, err := phases.Counts()
			g.Expect(err).NotTo(HaveOccurred())
			for m := range want {
				g.Expect(inForm[m]).To(BeTrue(), "no Realized Event for %s in form %s", m, want[m])
				g.Expect(realized[m]).To(Equal(seen[m+"="+string(policyv1alpha1.PhaseRealized)]), "Realized Events of %s against its transitions into Realized", m)
			}
		}, settle, poll).Should(Succeed())
	})

	It("follows a ClusterSet peer's pods scaled up and down in another member", func() {
		Expect(bed.Hub.Client.Create(bg(), allowFromDB("follow"))).To(Succeed())
		deployment("member-2", "shop", "db", 1, map[string]string{"app": "db"})
		Eventually(podIPs("member-2", "shop", db), settle, poll).Should(HaveLen(1))
		first := podIPs("member-2", "shop", db)(Default)
		Eventually(func(g Gomega) bool { return hasAddresses(memberObject("member-1", "follow")(g), first, nil) }, settle, poll).Should(BeTrue())

		By("scaling db to 3 in member-2")
		scale("member-2", "shop", "db", 3)
		Eventually(podIPs("member-2", "shop", db), settle, poll).Should(HaveLen(3))
		three := podIPs("member-2", "shop", db)(Default)
		Eventually(func(g Gomega) bool { return hasAddresses(memberObject("member-1", "follow")(g), three, nil) }, settle, poll).Should(BeTrue())
		Eventually(func(g Gomega) bool { return hasAddresses(memberObject("member-3", "follow")(g), three, nil) }, settle, poll).Should(BeTrue())

		By("scaling db to 0")
		scale("member-2", "shop", "db", 0)
		Eventually(podIPs("member-2", "shop", db), settle, poll).Should(BeEmpty())
		Eventually(func(g Gomega) bool { return hasAddresses(memberObject("member-1", "follow")(g), nil, three) }, settle, poll).Should(BeTrue())
		Eventually(func(g Gomega) bool { return hasAddresses(memberObject("member-3", "follow")(g), nil, three) }, settle, poll).Should(BeTrue())
	})

	It("refuses to delete a tier in use, naming the policies", func() {
		p := allowFromDB("guard")
		p.Spec.Tier = policyv1alpha1.TierPlatform
		Expect(bed.Hub.Client.Create(bg(), p)).To(Succeed())
		tier := &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: policyv1alpha1.TierPlatform}}
		err := bed.Hub.Client.Delete(bg(), tier)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("guard"))
		Expect(bed.Hub.Client.Get(bg(), client.ObjectKeyFromObject(tier), tier)).To(Succeed())
	})

	It("waits for a member that is down and brings it up to date when it returns", func() {
		Expect(bed.Hub.Client.Create(bg(), allowFromDB("outage"))).To(Succeed())
		Eventually(clusterStatus("outage", "member-3"), settle, poll).Should(HaveField("Phase", policyv1alpha1.PhaseRealized))

		By("stopping member-3's apiserver and changing the policy")
		Expect(bed.Member("member-3").StopAPIServer()).To(Succeed())
		restarted := false
		DeferCleanup(func() {
			if !restarted {
				Expect(bed.Member("member-3").StartAPIServer()).To(Succeed())
			}
		})
		Eventually(func() error {
			p := gnp("outage")(Default)
			p.Spec.Egress = append(p.Spec.Egress, policyv1alpha1.Rule{Name: "to-dns", Action: policyv1alpha1.ActionAllow,
				Peers: []policyv1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}}}}})
			return bed.Hub.Client.Update(bg(), p)
		}, settle, poll).Should(Succeed())
		Eventually(memberObject("member-1", "outage"), settle, poll).Should(ContainSubstring("kube-system"))
		Eventually(clusterStatus("outage", "member-3"), settle, poll).ShouldNot(HaveField("Phase", policyv1alpha1.PhaseRealized))
		Eventually(func(g Gomega) metav1.ConditionStatus {
			c := gnp("outage")(g).Status.Conditions
			for _, x := range c {
				if x.Type == policyv1alpha1.ReadyCondition {
					return x.Status
				}
			}
			return ""
		}, settle, poll).Should(Equal(metav1.ConditionFalse))

		By("starting member-3 again")
		Expect(bed.Member("member-3").StartAPIServer()).To(Succeed())
		restarted = true
		Eventually(memberObject("member-3", "outage"), settle, poll).Should(ContainSubstring("kube-system"))
		Eventually(clusterStatus("outage", "member-3"), settle, poll).Should(HaveField("Phase", policyv1alpha1.PhaseRealized))
	})

	It("removes the policy from a member its placement no longer selects", func() {
		Expect(bed.Hub.Client.Create(bg(), allowFromDB("narrow"))).To(Succeed())
		Eventually(memberObject("member-2", "narrow"), settle, poll).ShouldNot(BeEmpty())
		Eventually(func() error {
			p := gnp("narrow")(Default)
			p.Spec.Placement = fleetv1alpha1.Placement{ClusterNames: []string{"member-1"}}
			return bed.Hub.Client.Update(bg(), p)
		}, settle, poll).Should(Succeed())
		Eventually(func() bool {
			err := bed.Member("member-2").Client.Get(bg(), client.ObjectKey{Name: "meridian-narrow"}, &npav1beta1.ClusterNetworkPolicy{})
			return apierrors.IsNotFound(err)
		}, settle, poll).Should(BeTrue())
		Eventually(func(g Gomega) []policyv1alpha1.ClusterPolicyStatus { return gnp("narrow")(g).Status.Clusters }, settle, poll).Should(
			ConsistOf(HaveField("Cluster", "member-1")))
	})

	It("writes nothing to the hub when a pass finds nothing changed", func() {
		Expect(bed.Hub.Client.Create(bg(), allowFromDB("quiet"))).To(Succeed())
		Eventually(func(g Gomega) string { return gnp("quiet")(g).Status.Summary }, settle, poll).Should(Equal("3/3"))
		versions := func(g Gomega) map[string]string {
			list := &fleetv1alpha1.ClusterWorkList{}
			g.Expect(bed.Hub.Client.List(bg(), list, client.MatchingLabels{policyv1alpha1.GlobalNetworkPolicyLabel: "quiet"})).To(Succeed())
			out := map[string]string{}
			for _, w := range list.Items {
				out[w.Namespace] = w.ResourceVersion
			}
			out["policy"] = gnp("quiet")(g).ResourceVersion
			return out
		}
		before := versions(Default)
		Expect(before).To(HaveLen(4))
		By("touching a tier, which re-queues every policy")
		Eventually(func() error {
			t := &policyv1alpha1.Tier{}
			if err := bed.Hub.Client.Get(bg(), client.ObjectKey{Name: policyv1alpha1.TierNetworkOps}, t); err != nil {
				return err
			}
			t.Spec.Description = "Network operations, touched by the test."
			return bed.Hub.Client.Update(bg(), t)
		}, settle, poll).Should(Succeed())
		Consistently(versions, 5*time.Second, poll).Should(Equal(before))
	})

	It("refuses a policy in a tier that does not exist, saying what to fix", func() {
		p := allowFromDB("nowhere")
		p.Spec.Tier = "no-such-tier"
		err := bed.Hub.Client.Create(bg(), p)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("no-such-tier"))
	})
})
