// Package hubwork holds what the controllers that compile hub objects into ClusterWorks
// (GlobalNamespace, service discovery, AgentConfig, GlobalNetworkPolicy) share: writing a Work
// only when it differs, the caches of their own Works, and the request mappers of their
// watches.
package hubwork

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/work"
)

// NewWorkCache returns a cache of the hub's ClusterWorks that carry label (whatever its value),
// whole: one controller's own Works, which the manager caches by metadata only (most Works carry
// whole manifests). The caller adds it to the manager.
func NewWorkCache(mgr ctrl.Manager, label string) (cache.Cache, error) {
	has, err := labels.NewRequirement(label, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	return cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(),
		Mapper: mgr.GetRESTMapper(),
		ByObject: map[client.Object]cache.ByObject{
			&fleetv1alpha1.ClusterWork{}: {Label: labels.NewSelector().Add(*has)},
		},
	})
}

// ErrNameTaken: the ClusterWork of the name a controller needs exists and is another's.
var ErrNameTaken = errors.New("the name is taken")

// Existing reads from the hub (r, past every cache) the ClusterWork of desired's name, for a
// create that was answered AlreadyExists (the controller's cache did not hold it yet). It returns
// the hub's copy when that carries desired's value of each label in keys, and otherwise an error
// naming both, wrapping ErrNameTaken.
func Existing(ctx context.Context, r client.Reader, desired *fleetv1alpha1.ClusterWork, keys ...string) (*fleetv1alpha1.ClusterWork, error) {
	have := &fleetv1alpha1.ClusterWork{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(desired), have); err != nil {
		return nil, fmt.Errorf("read ClusterWork %s/%s: %w", desired.Namespace, desired.Name, err)
	}
	var want []string
	taken := false
	for _, k := range keys {
		want = append(want, k+"="+desired.Labels[k])
		taken = taken || have.Labels[k] != desired.Labels[k]
	}
	if taken {
		return nil, fmt.Errorf("ClusterWork %s/%s already exists and carries something else (labels %v), not %s: %w",
			have.Namespace, have.Name, have.Labels, strings.Join(want, ","), ErrNameTaken)
	}
	return have, nil
}

// WriteWork makes the hub hold desired: it creates it when current is nil, and otherwise
// patches current's spec, labels, annotations and owners when they differ from desired's
// (labels and annotations others added are kept); otherwise nothing is written. A Work being
// deleted is left alone (it is made again once it is gone). It returns the Work as it now is on
// the hub.
func WriteWork(ctx context.Context, c client.Client, desired, current *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, error) {
	if current == nil {
		if err := c.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("create ClusterWork %s/%s: %w", desired.Namespace, desired.Name, err)
		}
		return desired, nil
	}
	if !current.DeletionTimestamp.IsZero() || (work.SameSpec(current.Spec, desired.Spec) && hasAll(current.Labels, desired.Labels) &&
		hasAll(current.Annotations, desired.Annotations) && hasOwners(current, desired)) {
		return current, nil
	}
	updated := current.DeepCopy()
	updated.Spec = desired.Spec
	updated.Labels = merged(updated.Labels, desired.Labels)
	updated.Annotations = merged(updated.Annotations, desired.Annotations)
	if len(desired.OwnerReferences) > 0 {
		updated.OwnerReferences = desired.OwnerReferences
	}
	// A merge patch, not an update: the work syncer writes the Work's status and finalizer
	// meanwhile, and the spec does not depend on them.
	if err := c.Patch(ctx, updated, client.MergeFrom(current)); err != nil {
		return current, fmt.Errorf("update ClusterWork %s/%s: %w", current.Namespace, current.Name, err)
	}
	return updated, nil
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func merged(into, from map[string]string) map[string]string {
	if len(from) == 0 {
		return into
	}
	if into == nil {
		into = map[string]string{}
	}
	for k, v := range from {
		into[k] = v
	}
	return into
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

// ByLabel maps an object to the cluster-scoped object its label names (a Work to its
// GlobalNamespace, AgentConfig or GlobalNetworkPolicy).
func ByLabel(label string) handler.MapFunc {
	return func(_ context.Context, o client.Object) []reconcile.Request {
		if name := o.GetLabels()[label]; name != "" {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
		}
		return nil
	}
}

// All maps any object to every cluster-scoped object of a list (newList makes an empty one),
// read from c; what names the kind in the log when listing fails.
func All(c client.Reader, newList func() client.ObjectList, what string) handler.MapFunc {
	return func(ctx context.Context, _ client.Object) []reconcile.Request {
		list := newList()
		if err := c.List(ctx, list); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing "+what)
			return nil
		}
		out := make([]reconcile.Request, 0, meta.LenList(list))
		_ = meta.EachListItem(list, func(o runtime.Object) error {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: o.(client.Object).GetName()}})
			return nil
		})
		return out
	}
}
