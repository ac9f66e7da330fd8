// Package gitops_test checks that every Meridian kind, as the real controllers write it over a real
// hub, reads right to the tools GitOps users run: kstatus (Argo CD, Flux, kubectl apply --wait) and
// `kubectl wait --for=condition=Ready`. It also keeps the testdata under config/argocd true: the
// objects there are these objects, saved (MERIDIAN_UPDATE_TESTDATA=1) and then compared on every run.
package gitops_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/agent/agenttest/kubelet"
	"github.com/meridian-io/meridian/test/testbed"
)

var bed *testbed.Bed

func TestGitOps(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "GitOps: every kind read by kstatus and kubectl wait")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	scheme, err := controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())
	bed, err = testbed.Start(ctx, testbed.Options{
		Members:       []string{memberName, agentMember, liveMember},
		MemberOptions: map[string]testbed.MemberOptions{liveMember: {Live: true, Nodes: 1}},
		Scheme:        scheme, Webhooks: true,
	})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())
	Expect(bed.WriteKubeconfigs(bed.Dir())).To(Succeed())
	Expect(bed.Hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: argoNamespace}})).To(Succeed())
	opts := controllers.DefaultOptions()
	opts.ArgoCDClusterSecretsNamespace, opts.ArgoCDClusterSecretsGrace = argoNamespace, argoGrace
	metricsAddr = freeLoopbackAddr()
	mgr, err := bed.StartManagerServingMetrics(opts, metricsAddr)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)
	Expect(bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1},
		map[string]map[string]string{memberName: {"env": "test"}})).To(Succeed())

	// The live member's kwok node runs the agent's DaemonSet pod; this plays the rest of its
	// kubelet (token, mounted config, the agent process itself, in this process), so that the
	// agent reports ready and a rollout completes as it would on a real node.
	dir, err := os.MkdirTemp("", "meridian-gitops-agents-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	agents := &kubelet.Kubelet{Config: bed.Member(liveMember).Config, Dir: dir, HostPrefix: "127.0.40.", Log: GinkgoWriter}
	agentsCtx, stopAgents := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agents.Run(agentsCtx) }()
	DeferCleanup(func() { stopAgents(); Eventually(done).WithTimeout(time.Minute).Should(Receive(BeNil())) })
}, NodeTimeout(4*time.Minute))
