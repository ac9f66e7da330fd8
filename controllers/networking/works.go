package networking

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/work"
)

// writeWork makes the hub hold desired: it creates it when current is nil, and otherwise patches
// current's spec and labels when they differ from desired. A Work being deleted is left alone (it
// is made again once it is gone). It returns the Work as it now is on the hub.
func writeWork(ctx context.Context, c client.Client, desired, current *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, error) {
	if current == nil {
		if err := c.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("create ClusterWork %s/%s: %w", desired.Namespace, desired.Name, err)
		}
		return desired, nil
	}
	if !current.DeletionTimestamp.IsZero() || (work.SameSpec(current.Spec, desired.Spec) && hasLabels(current.Labels, desired.Labels)) {
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
	// A merge patch, not an update: the work syncer writes the Work's status and finalizer
	// meanwhile, and the spec does not depend on them.
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
