package v1alpha1

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/jsonpath"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/work"
)

// +kubebuilder:webhook:path=/validate-fleet-meridian-io-v1alpha1-clusterwork,mutating=false,failurePolicy=fail,sideEffects=None,groups=fleet.meridian.io,resources=clusterworks,verbs=create;update,versions=v1alpha1,name=vclusterwork-v1alpha1.fleet.meridian.io,admissionReviewVersions=v1

// ClusterWorkValidator rejects ClusterWorks the syncer could not apply as a whole.
type ClusterWorkValidator struct{}

var _ admission.Validator[*fleetv1alpha1.ClusterWork] = ClusterWorkValidator{}

// SetupClusterWorkWebhookWithManager registers the validating webhook with the manager.
func SetupClusterWorkWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &fleetv1alpha1.ClusterWork{}).
		WithValidator(ClusterWorkValidator{}).
		Complete()
}

// ValidateCreate validates a new ClusterWork.
func (ClusterWorkValidator) ValidateCreate(_ context.Context, w *fleetv1alpha1.ClusterWork) (admission.Warnings, error) {
	errs, warnings := ValidateClusterWork(w)
	return workResult(w, errs, warnings)
}

// ValidateUpdate validates a changed ClusterWork. A Work being deleted may still change (its
// finalizer goes), whatever its spec.
func (ClusterWorkValidator) ValidateUpdate(_ context.Context, _, w *fleetv1alpha1.ClusterWork) (admission.Warnings, error) {
	if !w.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	errs, warnings := ValidateClusterWork(w)
	return workResult(w, errs, warnings)
}

// ValidateDelete allows every deletion.
func (ClusterWorkValidator) ValidateDelete(context.Context, *fleetv1alpha1.ClusterWork) (admission.Warnings, error) {
	return nil, nil
}

// ValidateClusterWork returns what is wrong with a ClusterWork, and warnings.
func ValidateClusterWork(w *fleetv1alpha1.ClusterWork) (field.ErrorList, admission.Warnings) {
	var errs field.ErrorList
	var warnings admission.Warnings
	if !strings.HasPrefix(w.Namespace, fleetv1alpha1.MemberClusterNamespacePrefix) {
		warnings = append(warnings, fmt.Sprintf("ClusterWork %s/%s is not in a member's hub namespace (%s<member>); no member will receive it",
			w.Namespace, w.Name, fleetv1alpha1.MemberClusterNamespacePrefix))
	}
	objects := field.NewPath("spec", "objects")
	size := 0
	for _, o := range w.Spec.Objects {
		size += len(o.Raw)
	}
	if size > fleetv1alpha1.MaxClusterWorkBytes {
		errs = append(errs, field.Invalid(objects, fmt.Sprintf("%d bytes", size), fmt.Sprintf(
			"the objects hold %d bytes, more than %d: split them into several ClusterWorks (<source>-0, <source>-1, ...)",
			size, fleetv1alpha1.MaxClusterWorkBytes)))
	}
	for _, m := range work.Decode(w) {
		if m.Err != nil {
			errs = append(errs, field.Invalid(objects.Index(m.Index), "", m.Err.Error()))
		}
	}
	for i, r := range w.Spec.StatusFeedback {
		for j, f := range r.Fields {
			if err := jsonpath.New(f.Name).Parse("{" + f.JSONPath + "}"); err != nil {
				errs = append(errs, field.Invalid(field.NewPath("spec", "statusFeedback").Index(i).Child("fields").Index(j).Child("jsonPath"),
					f.JSONPath, fmt.Sprintf("is not a JSONPath kubectl understands: %v", err)))
			}
		}
	}
	return errs, warnings
}

func workResult(w *fleetv1alpha1.ClusterWork, errs field.ErrorList, warnings admission.Warnings) (admission.Warnings, error) {
	if len(errs) == 0 {
		return warnings, nil
	}
	return warnings, apierrors.NewInvalid(fleetv1alpha1.GroupVersion.WithKind("ClusterWork").GroupKind(), w.Name, errs)
}
