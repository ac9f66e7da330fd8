// Package samples_test applies config/samples, as written, to a hub with Meridian's webhooks and
// manager and two live members named as the samples expect, and checks that every sample is
// accepted and becomes Ready, except the policy, which is honestly Pending in members whose agents
// run without a dataplane.
package samples_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/agent/agenttest/kubelet"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/test/testbed"
)

var bed *testbed.Bed

func TestSamples(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "config/samples applied as written")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	scheme, err := controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())
	// The samples' MemberClusters name Secrets member-1-kubeconfig and member-2-kubeconfig in
	// meridian-system, which the test bed writes for its members.
	bed, err = testbed.Start(ctx, testbed.Options{
		Members:       []string{"member-1", "member-2"},
		MemberOptions: map[string]testbed.MemberOptions{"member-1": {Live: true, Nodes: 1}, "member-2": {Live: true, Nodes: 1}},
		Scheme:        scheme, Webhooks: true,
	})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())
	Expect(bed.WriteKubeconfigs(bed.Dir())).To(Succeed())
	mgr, err := bed.StartManager(controllers.DefaultOptions())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)

	// Each member's kwok node runs the agent's DaemonSet pod; this plays the rest of its kubelet
	// (token, mounted config, the agent process itself, in this process, without a dataplane), so
	// that the AgentConfig sample's rollout completes as it would on real nodes.
	dir, err := os.MkdirTemp("", "meridian-samples-agents-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	agentsCtx, stopAgents := context.WithCancel(context.Background())
	DeferCleanup(stopAgents)
	for i, m := range []string{"member-1", "member-2"} {
		k := &kubelet.Kubelet{Config: bed.Member(m).Config, Dir: filepath.Join(dir, m), HostPrefix: fmt.Sprintf("127.0.%d.", 50+i), Log: GinkgoWriter}
		done := make(chan error, 1)
		go func() { done <- k.Run(agentsCtx) }()
		DeferCleanup(func() { stopAgents(); Eventually(done).WithTimeout(time.Minute).Should(Receive(BeNil())) })
	}
}, NodeTimeout(4*time.Minute))

var _ = It("accepts every sample and brings each to Ready, but the policy, which waits for agents with a dataplane", func(ctx SpecContext) {
	samples := filepath.Join(testbed.RepoRoot(), "config", "samples")
	out, err := kubectl(ctx, "kustomize", samples)
	Expect(err).NotTo(HaveOccurred())
	var objects []string
	for _, doc := range strings.Split(out, "\n---\n") {
		var m struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		Expect(yaml.Unmarshal([]byte(doc), &m)).To(Succeed())
		group := strings.Split(m.APIVersion, "/")[0]
		objects = append(objects, strings.ToLower(m.Kind)+"."+group+"/"+m.Metadata.Name)
	}
	Expect(objects).To(HaveLen(6), "the samples: %v", objects)

	// No wait for the default tiers, which the policy sample names: the manager is ready (the test
	// bed waited for its /readyz) only once they exist on the hub.
	By("applying them as a user would, in one go, as soon as the manager is ready")
	_, err = kubectl(ctx, "apply", "--server-side", "-k", samples)
	Expect(err).NotTo(HaveOccurred())

	// The policy goes last: until the AgentConfig has installed the agent (and Meridian's CRD) in
	// both members, they hold it as a NetworkPolicy, Ready for a moment.
	const policy = "globalnetworkpolicy.policy.meridian.io/shop-web-from-ingress"
	Expect(objects).To(ContainElement(policy))
	for _, o := range objects {
		if o == policy {
			continue
		}
		By("waiting for " + o)
		// A sample that does not become Ready fails with its conditions, which say why.
		if _, err := kubectl(ctx, "wait", "--for=condition=Ready", o, "--timeout=240s"); err != nil {
			conds, _ := kubectl(ctx, "get", o, "-o", "jsonpath={.status.conditions}")
			Fail(fmt.Sprintf("%s is not Ready: %v\nconditions: %s", o, err, conds))
		}
	}

	By("checking that the policy is held in Meridian's form and honestly Pending: the agents run without a dataplane")
	// With the agent installed, both members serve MemberNetworkPolicy and get Meridian's exact
	// form, which only the agents enforce. These agents (kubelet.Kubelet, above) have no dataplane:
	// kwok's nodes have no kernel. They report none of the policies, so the hub must not call the
	// policy realized (test/e2e/dataplane shows it Realized where agents program nftables).
	gnp := &policyv1alpha1.GlobalNetworkPolicy{}
	Eventually(func(g Gomega) {
		g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "shop-web-from-ingress"}, gnp)).To(Succeed())
		g.Expect(gnp.Status.ObservedGeneration).To(Equal(gnp.Generation))
		g.Expect(gnp.Status.Clusters).To(HaveLen(2))
		for _, c := range gnp.Status.Clusters {
			g.Expect(c).To(SatisfyAll(HaveField("Form", policyv1alpha1.FormMeridian), HaveField("Enforcement", policyv1alpha1.EnforcementExact),
				HaveField("Phase", policyv1alpha1.PhasePending), HaveField("Message", compile.NoAgentReportsMessage)), "in %s", c.Cluster)
		}
		ready := apimeta.FindStatusCondition(gnp.Status.Conditions, policyv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(policyv1alpha1.NoAgentReportsReason))
		g.Expect(apimeta.IsStatusConditionTrue(gnp.Status.Conditions, policyv1alpha1.ReconcilingCondition)).To(BeTrue(), "a wait is Reconciling (kstatus InProgress)")
	}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())

	out, err = kubectl(ctx, "get", "meridian")
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Println(out)
}, SpecTimeout(8*time.Minute))

func kubectl(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", filepath.Join(bed.Dir(), "hub.kubeconfig")}, args...)
	out, err := exec.CommandContext(ctx, filepath.Join(testbed.BinDir(), "kubectl"), args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("kubectl %s: %w: %s", strings.Join(args[2:], " "), err, stderr)
	}
	return string(out), nil
}
