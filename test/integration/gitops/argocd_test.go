package gitops_test

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/argocd"
	"github.com/meridian-io/meridian/test/testbed"
)

// argoNamespace is where the suite's manager keeps Argo CD cluster Secrets; argoGrace how long a
// member may stay unready before its Secret goes (--argocd-cluster-secrets-grace).
const (
	argoNamespace = "argocd"
	argoGrace     = 10 * time.Second
)

var _ = Describe("Argo CD cluster Secrets", func() {
	// joinAs registers member as a MemberCluster named name, reached with kubeconfig.
	joinAs := func(ctx context.Context, name string, kubeconfig []byte, labels map[string]string) {
		GinkgoHelper()
		create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: name + "-kubeconfig"},
			Data:       map[string][]byte{testbed.KubeconfigSecretKey: kubeconfig},
		})
		mc := memberCluster(name, name+"-kubeconfig")
		mc.Labels = labels
		create(ctx, mc)
	}
	argoSecret := func(g Gomega, member string) *corev1.Secret {
		s := &corev1.Secret{}
		g.Expect(bed.Hub.Client.Get(context.Background(), client.ObjectKey{Namespace: argoNamespace, Name: argocd.SecretName(member)}, s)).To(Succeed())
		return s
	}
	argoSecretGone := func(g Gomega, member string) {
		err := bed.Hub.Client.Get(context.Background(), client.ObjectKey{Namespace: argoNamespace, Name: argocd.SecretName(member)}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Argo CD Secret of %s still exists (%v)", member, err)
	}
	setKubeconfig := func(ctx context.Context, name string, kubeconfig []byte) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			s := &corev1.Secret{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Namespace: testbed.KubeconfigSecretNamespace, Name: name + "-kubeconfig"}, s)).To(Succeed())
			s.Data[testbed.KubeconfigSecretKey] = kubeconfig
			g.Expect(bed.Hub.Client.Update(ctx, s)).To(Succeed())
		}, timeout, poll).Should(Succeed())
	}

	It("registers a Ready member with its labels and its own identity, never another, and follows its labels", func(ctx SpecContext) {
		kubeconfig, err := bed.Member(memberName).UserKubeconfig("argocd-user")
		Expect(err).NotTo(HaveOccurred())
		joinAs(ctx, "argo-blue", kubeconfig, map[string]string{"fleet": "blue", argocd.SecretTypeLabel: "repository"})

		var s *corev1.Secret
		Eventually(func(g Gomega) {
			s = argoSecret(g, "argo-blue")
		}, timeout, poll).Should(Succeed())
		Expect(s.Labels).To(HaveKeyWithValue(argocd.SecretTypeLabel, argocd.SecretTypeCluster), "a MemberCluster label may not override the secret type")
		Expect(s.Labels).To(HaveKeyWithValue("fleet", "blue"))
		Expect(string(s.Data["name"])).To(Equal("argo-blue"))
		Expect(string(s.Data["server"])).To(Equal(memberHost()))

		By("talking to the member as Argo CD would, with the Secret's config alone")
		Expect(whoAmI(ctx, argoRESTConfig(s))).To(Equal("argocd-user"), "the Secret must carry the kubeconfig's identity, not another")

		By("following the MemberCluster's labels, which an ApplicationSet cluster generator selects on")
		Eventually(func(g Gomega) {
			mc := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "argo-blue"}, mc)).To(Succeed())
			mc.Labels = map[string]string{"fleet": "green", "region": "east"}
			g.Expect(bed.Hub.Client.Update(ctx, mc)).To(Succeed())
		}, timeout, poll).Should(Succeed())
		Eventually(func(g Gomega) {
			labels := argoSecret(g, "argo-blue").Labels
			g.Expect(labels).To(HaveKeyWithValue("fleet", "green"))
			g.Expect(labels).To(HaveKeyWithValue("region", "east"))
			g.Expect(labels).To(HaveKeyWithValue(argocd.SecretTypeLabel, argocd.SecretTypeCluster))
		}, timeout, poll).Should(Succeed())
		list := &corev1.SecretList{}
		Expect(bed.Hub.Client.List(ctx, list, client.InNamespace(argoNamespace), client.MatchingLabels{"fleet": "green", argocd.SecretTypeLabel: argocd.SecretTypeCluster})).To(Succeed())
		Expect(list.Items).To(HaveLen(1))

		By("repairing a Secret edited by hand")
		s = argoSecret(Default, "argo-blue")
		s.Data["server"] = []byte("https://example.invalid")
		Expect(bed.Hub.Client.Update(ctx, s)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(string(argoSecret(g, "argo-blue").Data["server"])).To(Equal(memberHost()))
		}, timeout, poll).Should(Succeed())

		By("removing the Secret when the MemberCluster goes")
		Expect(bed.Hub.Client.Delete(ctx, &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "argo-blue"}})).To(Succeed())
		Eventually(func(g Gomega) { argoSecretGone(g, "argo-blue") }, timeout, poll).Should(Succeed())
	}, SpecTimeout(3*time.Minute))

	It("keeps the Secret through the grace period of an outage, removes it past it, and writes it again when the member is back", func(ctx SpecContext) {
		good := bed.Member(memberName).Kubeconfig
		joinAs(ctx, "argo-flaky", good, nil)
		Eventually(func(g Gomega) { argoSecret(g, "argo-flaky") }, timeout, poll).Should(Succeed())

		By("pointing the member's kubeconfig at a closed port")
		setKubeconfig(ctx, "argo-flaky", serverLine.ReplaceAll(good, []byte("${1}https://127.0.0.1:1")))
		var unready time.Time
		Eventually(func(g Gomega) {
			mc := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Name: "argo-flaky"}, mc)).To(Succeed())
			c := meta.FindStatusCondition(mc.Status.Conditions, fleetv1alpha1.ReadyCondition)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			unready = c.LastTransitionTime.Time
		}, timeout, poll).Should(Succeed())
		// Within the grace period Argo CD keeps the cluster (and its old, working address).
		Consistently(func(g Gomega) {
			g.Expect(string(argoSecret(g, "argo-flaky").Data["server"])).To(Equal(memberHost()))
		}).WithContext(ctx).WithTimeout(time.Until(unready.Add(argoGrace / 2))).WithPolling(poll).Should(Succeed())
		Eventually(func(g Gomega) { argoSecretGone(g, "argo-flaky") }, timeout, poll).Should(Succeed())
		// lastTransitionTime has a resolution of one second.
		Expect(time.Now()).To(BeTemporally(">=", unready.Add(argoGrace-time.Second)), "removed before the grace period passed")
		// The manager records Events on its own goroutine: one may land after the Secret changed.
		Eventually(func() []string { return events(ctx, "argo-flaky") }, timeout, poll).Should(ContainElement("ArgoCDClusterRemoved"))

		By("restoring the kubeconfig")
		setKubeconfig(ctx, "argo-flaky", good)
		Eventually(func(g Gomega) { argoSecret(g, "argo-flaky") }, timeout, poll).Should(Succeed())
		// The manager records Events on its own goroutine: one may land after the Secret changed.
		Eventually(func() []string { return events(ctx, "argo-flaky") }, timeout, poll).Should(ContainElement("ArgoCDClusterRegistered"))
	}, SpecTimeout(3*time.Minute))

	It("never registers a member that was not Ready, and leaves a Secret it did not write alone", func(ctx SpecContext) {
		ensureUnreachableMember(ctx)
		foreign := create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: argoNamespace, Name: argocd.SecretName("argo-foreign"),
				Labels: map[string]string{argocd.SecretTypeLabel: argocd.SecretTypeCluster}},
			StringData: map[string]string{"name": "theirs", "server": "https://theirs.example"},
		})
		joinAs(ctx, "argo-foreign", bed.Member(memberName).Kubeconfig, map[string]string{"fleet": "blue"})
		Eventually(func(g Gomega) {
			g.Expect(events(ctx, "argo-foreign")).To(ContainElement("ArgoCDSecretNotOwned"))
		}, timeout, poll).Should(Succeed())
		s := argoSecret(Default, "argo-foreign")
		Expect(s.ResourceVersion).To(Equal(foreign.GetResourceVersion()), "Meridian changed a Secret it did not write")
		Consistently(func(g Gomega) { argoSecretGone(g, unreachableMember) }).WithContext(ctx).WithTimeout(3 * time.Second).WithPolling(poll).Should(Succeed())
	}, SpecTimeout(3*time.Minute))
})

// argoRESTConfig reads an Argo CD cluster Secret as Argo CD does: server plus the config JSON.
func argoRESTConfig(s *corev1.Secret) *rest.Config {
	GinkgoHelper()
	var c argocd.ClusterConfig
	Expect(json.Unmarshal(s.Data["config"], &c)).To(Succeed())
	return &rest.Config{
		Host:        string(s.Data["server"]),
		BearerToken: c.BearerToken,
		Username:    c.Username,
		Password:    c.Password,
		TLSClientConfig: rest.TLSClientConfig{Insecure: c.TLSClientConfig.Insecure, ServerName: c.TLSClientConfig.ServerName,
			CAData: c.TLSClientConfig.CAData, CertData: c.TLSClientConfig.CertData, KeyData: c.TLSClientConfig.KeyData},
	}
}

func whoAmI(ctx context.Context, cfg *rest.Config) string {
	GinkgoHelper()
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return r.Status.UserInfo.Username
}

// events lists the reasons of the hub's Events about a MemberCluster.
func events(ctx context.Context, member string) []string {
	GinkgoHelper()
	list := &eventsv1.EventList{}
	Expect(bed.Hub.Client.List(ctx, list)).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "MemberCluster" && e.Regarding.Name == member {
			out = append(out, e.Reason)
		}
	}
	return out
}

// memberHost is member-1's server as its kubeconfig names it.
func memberHost() string { return strings.TrimSuffix(bed.Member(memberName).Config.Host, "/") }
