package fleet_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

// The member's own audit log is the judge: after the kubeconfig Secret is replaced, the member
// receives no request from the old identity; after the MemberCluster is deleted, none from the new.
var _ = Describe("MemberCluster credentials", Serial, func() {
	It("leaves no client on the old identity once its kubeconfig Secret is replaced, and none at all once it is deleted", func() {
		const name = "rotated"
		target := bed.Member("member-3")
		oldKC, err := target.UserKubeconfig("meridian-old")
		Expect(err).NotTo(HaveOccurred())
		newKC, err := target.UserKubeconfig("meridian-new")
		Expect(err).NotTo(HaveOccurred())
		// requestsFrom counts the requests the member received from user after the first since.
		requestsFrom := func(user string, since int) func() (int, error) {
			return func() (int, error) {
				events, err := target.AuditEvents()
				n := 0
				for _, e := range events[min(since, len(events)):] {
					if e.User == user {
						n++
					}
				}
				return n, err
			}
		}
		auditLength := func() int {
			events, err := target.AuditEvents()
			Expect(err).NotTo(HaveOccurred())
			return len(events)
		}

		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: name + "-kubeconfig"},
			Data:       map[string][]byte{testbed.KubeconfigSecretKey: oldKC},
		}
		create(secret)
		mc := memberFromSecret(name, secret.Name)
		create(mc)
		Eventually(condition(name, fleetv1alpha1.ReadyCondition), bound, 200*time.Millisecond).
			Should(haveStatus(metav1.ConditionTrue, fleetv1alpha1.MemberReadyReason))
		Expect(requestsFrom("meridian-old", 0)()).To(BeNumerically(">", 0))
		first := mgr.Members.Member(name)
		Expect(first).NotTo(BeNil())

		By("replacing the kubeconfig Secret with a second identity")
		secret.Data = map[string][]byte{testbed.KubeconfigSecretKey: newKC}
		Expect(bed.Hub.Client.Update(ctx(), secret)).To(Succeed())
		Eventually(func() bool { m := mgr.Members.Member(name); return m != nil && m != first }, bound, 100*time.Millisecond).Should(BeTrue())
		Eventually(requestsFrom("meridian-new", 0), bound, 200*time.Millisecond).Should(BeNumerically(">", 0))
		mark := auditLength()
		Consistently(requestsFrom("meridian-old", mark), bound, 500*time.Millisecond).Should(BeZero(),
			"the member received requests with the replaced credentials")

		By("deleting the MemberCluster")
		Expect(bed.Hub.Client.Delete(ctx(), mc)).To(Succeed())
		Eventually(func() bool { return mgr.Members.Member(name) == nil }, bound, 100*time.Millisecond).Should(BeTrue())
		Eventually(func() error {
			return bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: name}, &fleetv1alpha1.MemberCluster{})
		}, bound, 100*time.Millisecond).
			ShouldNot(Succeed())
		mark = auditLength()
		Consistently(requestsFrom("meridian-new", mark), bound, 500*time.Millisecond).Should(BeZero(),
			"the member received requests for a deleted MemberCluster")
	})
})
