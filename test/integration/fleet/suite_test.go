package fleet_test

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
	// mgr is the manager under test; its member cache tells which connections are open.
	mgr *testbed.Manager
)

func TestFleet(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Fleet: MemberCluster over a real hub and members")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	scheme, err = controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())

	bed, err = testbed.Start(ctx, testbed.Options{
		Members:      []string{"member-1", "member-2", "member-3"},
		Scheme:       scheme,
		Webhooks:     true,
		ClusterAPI:   true,
		AuditMembers: true,
	})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())

	mgr, err = bed.StartManager(controllers.DefaultOptions())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)
}, NodeTimeout(3*time.Minute))
