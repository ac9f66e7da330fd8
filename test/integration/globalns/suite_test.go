package globalns_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	mgr, err := bed.StartManager(controllers.DefaultOptions())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)

	for _, name := range members {
		Expect(bed.Hub.Client.Create(ctx, &fleetv1alpha1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: memberLabels[name]},
			Spec: fleetv1alpha1.MemberClusterSpec{
				KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: testbed.KubeconfigSecretNamespace, Name: testbed.KubeconfigSecretName(name)},
				Probe:               fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1},
			},
		})).To(Succeed())
	}
	for _, name := range members {
		Eventually(func(g Gomega) {
			m := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: name}, m)).To(Succeed())
			g.Expect(m.Status.Namespace).NotTo(BeEmpty())
			g.Expect(m.Status.Conditions).To(ContainElement(And(HaveField("Type", "Ready"), HaveField("Status", metav1.ConditionTrue))))
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	}
}, NodeTimeout(4*time.Minute))

// Every spec starts from the MemberClusters' original labels.
var _ = BeforeEach(func() {
	for _, name := range members {
		setMemberLabels(name, memberLabels[name])
	}
})

func bg() context.Context { return context.Background() }
