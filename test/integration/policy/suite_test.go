package policy_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/test/testbed"
)

// member-1 serves Antrea's CRDs, member-2 network-policy-api v0.3.0's, member-3 neither.
var (
	bed     *testbed.Bed
	members = []string{"member-1", "member-2", "member-3"}
)

const (
	settle = 90 * time.Second
	poll   = 250 * time.Millisecond
)

func TestPolicy(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "GlobalNetworkPolicy over a hub and three live members with different policy APIs")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	scheme, err := controllers.NewScheme()
	Expect(err).NotTo(HaveOccurred())
	Expect(npav1beta1.Install(scheme)).To(Succeed())
	memberOpts := map[string]testbed.MemberOptions{}
	for _, m := range members {
		memberOpts[m] = testbed.MemberOptions{Live: true, Nodes: 1}
	}
	bed, err = testbed.Start(ctx, testbed.Options{Members: members, MemberOptions: memberOpts, Scheme: scheme, Webhooks: true})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())

	tmp := GinkgoT().TempDir()
	antreaCRDs := filepath.Join(tmp, "antrea.yaml")
	Expect(os.WriteFile(antreaCRDs, antrea.CRDs, 0o600)).To(Succeed())
	_, err = envtest.InstallCRDs(bed.Member("member-1").Config, envtest.CRDInstallOptions{Paths: []string{antreaCRDs}, ErrorIfPathMissing: true})
	Expect(err).NotTo(HaveOccurred())
	npa, err := testbed.ModuleDir("sigs.k8s.io/network-policy-api")
	Expect(err).NotTo(HaveOccurred())
	_, err = envtest.InstallCRDs(bed.Member("member-2").Config, envtest.CRDInstallOptions{ErrorIfPathMissing: true,
		Paths: []string{filepath.Join(npa, "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml")}})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := bed.StartManager(controllers.DefaultOptions())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)
	Expect(bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1}, map[string]map[string]string{
		"member-1": {"policy": "on"}, "member-2": {"policy": "on"}, "member-3": {"policy": "on"},
	})).To(Succeed())
}, NodeTimeout(5*time.Minute))

func bg() context.Context { return context.Background() }
