package agent_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

var (
	bed    *testbed.Bed
	scheme *runtime.Scheme
)

func TestAgent(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Agent: the node agent's install and the agents themselves over a live member")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	scheme, err = controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())
	Expect(memberv1alpha1.AddToScheme(scheme)).To(Succeed())

	bed, err = testbed.Start(ctx, testbed.Options{
		Members: []string{"member-1", "member-2", "member-3"},
		MemberOptions: map[string]testbed.MemberOptions{
			"member-1": {Live: true, Nodes: 3}, // the agents' own specs apply to it directly
			"member-2": {Live: true, Nodes: 2}, // the rollout's, through the manager
			"member-3": {Live: true, Nodes: 2},
		},
		Scheme: scheme,
	})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())
	mgr, err := bed.StartManager(controllers.DefaultOptions())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)
	Expect(bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{}, map[string]map[string]string{
		"member-1": {"agent-test": "direct"},
		"member-2": {"rollout": "yes"},
		"member-3": {"rollout": "yes"},
	})).To(Succeed())
}, NodeTimeout(5*time.Minute))
