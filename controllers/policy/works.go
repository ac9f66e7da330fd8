package policy

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/work"
)

// writeWork makes the hub hold desired: created when current is nil, else patched when its spec,
// labels or owners differ; otherwise no write. A Work being deleted is left alone.
// (The same rule as controllers/networking's; kept here until it has a shared home.)
func writeWork(ctx context.Context, c client.Client, desired, current *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, error) {
	if current == nil {
		if err := c.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("create ClusterWork %s/%s: %w", desired.Namespace, desired.Name, err)
		}
		return desired, nil
	}
	if !current.DeletionTimestamp.IsZero() || (work.SameSpec(current.Spec, desired.Spec) && hasLabels(current.Labels, desired.Labels) && hasOwners(current, desired)) {
		return current, nil
	}
	updated := current.DeepCopy()
	updated.Spec = desired.Spec
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	for k, v := range desired.Labels {
		updated.Labels[k] = v
	}
	if len(desired.OwnerReferences) > 0 {
		updated.OwnerReferences = desired.OwnerReferences
	}
	if err := c.Patch(ctx, updated, client.MergeFrom(current)); err != nil {
		return current, fmt.Errorf("update ClusterWork %s/%s: %w", current.Namespace, current.Name, err)
	}
	return updated, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func hasOwners(have, want *fleetv1alpha1.ClusterWork) bool {
	for _, o := range want.OwnerReferences {
		found := false
		for _, h := range have.OwnerReferences {
			if h.UID == o.UID {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
