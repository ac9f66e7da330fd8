// Package networking holds the reconcilers of the networking.meridian.io API.
package networking

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/controllers/internal/transition"
	"github.com/meridian-io/meridian/internal/globalns"
	"github.com/meridian-io/meridian/internal/mcs"
)

// GlobalNamespaceReconciler compiles each GlobalNamespace into one ClusterWork per selected
// member and reports, from those Works, where the namespace stands in every cluster. It never
// talks to a member.
type GlobalNamespaceReconciler struct {
	HubClient client.Client
	// Works caches the GlobalNamespaces' own ClusterWorks whole, and only those
	// (hubwork.NewWorkCache): the manager caches ClusterWorks by metadata only, as most
	// carry whole manifests, and a GlobalNamespace's Works carry one namespace each.
	Works cache.Cache
	// HubReader reads from the hub past every cache: a Work the cache does not hold yet, and
	// the last check that no Work is left before the finalizer goes.
	HubReader client.Reader
	Recorder  events.EventRecorder
	// Catalog holds the services imported across the cluster set, for status.services.
	Catalog *mcs.Catalog
	// ServiceEvents wakes a GlobalNamespace whose namespace's services changed.
	ServiceEvents <-chan event.TypedGenericEvent[*netv1alpha1.GlobalNamespace]
	// ServicesDelay is how long a GlobalNamespace waits, after its services changed, before its
	// status.services is brought up to date: the changes within it are written at once (a
	// namespace whose endpoints churn costs the hub one status write per delay, not one per
	// endpoint). Zero writes each change as it comes.
	ServicesDelay time.Duration
}

// DefaultServicesDelay is ServicesDelay's default.
const DefaultServicesDelay = time.Second

// +kubebuilder:rbac:groups=networking.meridian.io,resources=globalnamespaces,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=networking.meridian.io,resources=globalnamespaces/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.meridian.io,resources=globalnamespaces/finalizers,verbs=update
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings the GlobalNamespace's ClusterWorks in line with its placement and spec.
func (r *GlobalNamespaceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &netv1alpha1.GlobalNamespace{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	works, err := r.works(ctx, r.Works, g)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !g.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, g, works)
	}
	if !controllerutil.ContainsFinalizer(g, netv1alpha1.GlobalNamespaceFinalizer) {
		before := g.DeepCopy()
		controllerutil.AddFinalizer(g, netv1alpha1.GlobalNamespaceFinalizer)
		if err := r.HubClient.Patch(ctx, g, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, err
		}
	}

	members := &fleetv1alpha1.MemberClusterList{}
	if err := r.HubClient.List(ctx, members); err != nil {
		return ctrl.Result{}, err
	}
	selected, err := globalns.Select(g, members.Items)
	if err != nil {
		return ctrl.Result{}, err // the webhook and the CRD's schema keep this from happening
	}

	var errs []error
	var clusters []netv1alpha1.ClusterNamespaceStatus
	wanted := map[string]bool{}
	for _, member := range selected {
		wanted[member] = true
		w, releasing, err := r.ensureWork(ctx, g, member, works[member])
		state, msg := globalns.ClusterState(w)
		if releasing != "" && err == nil {
			state, msg = netv1alpha1.ClusterNamespacePending, fmt.Sprintf("Releasing namespace %s (removing the GlobalNamespace's label) before the namespace is renamed to %s.", releasing, g.NamespaceIn(member))
		}
		if err != nil {
			// The Work still carries an older spec, whatever its status says about that one.
			errs = append(errs, err)
			state, msg = netv1alpha1.ClusterNamespacePending, "Could not write the ClusterWork: "+err.Error()
		}
		clusters = append(clusters, netv1alpha1.ClusterNamespaceStatus{Cluster: member, Namespace: g.NamespaceIn(member), State: state, Message: msg})
	}
	for member, w := range works {
		if wanted[member] {
			continue
		}
		// The cluster left the placement: deleting its Work carries out the deletion policy
		// (the Work's finalizer removes or orphans the namespace in the member).
		if w.DeletionTimestamp.IsZero() {
			if deleted, err := r.removeWork(ctx, w); err != nil {
				errs = append(errs, err)
			} else if deleted {
				transition.Record(ctx, r.Recorder, r.HubClient, g, "Reconcile", []transition.Event{{Type: corev1.EventTypeNormal, Reason: "ClusterLeft", Cluster: member,
					Message: fmt.Sprintf("Cluster %s left the placement; deletion policy %s applies to namespace %s there", member, g.Spec.DeletionPolicy, namespaceOf(w, g, member))}})
			}
		}
		clusters = append(clusters, netv1alpha1.ClusterNamespaceStatus{Cluster: member, Namespace: namespaceOf(w, g, member),
			State: netv1alpha1.ClusterNamespaceRemoving, Message: fmt.Sprintf("The cluster left the placement; carrying out deletion policy %s.", g.Spec.DeletionPolicy)})
	}

	before := g.DeepCopy()
	globalns.SetStatus(g, clusters, kerrors.NewAggregate(errs))
	g.Status.Services = r.services(g)
	g.Status.ServiceCount = int32(len(g.Status.Services))
	if err := r.patchStatus(ctx, before, g); err != nil {
		errs = append(errs, err)
	}
	return ctrl.Result{}, kerrors.NewAggregate(errs)
}

// services reports the namespace's imported services and the names they answer to.
func (r *GlobalNamespaceReconciler) services(g *netv1alpha1.GlobalNamespace) []netv1alpha1.GlobalServiceStatus {
	if r.Catalog == nil || g.Spec.ServiceDiscovery.Mode == netv1alpha1.ServiceDiscoveryNone {
		return nil
	}
	ns := g.NamespaceIn("")
	out := r.Catalog.Services(ns)
	for i := range out {
		out[i].DNSNames = globalns.DNSNames(out[i].Name, ns, g.Spec.ServiceDiscovery.Domain)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// works returns the GlobalNamespace's ClusterWorks by member, read from from (the Works cache,
// or the hub itself).
func (r *GlobalNamespaceReconciler) works(ctx context.Context, from client.Reader, g *netv1alpha1.GlobalNamespace) (map[string]*fleetv1alpha1.ClusterWork, error) {
	list := &fleetv1alpha1.ClusterWorkList{}
	if err := from.List(ctx, list, client.MatchingLabels{netv1alpha1.GlobalNamespaceLabel: g.Name}); err != nil {
		return nil, err
	}
	out := map[string]*fleetv1alpha1.ClusterWork{}
	for i := range list.Items {
		w := &list.Items[i]
		if member := w.Labels[fleetv1alpha1.MemberClusterLabel]; member != "" && w.Name == globalns.WorkName(g) {
			out[member] = w
		}
	}
	return out, nil
}

// ensureWork creates or updates the member's Work. It returns the Work as it now is on the hub,
// or nil when it could not be created, and the old namespace it is releasing before a rename.
func (r *GlobalNamespaceReconciler) ensureWork(ctx context.Context, g *netv1alpha1.GlobalNamespace, member string, current *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, string, error) {
	desired, err := globalns.DesiredWork(g, member)
	if err != nil {
		return current, "", err
	}
	if err := controllerutil.SetOwnerReference(g, desired, r.HubClient.Scheme()); err != nil {
		return current, "", err
	}
	// write brings the Work from current (nil: none) to what desired asks of it.
	write := func(current *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, string, error) {
		next, releasing, err := globalns.NextWork(current, desired)
		if err != nil || next == nil {
			return current, releasing, err
		}
		w, err := hubwork.WriteWork(ctx, r.HubClient, next, current)
		return w, releasing, err
	}
	w, releasing, err := write(current)
	if current == nil && apierrors.IsAlreadyExists(err) {
		// The cache does not hold the Work yet (made by the pass before this one): go on
		// from the hub's copy, if it is this GlobalNamespace's.
		if current, err = hubwork.Existing(ctx, r.HubReader, desired, netv1alpha1.GlobalNamespaceLabel, fleetv1alpha1.MemberClusterLabel); err != nil {
			return nil, "", err
		}
		w, releasing, err = write(current)
	}
	if current == nil && apierrors.IsNotFound(err) {
		return nil, "", fmt.Errorf("the hub namespace %s of member %s does not exist yet", desired.Namespace, member)
	}
	return w, releasing, err
}

// finalize deletes every Work of a deleted GlobalNamespace and lets it go once they are gone, so
// that the deletion policy is carried out in every member first.
func (r *GlobalNamespaceReconciler) finalize(ctx context.Context, g *netv1alpha1.GlobalNamespace, works map[string]*fleetv1alpha1.ClusterWork) error {
	if len(works) == 0 && controllerutil.ContainsFinalizer(g, netv1alpha1.GlobalNamespaceFinalizer) {
		// The cache may lag behind the hub (a Work made just before the deletion): the
		// finalizer goes only once the hub itself holds none.
		var err error
		if works, err = r.works(ctx, r.HubReader, g); err != nil {
			return err
		}
	}
	if len(works) == 0 {
		if !controllerutil.ContainsFinalizer(g, netv1alpha1.GlobalNamespaceFinalizer) {
			return nil
		}
		before := g.DeepCopy()
		controllerutil.RemoveFinalizer(g, netv1alpha1.GlobalNamespaceFinalizer)
		return client.IgnoreNotFound(r.HubClient.Patch(ctx, g, client.MergeFrom(before)))
	}
	var errs []error
	var clusters []netv1alpha1.ClusterNamespaceStatus
	for member, w := range works {
		if w.DeletionTimestamp.IsZero() {
			if _, err := r.removeWork(ctx, w); err != nil {
				errs = append(errs, err)
			}
		}
		state, msg := netv1alpha1.ClusterNamespaceRemoving, fmt.Sprintf("Carrying out deletion policy %s.", g.Spec.DeletionPolicy)
		if s, m := globalns.ClusterState(w); s == netv1alpha1.ClusterNamespaceUnreachable {
			msg += " The member is unreachable: " + m
		}
		clusters = append(clusters, netv1alpha1.ClusterNamespaceStatus{Cluster: member, Namespace: namespaceOf(w, g, member), State: state, Message: msg})
	}
	before := g.DeepCopy()
	globalns.SetDeleting(g, clusters)
	if err := r.patchStatus(ctx, before, g); err != nil {
		errs = append(errs, err)
	}
	return kerrors.NewAggregate(errs)
}

// removeWork deletes a Work that leaves its cluster, once a retained namespace no longer carries
// the GlobalNamespace's label there: a Work that retains its namespace is first rewritten
// without the label, and deleted once that is applied (its status change queues the
// GlobalNamespace again). It says whether it deleted the Work.
func (r *GlobalNamespaceReconciler) removeWork(ctx context.Context, w *fleetv1alpha1.ClusterWork) (bool, error) {
	released, err := globalns.Released(w)
	if err != nil {
		return false, err
	}
	if released != nil {
		_, err := hubwork.WriteWork(ctx, r.HubClient, released, w)
		return false, client.IgnoreNotFound(err)
	}
	if w.Spec.DeletionPolicy == fleetv1alpha1.DeletionPolicyOrphan && !globalns.ReleaseDone(w) {
		return false, nil
	}
	return true, client.IgnoreNotFound(r.HubClient.Delete(ctx, w))
}

func (r *GlobalNamespaceReconciler) patchStatus(ctx context.Context, before, after *netv1alpha1.GlobalNamespace) error {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return nil
	}
	return client.IgnoreNotFound(r.HubClient.Status().Patch(ctx, after, client.MergeFrom(before)))
}

// namespaceOf is the namespace a Work carries (it may predate a rename in the spec).
func namespaceOf(w *fleetv1alpha1.ClusterWork, g *netv1alpha1.GlobalNamespace, member string) string {
	if w != nil && len(w.Status.Objects) > 0 {
		return w.Status.Objects[0].Name
	}
	return g.NamespaceIn(member)
}

// queueAfter queues a GlobalNamespace delay after an event. One already waiting is not pushed
// back: the first change after a write is written at most delay later, with every change that
// came meanwhile.
func queueAfter(delay time.Duration) handler.TypedEventHandler[*netv1alpha1.GlobalNamespace, reconcile.Request] {
	return handler.TypedFuncs[*netv1alpha1.GlobalNamespace, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[*netv1alpha1.GlobalNamespace], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: e.Object.GetName()}}, delay)
		},
	}
}

// SetupWithManager registers the reconciler. A GlobalNamespace is queued again when its Works'
// status changes, and every GlobalNamespace when a MemberCluster's labels, hub namespace or
// existence change.
func (r *GlobalNamespaceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	specOrDeletion := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
			!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
	}}
	memberChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*fleetv1alpha1.MemberCluster), e.ObjectNew.(*fleetv1alpha1.MemberCluster)
			return !equality.Semantic.DeepEqual(o.Labels, n.Labels) || o.Status.Namespace != n.Status.Namespace ||
				!o.DeletionTimestamp.Equal(n.DeletionTimestamp)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.ServiceEvents != nil {
		b = b.WatchesRawSource(source.Channel(r.ServiceEvents, queueAfter(r.ServicesDelay)))
	}
	return b.
		For(&netv1alpha1.GlobalNamespace{}, builder.WithPredicates(specOrDeletion)).
		WatchesRawSource(source.Kind(r.Works, &fleetv1alpha1.ClusterWork{}, handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, w *fleetv1alpha1.ClusterWork) []reconcile.Request {
			return hubwork.ByLabel(netv1alpha1.GlobalNamespaceLabel)(ctx, w)
		}))).
		Watches(&fleetv1alpha1.MemberCluster{}, handler.EnqueueRequestsFromMapFunc(hubwork.All(r.HubClient, func() client.ObjectList { return &netv1alpha1.GlobalNamespaceList{} }, "GlobalNamespaces")), builder.WithPredicates(memberChanged)).
		Named("globalnamespace").
		Complete(r)
}
