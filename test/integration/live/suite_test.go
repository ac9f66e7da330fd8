package live_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

var (
	bed    *testbed.Bed
	scheme *runtime.Scheme
)

func TestLive(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Live: members with controllers, a scheduler and simulated nodes")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	scheme, err = controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())

	bed, err = testbed.Start(ctx, testbed.Options{
		Members: []string{"member-1", "member-2"},
		MemberOptions: map[string]testbed.MemberOptions{
			"member-1": {Live: true, Nodes: 3},
			"member-2": {Live: true, Nodes: 2, NodeLabels: map[string]string{"topology.kubernetes.io/zone": "zone-b"}},
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
}, NodeTimeout(3*time.Minute))
