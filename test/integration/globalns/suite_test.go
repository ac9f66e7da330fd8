package globalns_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

var (
	bed     *testbed.Bed
	members = []string{"member-1", "member-2", "member-3"}
	// memberLabels are the MemberClusters' labels at the start of every spec.
	memberLabels = map[string]map[string]string{
		"member-1": {"env": "prod", "region": "eu"},
		"member-2": {"env": "prod", "region": "us"},
		"member-3": {"env": "dev", "region": "eu"},
	}
)

func TestGlobalNamespace(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "GlobalNamespace over a hub and three live members")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	scheme, err := controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())
	Expect(mcsv1beta1.AddToScheme(scheme)).To(Succeed()) // the tests read and write MCS objects in members
	memberOpts := map[string]testbed.MemberOptions{}
	for _, m := range members {
		memberOpts[m] = testbed.MemberOptions{Live: true, Nodes: 2}
	}
	bed, err = testbed.Start(ctx, testbed.Options{Members: members, MemberOptions: memberOpts, Scheme: scheme, Webhooks: true})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())
	opts := controllers.DefaultOptions()
	// The steady-state spec counts every MemberCluster write; the periodic lastProbeTime refresh
	// (every 5 minutes by default, unit-tested in controllers/fleet) would land in its window
	// whenever the suite has run for five minutes, so it is pushed past the suite's length.
	opts.StatusRefreshInterval = time.Hour
	mgr, err := bed.StartManager(opts)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)

	Expect(bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1}, memberLabels)).To(Succeed())
}, NodeTimeout(4*time.Minute))

// Every spec starts from the MemberClusters' original labels.
var _ = BeforeEach(func() {
	for _, name := range members {
		setMemberLabels(name, memberLabels[name])
	}
})

func bg() context.Context { return context.Background() }
