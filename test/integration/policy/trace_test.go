package policy_test

import (
	"bytes"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/trace"
	"github.com/meridian-io/meridian/test/testbed"
)

// podName is the name of the only pod with these labels in the member's namespace.
func podName(member, ns string, labels map[string]string) string {
	GinkgoHelper()
	var name string
	Eventually(func(g Gomega) {
		list := &corev1.PodList{}
		g.Expect(bed.Member(member).Client.List(bg(), list, client.InNamespace(ns), client.MatchingLabels(labels))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		g.Expect(list.Items[0].Status.PodIP).NotTo(BeEmpty())
		name = list.Items[0].Name
	}, settle, poll).Should(Succeed())
	return name
}

var _ = Describe("kubectl meridian trace", Ordered, func() {
	var from, to trace.PodName
	tweb := map[string]string{"app": "trace-web"}
	tdb := map[string]string{"app": "trace-db"}
	toDB := []policyv1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: tdb}, Scope: policyv1alpha1.ScopeClusterSet}}
	// Not member-3: its NetworkPolicy form cannot hold a Drop.
	onAll := fleetv1alpha1.Placement{ClusterNames: []string{"member-1", "member-2"}}

	BeforeAll(func() {
		deployment("member-1", "trace-web", "web", 1, tweb)
		deployment("member-2", "trace-db", "db", 1, tdb)
		from = trace.PodName{Cluster: "member-1", Namespace: "trace-web", Name: podName("member-1", "trace-web", tweb)}
		to = trace.PodName{Cluster: "member-2", Namespace: "trace-db", Name: podName("member-2", "trace-db", tdb)}

		By("a securityops Drop of 5432 to the db, and an application Allow to the db")
		Expect(bed.Hub.Client.Create(bg(), &policyv1alpha1.GlobalNetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "trace-guard"},
			Spec: policyv1alpha1.GlobalNetworkPolicySpec{
				Tier: policyv1alpha1.TierSecurityOps, Priority: ptr.To[int32](5), Placement: onAll,
				AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: tweb}},
				Egress: []policyv1alpha1.Rule{{Name: "no-postgres", Action: policyv1alpha1.ActionDrop, Peers: toDB,
					Ports: []policyv1alpha1.Port{{Port: ptr.To(intstr.FromInt32(5432))}}}},
			},
		})).To(Succeed())
		Expect(bed.Hub.Client.Create(bg(), &policyv1alpha1.GlobalNetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "trace-allow"},
			Spec: policyv1alpha1.GlobalNetworkPolicySpec{
				Tier: policyv1alpha1.TierApplication, Priority: ptr.To[int32](5), Placement: onAll,
				AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: tweb}},
				Egress:    []policyv1alpha1.Rule{{Name: "to-db", Action: policyv1alpha1.ActionAllow, Peers: toDB}},
			},
		})).To(Succeed())
		for _, name := range []string{"trace-guard", "trace-allow"} {
			Eventually(func(g Gomega) string { return gnp(name)(g).Status.Summary }, settle, poll).Should(Equal("2/2"), "policy %s", name)
		}
	})

	run := func(port int32) *trace.Result {
		GinkgoHelper()
		scheme, err := trace.NewScheme()
		Expect(err).NotTo(HaveOccurred())
		res, err := trace.Run(bg(), bed.Hub.Client, trace.SecretConnector(bed.Hub.Client, scheme),
			trace.Request{From: from, To: to, Port: trace.Port{Number: port, Protocol: policyv1alpha1.ProtocolTCP}})
		Expect(err).NotTo(HaveOccurred())
		return res
	}

	It("decides a Drop in securityops, reading the pods from the members through the hub's kubeconfig Secrets", func() {
		res := run(5432)
		Expect(res.Decision.Verdict).To(Equal(policy.Drop))
		Expect(res.Decision.Egress.Cluster).To(Equal("member-1"))
		Expect(res.Decision.Egress.Path).To(Equal([]policy.Step{{Tier: policyv1alpha1.TierSecurityOps, Policy: "trace-guard", Rule: "no-postgres", Action: policyv1alpha1.ActionDrop}}))
		Expect(res.ToIP).To(Equal(podIPs("member-2", "trace-db", &metav1.LabelSelector{MatchLabels: tdb})(Default)[0]))
	})

	It("decides an Allow in application for another port", func() {
		res := run(443)
		Expect(res.Decision.Verdict).To(Equal(policy.Allow))
		Expect(res.Decision.Egress.Path).To(Equal([]policy.Step{{Tier: policyv1alpha1.TierApplication, Policy: "trace-allow", Rule: "to-db", Action: policyv1alpha1.ActionAllow}}))
		Expect(res.Decision.Ingress).To(And(HaveField("Cluster", "member-2"), HaveField("DecidedBy", policy.ByDefault)))
	})

	It("prints the path from the plugin binary, and says clearly what is missing", func() {
		dir := GinkgoT().TempDir()
		plugin := filepath.Join(dir, "kubectl-meridian")
		build := exec.Command("go", "build", "-o", plugin, "./cmd/kubectl-meridian")
		build.Dir = testbed.RepoRoot()
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(bed.WriteKubeconfigs(dir)).To(Succeed())
		hub := filepath.Join(dir, bed.Hub.Name+".kubeconfig")

		cmd := exec.Command(plugin, "trace", "--kubeconfig", hub, "--from", from.String(), "--to", to.String(), "--port", "5432/TCP")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		Expect(cmd.Run()).To(Succeed(), stderr.String())
		GinkgoWriter.Println(stdout.String())
		Expect(stdout.String()).To(And(
			HavePrefix("Drop: "+from.String()),
			ContainSubstring("Denied on the egress side, in member-1."),
			ContainSubstring("tier securityops (priority 100) > policy trace-guard (priority 5) > egress rule no-postgres: Drop"),
			ContainSubstring("in member-1: form Antrea, Exact, Realized"),
		))

		cmd = exec.Command(plugin, "trace", "--kubeconfig", hub, "--from", from.String(), "--to", "member-2/trace-db/nope", "--port", "5432")
		stderr.Reset()
		cmd.Stderr = &stderr
		err = cmd.Run()
		Expect(err).To(HaveOccurred())
		Expect(stderr.String()).To(ContainSubstring("no pod nope in namespace trace-db of member cluster member-2"))

		cmd = exec.Command(plugin, "trace", "--kubeconfig", hub, "--from", "member-9/trace-web/x", "--to", to.String(), "--port", "5432")
		stderr.Reset()
		cmd.Stderr = &stderr
		Expect(cmd.Run()).To(HaveOccurred())
		Expect(stderr.String()).To(ContainSubstring(`no MemberCluster "member-9" on the hub`))

		cmd = exec.Command(plugin, "trace", "--kubeconfig", hub, "--from", from.String(), "--to", to.String(), "--port", "http")
		stderr.Reset()
		cmd.Stderr = &stderr
		err = cmd.Run()
		Expect(err).To(HaveOccurred())
		Expect(err.(*exec.ExitError).ExitCode()).To(Equal(2))
		Expect(stderr.String()).To(ContainSubstring("the port must be a number from 1 to 65535"))
	})
})
