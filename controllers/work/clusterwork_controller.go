// Package work holds the ClusterWork reconciler: it hands each Work to its member's queue in the
// work engine and writes back what the syncer did.
package work

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
	"github.com/meridian-io/meridian/internal/work"
)

// ClusterWorkReconciler dispatches ClusterWorks to the work engine and records the results.
//
// Reconcile runs on the controller's shared workers and never talks to a member: it only puts the
// Work on its member's queue. Process runs on that member's own workers and does the syncing.
//
// A Work carries its manifests whole (tens of KiB). The manager watches Works by metadata only,
// which is all the dispatcher needs, and a pass reads its Work from the hub once; the syncer's own
// writes (finalizer, status) ask for metadata back. Decoding whole Works from every watch event
// and write response would otherwise cost the manager more than the syncing itself.
type ClusterWorkReconciler struct {
	HubClient client.Client
	// HubReader reads Works from the hub itself, not from the manager's (metadata-only) cache.
	HubReader client.Reader
	// WholeWorks are caches that hold some Works whole: the controllers that make Works keep
	// their own (hubwork.NewWorkCache). A pass takes its Work from one of them when it holds the
	// version the metadata cache queued, and reads it from the hub otherwise.
	WholeWorks []client.Reader
	Members    *membercache.Cache
	Engine     *work.Engine
	// Recorder records the Work's transitions a user acts on: applied and ready, stalled.
	Recorder events.EventRecorder

	memberEvents chan event.TypedGenericEvent[*metav1.PartialObjectMetadata]
}

// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks/finalizers,verbs=update

// Reconcile queues the Work on its member, or reports on the Work why that cannot be done.
func (r *ClusterWorkReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	member, ok := strings.CutPrefix(req.Namespace, fleetv1alpha1.MemberClusterNamespacePrefix)
	if !ok || member == "" {
		return ctrl.Result{}, nil // not in a member's hub namespace: not ours to sync
	}
	if r.Engine.Enqueue(member, req.NamespacedName) {
		return ctrl.Result{}, nil
	}

	w := &fleetv1alpha1.ClusterWork{}
	if err := r.HubReader.Get(ctx, req.NamespacedName, w); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	mc := &fleetv1alpha1.MemberCluster{}
	err := r.HubClient.Get(ctx, client.ObjectKey{Name: member}, mc)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && !mc.DeletionTimestamp.IsZero()):
		if !w.DeletionTimestamp.IsZero() {
			// The member is gone: nothing can be cleaned up there any more.
			return ctrl.Result{}, r.removeFinalizer(ctx, w)
		}
		return ctrl.Result{}, r.reportNotConnected(ctx, w, fleetv1alpha1.MemberNotConnectedReason,
			fmt.Sprintf("MemberCluster %s does not exist; create it or remove this Work.", member))
	case err != nil:
		return ctrl.Result{}, err
	}
	if c := meta.FindStatusCondition(mc.Status.Conditions, fleetv1alpha1.ReachableCondition); c != nil && c.Status == metav1.ConditionFalse {
		return ctrl.Result{}, r.reportNotConnected(ctx, w, c.Reason, fmt.Sprintf("MemberCluster %s is not reachable: %s", member, c.Message))
	}
	// Connecting: the member cache's notice of the connection queues the member's Works again.
	return ctrl.Result{}, nil
}

// Process syncs one Work to its member and records the result. It runs on the member's workers.
func (r *ClusterWorkReconciler) Process(ctx context.Context, s *work.MemberSyncer, key types.NamespacedName) (_ time.Duration, reterr error) {
	w, err := r.readWork(ctx, key)
	if err != nil {
		if apierrors.IsNotFound(err) {
			s.Forget(key)
			return 0, nil
		}
		return 0, err
	}
	log := ctrl.LoggerFrom(ctx).WithValues("ClusterWork", klog.KObj(w), "member", s.Name())
	ctx = ctrl.LoggerInto(ctx, log)

	if h, ok := r.Members.Health(s.Name()); ok && !h.Reachable && !h.ProbeTime.IsZero() {
		// Requests would only time out; the member cache's notice of recovery queues the Work again.
		return 0, r.reportNotConnected(ctx, w, h.Reason, fmt.Sprintf("MemberCluster %s is not reachable: %s", s.Name(), h.Message))
	}

	if !w.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(w, fleetv1alpha1.WorkFinalizer) {
			return 0, nil
		}
		writes, err := s.Cleanup(ctx, w)
		if err != nil {
			return 0, fmt.Errorf("clean up ClusterWork %s in member %s: %w", klog.KObj(w), s.Name(), err)
		}
		log.V(1).Info("Cleaned up deleted Work", "writes", writes, "deletionPolicy", w.Spec.DeletionPolicy)
		s.Forget(key)
		return 0, r.removeFinalizer(ctx, w)
	}
	if !controllerutil.ContainsFinalizer(w, fleetv1alpha1.WorkFinalizer) {
		if err := r.patchFinalizers(ctx, w, controllerutil.AddFinalizer); err != nil {
			return 0, fmt.Errorf("add finalizer to ClusterWork %s: %w", klog.KObj(w), err)
		}
	}

	before := w.Status.DeepCopy()
	res := s.Sync(ctx, w)
	if res.Writes > 0 {
		log.V(1).Info("Applied Work", "writes", res.Writes, "meanWrite", res.WriteTime/time.Duration(res.Writes))
	}
	setStatus(w, res)
	// The syncer is the only writer of a Work's status: one patch that sets the whole status.
	if err := r.patchStatus(ctx, w, before); err != nil {
		reterr = kerrors.NewAggregate([]error{res.Err, fmt.Errorf("patch status of ClusterWork %s: %w", klog.KObj(w), err)})
		return 0, reterr
	}
	r.recordTransitions(w, before)
	return res.RequeueAfter, res.Err
}

// readWork reads a Work whole, at least as new as the version the manager's cache of Works'
// metadata holds (which queued this pass): from a cache of whole Works that holds that version,
// or else from the hub, which serves a read at a version from its watch cache, where a read
// without a version is a quorum read from etcd, slower under write load by the time the hub's
// storage takes. A Work the metadata cache does not hold yet is read from etcd.
func (r *ClusterWorkReconciler) readWork(ctx context.Context, key types.NamespacedName) (*fleetv1alpha1.ClusterWork, error) {
	var opts []client.GetOption
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(fleetv1alpha1.GroupVersion.WithKind("ClusterWork"))
	if r.HubClient.Get(ctx, key, m) == nil && m.ResourceVersion != "" {
		for _, c := range r.WholeWorks {
			if w := (&fleetv1alpha1.ClusterWork{}); c.Get(ctx, key, w) == nil && w.ResourceVersion == m.ResourceVersion {
				return w, nil
			}
		}
		opts = append(opts, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: m.ResourceVersion}})
	}
	w := &fleetv1alpha1.ClusterWork{}
	err := r.HubReader.Get(ctx, key, w, opts...)
	if len(opts) > 0 && apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) {
		// Another hub apiserver than the one the cache watches, behind it: read from etcd.
		err = r.HubReader.Get(ctx, key, w)
	}
	return w, err
}

// recordTransitions sends an Event when the Work turned Ready (everything applied and available)
// or Stalled (a conflict or a refused object, which needs a person), once per transition.
func (r *ClusterWorkReconciler) recordTransitions(w *fleetv1alpha1.ClusterWork, before *fleetv1alpha1.ClusterWorkStatus) {
	if r.Recorder == nil {
		return
	}
	turned := func(t string) *metav1.Condition {
		c := meta.FindStatusCondition(w.Status.Conditions, t)
		if c == nil || c.Status != metav1.ConditionTrue || meta.IsStatusConditionTrue(before.Conditions, t) {
			return nil
		}
		return c
	}
	if c := turned(fleetv1alpha1.ReadyCondition); c != nil {
		r.Recorder.Eventf(w, nil, corev1.EventTypeNormal, "Applied", "Sync", "%s", c.Message)
	}
	if c := turned(fleetv1alpha1.StalledCondition); c != nil {
		r.Recorder.Eventf(w, nil, corev1.EventTypeWarning, c.Reason, "Sync", "%s", c.Message)
	}
}

func (r *ClusterWorkReconciler) reportNotConnected(ctx context.Context, w *fleetv1alpha1.ClusterWork, reason, message string) error {
	before := w.Status.DeepCopy()
	setNotConnected(w, reason, message)
	return r.patchStatus(ctx, w, before)
}

func (r *ClusterWorkReconciler) removeFinalizer(ctx context.Context, w *fleetv1alpha1.ClusterWork) error {
	if !controllerutil.ContainsFinalizer(w, fleetv1alpha1.WorkFinalizer) {
		return nil
	}
	if err := r.patchFinalizers(ctx, w, controllerutil.RemoveFinalizer); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer from ClusterWork %s: %w", klog.KObj(w), err)
	}
	return nil
}

// The syncer's writes touch only a Work's finalizers or status, and go through the metadata
// client: the hub answers with the Work's metadata alone instead of the whole Work.

// patchFinalizers changes the Work's finalizers with one merge patch of its metadata.
func (r *ClusterWorkReconciler) patchFinalizers(ctx context.Context, w *fleetv1alpha1.ClusterWork, change func(client.Object, string) bool) error {
	m := metadataOf(w)
	before := m.DeepCopy()
	change(m, fleetv1alpha1.WorkFinalizer)
	if err := r.HubClient.Patch(ctx, m, client.MergeFrom(before)); err != nil {
		return err
	}
	w.Finalizers, w.ResourceVersion = m.Finalizers, m.ResourceVersion
	return nil
}

// patchStatus writes the Work's status when it changed since before, with one patch of the status
// subresource; nothing when nothing changed.
func (r *ClusterWorkReconciler) patchStatus(ctx context.Context, w *fleetv1alpha1.ClusterWork, before *fleetv1alpha1.ClusterWorkStatus) error {
	was, err := json.Marshal(before)
	if err != nil {
		return err
	}
	now, err := json.Marshal(w.Status)
	if err != nil {
		return err
	}
	if bytes.Equal(was, now) {
		return nil
	}
	// A JSON patch that sets the whole status: the hub applies it to the stored Work without
	// decoding the Work's manifests into maps, as it does for a merge patch.
	data, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": json.RawMessage(now)}})
	if err != nil {
		return err
	}
	m := metadataOf(w)
	if err := r.HubClient.Status().Patch(ctx, m, client.RawPatch(types.JSONPatchType, data)); err != nil {
		return err
	}
	w.ResourceVersion = m.ResourceVersion
	return nil
}

func metadataOf(w *fleetv1alpha1.ClusterWork) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{ObjectMeta: *w.ObjectMeta.DeepCopy()}
	m.SetGroupVersionKind(fleetv1alpha1.GroupVersion.WithKind("ClusterWork"))
	return m
}

// Subscriber returns the member cache subscriber that queues every Work of a member again when
// its connection or health changed. Subscribe it after the Engine, so that a connected member's
// syncer exists when its Works arrive.
func (r *ClusterWorkReconciler) Subscriber(ctx context.Context) membercache.Subscriber {
	changed := func(member string) { r.MemberChanged(ctx, member) }
	return membercache.Funcs{
		Connected:     func(m *membercache.Member) { changed(m.Name) },
		HealthChanged: func(member string, _ membercache.Health) { changed(member) },
		Disconnected:  changed,
	}
}

// MemberChanged queues every Work of a member again, when its connection or health changed.
func (r *ClusterWorkReconciler) MemberChanged(ctx context.Context, member string) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(fleetv1alpha1.GroupVersion.WithKind("ClusterWorkList"))
	if err := r.HubClient.List(ctx, list, client.InNamespace(fleetv1alpha1.MemberClusterNamespacePrefix+member)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the Works of a member", "member", member)
		return
	}
	for i := range list.Items {
		select {
		case r.memberEvents <- event.TypedGenericEvent[*metav1.PartialObjectMetadata]{Object: &list.Items[i]}:
		case <-ctx.Done():
			return
		}
	}
}

// SetupWithManager registers the dispatcher. Status writes do not queue a Work again, nor does the
// echo of the syncer adding its finalizer: only spec changes, deletion and the loss of the
// finalizer do.
func (r *ClusterWorkReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.memberEvents = make(chan event.TypedGenericEvent[*metav1.PartialObjectMetadata], 1024)
	specOrDeletion := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp()) ||
			finalizerRemoved(e.ObjectOld, e.ObjectNew)
	}}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1alpha1.ClusterWork{}, builder.OnlyMetadata, builder.WithPredicates(specOrDeletion)).
		WatchesRawSource(source.Channel(r.memberEvents, &handler.TypedEnqueueRequestForObject[*metav1.PartialObjectMetadata]{})).
		Named("clusterwork").
		Complete(r)
}

// finalizerRemoved tells whether someone took the syncer's finalizer off a Work.
func finalizerRemoved(old, cur client.Object) bool {
	return controllerutil.ContainsFinalizer(old, fleetv1alpha1.WorkFinalizer) && !controllerutil.ContainsFinalizer(cur, fleetv1alpha1.WorkFinalizer)
}
