package networking

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/internal/mcs"
	"github.com/meridian-io/meridian/internal/work"
)

// The service-discovery reconciler's writes: import Works and the MCS kinds' status.

// exportStatus writes the ServiceExport's conditions when they differ from what it says now.
func (r *ServiceDiscoveryReconciler) exportStatus(ctx context.Context, member string, se *mcsv1beta1.ServiceExport, want []metav1.Condition) error {
	if r.Inventory.CRDs(member) == mcs.CRDsForeign {
		return nil // another MCS implementation owns the ServiceExports' status there
	}
	obj := mcs.ExportStatus(se, want)
	if obj == nil {
		return nil
	}
	if err := r.Engine.ApplyStatus(member, serviceExportGVR, obj, r.statusWritten(ctx, member, "ServiceExport", se.Namespace, se.Name)); err != nil {
		return fmt.Errorf("write the status of ServiceExport %s/%s in %s: %w", se.Namespace, se.Name, member, err)
	}
	return nil
}

// importStatus names the exporting clusters in the ServiceImport's status, once the work engine
// has created it.
func (r *ServiceDiscoveryReconciler) importStatus(ctx context.Context, member, ns, name string, sources []string) error {
	if r.Inventory.CRDs(member) == mcs.CRDsForeign {
		return nil // another MCS implementation owns the ServiceImports' status there
	}
	si, ok := r.Inventory.ImportStatus(member, ns, name)
	if !ok {
		return nil // not applied yet; its arrival queues this service again
	}
	obj := mcs.ImportStatus(si, sources)
	if obj == nil {
		return nil
	}
	if err := r.Engine.ApplyStatus(member, serviceImportGVR, obj, r.statusWritten(ctx, member, "ServiceImport", ns, name)); err != nil {
		return fmt.Errorf("write the status of ServiceImport %s/%s in %s: %w", ns, name, member, err)
	}
	return nil
}

// statusWritten receives the outcome of a status write the work engine made on the member's own
// workers (it retries by itself what the member did not answer). A refusal is logged and
// reported in the service's status (StatusWritten=False, reason StatusWriteRefused) until a later
// write of that object is accepted; the next change of the service writes again.
func (r *ServiceDiscoveryReconciler) statusWritten(ctx context.Context, member, kind, ns, name string) work.StatusDone {
	log := ctrl.LoggerFrom(ctx).WithValues("member", member, "kind", kind, "service", klog.KRef(ns, name))
	svc := mcs.ServiceKey{Namespace: ns, Name: name}
	return func(err error) {
		if errors.Is(err, work.ErrNotConnected) {
			return // the member's reconnection queues every service again
		}
		if apierrors.IsNotFound(err) {
			err = nil // the object is gone: nothing of it is refused
		}
		if err != nil {
			log.Error(err, "Member refused MCS status")
		}
		if r.refusals.Record(svc, member, kind, err) {
			r.enqueue(ns, name) // the service's status changes
		}
	}
}

// importWorks returns the service's import Works by member, and the Works of an older naming
// scheme that a current one replaced.
func (r *ServiceDiscoveryReconciler) importWorks(ctx context.Context, ns, name string) (current map[string]*fleetv1alpha1.ClusterWork, stale []*fleetv1alpha1.ClusterWork, err error) {
	list := &fleetv1alpha1.ClusterWorkList{}
	if err := r.ImportWorks.List(ctx, list, client.MatchingLabels{netv1alpha1.ServiceNamespaceLabel: ns, netv1alpha1.ServiceNameLabel: name}); err != nil {
		return nil, nil, err
	}
	current = map[string]*fleetv1alpha1.ClusterWork{}
	for i := range list.Items {
		w := &list.Items[i]
		// Of two Works for one member (an older naming scheme's and this one's), keep the
		// current one; the other is deleted once the current one is the only one left.
		if m := w.Labels[fleetv1alpha1.MemberClusterLabel]; m != "" && (current[m] == nil || w.Name == mcs.ImportWorkName(ns, name)) {
			if old := current[m]; old != nil && old.Name != w.Name {
				stale = append(stale, old)
			}
			current[m] = w
		}
	}
	return current, stale, nil
}

// ensureWork creates or updates a ClusterWork and returns it as it now is on the hub. A missing
// hub namespace is no error: the member's namespace appearing retries. A Work of that name that
// carries something else is hubwork.ErrNameTaken.
func (r *ServiceDiscoveryReconciler) ensureWork(ctx context.Context, desired, current *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, error) {
	w, err := hubwork.WriteWork(ctx, r.HubClient, desired, current)
	if err == nil && w != nil {
		r.specWrites.Store(client.ObjectKeyFromObject(w), w.Generation)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case apierrors.IsAlreadyExists(err):
		// The cache does not hold it yet (made by the pass before): no error if it is this
		// import's, ErrNameTaken if it is another's.
		_, err := hubwork.Existing(ctx, r.HubReader, desired, netv1alpha1.ServiceNamespaceLabel, netv1alpha1.ServiceNameLabel, fleetv1alpha1.MemberClusterLabel)
		return nil, client.IgnoreNotFound(err)
	}
	return w, err
}

func (r *ServiceDiscoveryReconciler) deleteWork(ctx context.Context, w *fleetv1alpha1.ClusterWork) error {
	if w == nil || !w.DeletionTimestamp.IsZero() {
		return nil
	}
	return client.IgnoreNotFound(r.HubClient.Delete(ctx, w))
}

// ensureCRDs installs the ServiceExport and ServiceImport CRDs into a member that lacks them.
func (r *ServiceDiscoveryReconciler) ensureCRDs(ctx context.Context, member string) error {
	mc := &fleetv1alpha1.MemberCluster{}
	if err := r.HubClient.Get(ctx, types.NamespacedName{Name: member}, mc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !mc.DeletionTimestamp.IsZero() || mc.Spec.ServiceDiscovery == fleetv1alpha1.ServiceDiscoveryDisabled || !mcs.NeedsCRDs(r.Inventory.CRDs(member)) {
		return nil
	}
	desired, err := mcs.CRDWork(member, mc.HubNamespace())
	if err != nil {
		return err
	}
	current := &fleetv1alpha1.ClusterWork{}
	err = r.HubReader.Get(ctx, client.ObjectKeyFromObject(desired), current)
	if apierrors.IsNotFound(err) {
		current = nil
	} else if err != nil {
		return err
	}
	_, err = r.ensureWork(ctx, desired, current)
	return err
}
