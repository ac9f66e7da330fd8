// Package v1alpha1 serves the admission webhooks of fleet.meridian.io/v1alpha1.
package v1alpha1

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-fleet-meridian-io-v1alpha1-membercluster,mutating=false,failurePolicy=fail,sideEffects=None,groups=fleet.meridian.io,resources=memberclusters,verbs=create;update,versions=v1alpha1,name=vmembercluster-v1alpha1.fleet.meridian.io,admissionReviewVersions=v1

// MemberClusterValidator rejects MemberClusters the cluster controller could not act on.
type MemberClusterValidator struct{}

var _ admission.Validator[*fleetv1alpha1.MemberCluster] = MemberClusterValidator{}

// SetupMemberClusterWebhookWithManager registers the validating webhook with the manager.
func SetupMemberClusterWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &fleetv1alpha1.MemberCluster{}).
		WithValidator(MemberClusterValidator{}).
		Complete()
}

// ValidateCreate validates a new MemberCluster.
func (MemberClusterValidator) ValidateCreate(_ context.Context, m *fleetv1alpha1.MemberCluster) (admission.Warnings, error) {
	return nil, toError(m, ValidateMemberCluster(m))
}

// ValidateUpdate validates a changed MemberCluster. The name cannot change, so only the spec is
// checked again.
func (MemberClusterValidator) ValidateUpdate(_ context.Context, _, m *fleetv1alpha1.MemberCluster) (admission.Warnings, error) {
	return nil, toError(m, validateSpec(&m.Spec, field.NewPath("spec")))
}

// ValidateDelete allows every deletion.
func (MemberClusterValidator) ValidateDelete(context.Context, *fleetv1alpha1.MemberCluster) (admission.Warnings, error) {
	return nil, nil
}

// ValidateMemberCluster returns what is wrong with a MemberCluster, each error saying what to fix.
func ValidateMemberCluster(m *fleetv1alpha1.MemberCluster) field.ErrorList {
	var errs field.ErrorList
	name := field.NewPath("metadata", "name")
	if msgs := validation.IsDNS1123Label(m.Name); len(msgs) > 0 {
		for _, msg := range msgs {
			errs = append(errs, field.Invalid(name, m.Name, fmt.Sprintf(
				"a MemberCluster name becomes part of its hub namespace %s<name>, so it must be a DNS label: %s",
				fleetv1alpha1.MemberClusterNamespacePrefix, msg)))
		}
	} else if len(m.Name) > fleetv1alpha1.MaxMemberClusterNameLength {
		errs = append(errs, field.Invalid(name, m.Name, fmt.Sprintf(
			"must be at most %d characters so that the hub namespace %s%s fits in 63; choose a shorter name",
			fleetv1alpha1.MaxMemberClusterNameLength, fleetv1alpha1.MemberClusterNamespacePrefix, m.Name)))
	}
	return append(errs, validateSpec(&m.Spec, field.NewPath("spec"))...)
}

func validateSpec(s *fleetv1alpha1.MemberClusterSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case s.KubeconfigSecretRef == nil && s.ClusterRef == nil:
		errs = append(errs, field.Required(path, "set exactly one way to reach the member: spec.kubeconfigSecretRef (a Secret holding a kubeconfig) or spec.clusterRef (a Cluster API Cluster)"))
	case s.KubeconfigSecretRef != nil && s.ClusterRef != nil:
		errs = append(errs, field.Forbidden(path.Child("clusterRef"), "set exactly one of spec.kubeconfigSecretRef and spec.clusterRef, not both"))
	}
	if r := s.KubeconfigSecretRef; r != nil {
		p := path.Child("kubeconfigSecretRef")
		errs = append(errs, dnsSubdomain(p.Child("name"), r.Name, "Secret")...)
		errs = append(errs, dnsLabel(p.Child("namespace"), r.Namespace, "namespace")...)
	}
	if r := s.ClusterRef; r != nil {
		p := path.Child("clusterRef")
		errs = append(errs, dnsLabel(p.Child("name"), r.Name, "Cluster")...)
		errs = append(errs, dnsLabel(p.Child("namespace"), r.Namespace, "namespace")...)
	}
	if p := s.Probe; p.IntervalSeconds > 0 && p.TimeoutSeconds > p.IntervalSeconds {
		errs = append(errs, field.Invalid(path.Child("probe", "timeoutSeconds"), p.TimeoutSeconds,
			fmt.Sprintf("must not exceed spec.probe.intervalSeconds (%d), or probes would overlap", p.IntervalSeconds)))
	}
	return errs
}

func dnsLabel(p *field.Path, v, what string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, fmt.Sprintf("must name a %s: %s", what, msg)))
	}
	return errs
}

func dnsSubdomain(p *field.Path, v, what string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(v) {
		errs = append(errs, field.Invalid(p, v, fmt.Sprintf("must name a %s: %s", what, msg)))
	}
	return errs
}

func toError(m *fleetv1alpha1.MemberCluster, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(fleetv1alpha1.GroupVersion.WithKind("MemberCluster").GroupKind(), m.Name, errs)
}
