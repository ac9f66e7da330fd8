// Package v1alpha1 serves the admission webhooks of networking.meridian.io/v1alpha1.
package v1alpha1

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-networking-meridian-io-v1alpha1-globalnamespace,mutating=false,failurePolicy=fail,sideEffects=None,groups=networking.meridian.io,resources=globalnamespaces,verbs=create;update,versions=v1alpha1,name=vglobalnamespace-v1alpha1.networking.meridian.io,admissionReviewVersions=v1

// GlobalNamespaceValidator rejects GlobalNamespaces whose namespace a member would refuse.
type GlobalNamespaceValidator struct{}

var _ admission.Validator[*netv1alpha1.GlobalNamespace] = GlobalNamespaceValidator{}

// SetupGlobalNamespaceWebhookWithManager registers the validating webhook with the manager.
func SetupGlobalNamespaceWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &netv1alpha1.GlobalNamespace{}).
		WithValidator(GlobalNamespaceValidator{}).
		Complete()
}

// ValidateCreate validates a new GlobalNamespace.
func (GlobalNamespaceValidator) ValidateCreate(_ context.Context, g *netv1alpha1.GlobalNamespace) (admission.Warnings, error) {
	return nil, toError(g, ValidateGlobalNamespace(g))
}

// ValidateUpdate validates a changed GlobalNamespace.
func (GlobalNamespaceValidator) ValidateUpdate(_ context.Context, _, g *netv1alpha1.GlobalNamespace) (admission.Warnings, error) {
	return nil, toError(g, ValidateGlobalNamespace(g))
}

// ValidateDelete allows every deletion.
func (GlobalNamespaceValidator) ValidateDelete(context.Context, *netv1alpha1.GlobalNamespace) (admission.Warnings, error) {
	return nil, nil
}

// reservedPrefixes are label and annotation key prefixes Meridian itself sets in members.
var reservedPrefixes = []string{"fleet.meridian.io/", "networking.meridian.io/"}

// ValidateGlobalNamespace returns what is wrong with a GlobalNamespace, each error saying what to fix.
func ValidateGlobalNamespace(g *netv1alpha1.GlobalNamespace) field.ErrorList {
	var errs field.ErrorList
	if msgs := validation.IsDNS1123Label(g.Name); len(msgs) > 0 && g.Spec.NamespaceName == "" {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), g.Name,
			"is the namespace name in the members unless spec.namespaceName is set, so it must be a DNS label: "+msgs[0]))
	}
	spec := field.NewPath("spec")
	placement := spec.Child("placement")
	if s := g.Spec.Placement.ClusterSelector; s != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, placement.Child("clusterSelector"))...)
	} else if len(g.Spec.Placement.ClusterNames) == 0 {
		errs = append(errs, field.Required(placement, "set placement.clusterSelector ({} selects every cluster) or list placement.clusterNames"))
	}
	for i, n := range g.Spec.Placement.ClusterNames {
		errs = append(errs, clusterName(placement.Child("clusterNames").Index(i), n)...)
	}
	for i, o := range g.Spec.Overrides {
		p := spec.Child("overrides").Index(i)
		errs = append(errs, clusterName(p.Child("cluster"), o.Cluster)...)
		for _, msg := range validation.IsDNS1123Label(o.NamespaceName) {
			errs = append(errs, field.Invalid(p.Child("namespaceName"), o.NamespaceName, "must be a namespace name: "+msg))
		}
	}
	if n := g.Spec.NamespaceName; n != "" {
		for _, msg := range validation.IsDNS1123Label(n) {
			errs = append(errs, field.Invalid(spec.Child("namespaceName"), n, "must be a namespace name: "+msg))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(g.Spec.Labels, spec.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(g.Spec.Annotations, spec.Child("annotations"))...)
	errs = append(errs, reserved(g.Spec.Labels, spec.Child("labels"))...)
	errs = append(errs, reserved(g.Spec.Annotations, spec.Child("annotations"))...)
	return errs
}

func clusterName(p *field.Path, n string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(n) {
		errs = append(errs, field.Invalid(p, n, "must be a MemberCluster name: "+msg))
	}
	if len(n) > fleetv1alpha1.MaxMemberClusterNameLength {
		errs = append(errs, field.Invalid(p, n, fmt.Sprintf("no MemberCluster name is longer than %d characters", fleetv1alpha1.MaxMemberClusterNameLength)))
	}
	return errs
}

func reserved(kv map[string]string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for k := range kv {
		for _, prefix := range reservedPrefixes {
			if strings.HasPrefix(k, prefix) {
				errs = append(errs, field.Invalid(p.Key(k), k, fmt.Sprintf("keys under %s are set by Meridian itself; use another prefix", prefix)))
			}
		}
	}
	return errs
}

func toError(g *netv1alpha1.GlobalNamespace, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(netv1alpha1.GroupVersion.WithKind("GlobalNamespace").GroupKind(), g.Name, errs)
}
