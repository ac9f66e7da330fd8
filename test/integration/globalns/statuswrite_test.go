package globalns_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// refuseExportStatus makes member refuse, by a ValidatingAdmissionPolicy, every write of a
// ServiceExport's status in namespace ns, and the creation of a ServiceExport named "probe" there
// (so that the test can tell when the policy is in force). It returns the binding: deleting it
// lifts the refusal.
func refuseExportStatus(member, ns string) *admissionv1.ValidatingAdmissionPolicyBinding {
	GinkgoHelper()
	c := bed.Member(member).Client
	name := "refuse-status-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule: admissionv1.Rule{APIGroups: []string{mcsv1beta1.GroupName}, APIVersions: []string{"*"},
						Resources: []string{"serviceexports", "serviceexports/status"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: `!(has(request.subResource) && request.subResource == "status") && object.metadata.name != "probe"`,
				Message:    "this member's policy refuses ServiceExport status writes here",
			}},
		},
	}
	Expect(c.Create(bg(), policy)).To(Succeed())
	DeferCleanup(func() { _ = c.Delete(bg(), policy) })
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
		},
	}
	Expect(c.Create(bg(), binding)).To(Succeed())
	DeferCleanup(func() { _ = client.IgnoreNotFound(c.Delete(bg(), binding)) })
	Eventually(probeRefused(member, ns), settle, poll).Should(BeTrue(), "the policy never came into force in %s", member)
	return binding
}

// probeRefused tells whether the member refuses a (dry-run) ServiceExport named probe in ns.
func probeRefused(member, ns string) func(Gomega) bool {
	return func(g Gomega) bool {
		err := bed.Member(member).Client.Create(bg(), &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}}, client.DryRunAll)
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			return true
		}
		g.Expect(err).NotTo(HaveOccurred())
		return false
	}
}

// serviceCondition is the condition of a service in its GlobalNamespace's status.
func serviceCondition(gns, svc, condType string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		for _, s := range current(gns)(g).Status.Services {
			if s.Name == svc {
				return meta.FindStatusCondition(s.Conditions, condType)
			}
		}
		return nil
	}
}

var _ = Describe("MCS status a member refuses", func() {
	It("is reported on the service (StatusWritten=False, StatusWriteRefused, naming member and object) and cleared once a write is accepted", func() {
		ns := globalNamespace(netv1alpha1.ServiceDiscoveryExported, "")
		binding := refuseExportStatus("member-1", ns)
		service("member-1", ns, "web", port("http", 80))
		export("member-1", ns, "web", nil)
		Eventually(importedWithVIP("member-3", ns, "web"), settle, poll).Should(Succeed())

		Eventually(serviceCondition(ns, "web", netv1alpha1.StatusWrittenCondition), settle, poll).Should(And(
			beFalseWith(netv1alpha1.StatusWriteRefusedReason),
			HaveField("Message", ContainSubstring("Member member-1 refused the status of ServiceExport %s/web", ns)),
			HaveField("Message", ContainSubstring("refuses ServiceExport status writes here"))))
		se := &mcsv1beta1.ServiceExport{}
		Expect(bed.Member("member-1").Client.Get(bg(), client.ObjectKey{Namespace: ns, Name: "web"}, se)).To(Succeed())
		Expect(meta.FindStatusCondition(se.Status.Conditions, "Ready")).To(BeNil(), "the member held a status it should have refused")

		By("lifting the policy: the next change of the export writes its status, and the service says so")
		Expect(bed.Member("member-1").Client.Delete(bg(), binding)).To(Succeed())
		Eventually(probeRefused("member-1", ns), settle, poll).Should(BeFalse())
		touched := 0
		Eventually(func(g Gomega) *metav1.Condition {
			// A label change is a change of the export: the service is reconciled again.
			touched++
			patch := fmt.Sprintf(`{"metadata":{"labels":{"touched":"%d"}}}`, touched)
			g.Expect(bed.Member("member-1").Client.Patch(bg(), se, client.RawPatch("application/merge-patch+json", []byte(patch)))).To(Succeed())
			return serviceCondition(ns, "web", netv1alpha1.StatusWrittenCondition)(g)
		}, settle, settle/10).Should(beTrueWith(netv1alpha1.StatusWrittenReason))
		Eventually(exportCondition("member-1", ns, "web", "Ready"), settle, poll).Should(beTrueWith("Exported"))
	})
})
