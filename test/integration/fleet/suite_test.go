package fleet_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

var (
	bed    *testbed.Bed
	scheme *runtime.Scheme
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
		Members:    []string{"member-1", "member-2", "member-3"},
		Scheme:     scheme,
		Webhooks:   true,
		ClusterAPI: true,
	})
	if bed != nil {
		DeferCleanup(bed.Stop)
	}
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(bed.Hub.Config, ctrl.Options{
		Scheme:  scheme,
		Cache:   controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: bed.Hub.Webhook.Host, Port: bed.Hub.Webhook.Port, CertDir: bed.Hub.Webhook.CertDir,
		}),
	})
	Expect(err).NotTo(HaveOccurred())
	opts := controllers.DefaultOptions()
	mgrCtx, cancel := context.WithCancel(context.Background())
	_, err = controllers.Setup(mgrCtx, mgr, opts)
	Expect(err).NotTo(HaveOccurred())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(mgrCtx)).To(Succeed())
	}()
	DeferCleanup(func() {
		cancel()
		Eventually(done, 30*time.Second).Should(BeClosed())
	})
	// The webhook server must answer before specs create MemberClusters.
	Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }, 30*time.Second, 100*time.Millisecond).Should(Succeed())
}, NodeTimeout(3*time.Minute))
