package networking

import (
	"context"
	"errors"
	"maps"
	"sort"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/internal/mcs"
	"github.com/meridian-io/meridian/internal/work"
)

var (
	serviceExportGVR = mcsv1beta1.SchemeGroupVersion.WithResource("serviceexports")
	serviceImportGVR = mcsv1beta1.SchemeGroupVersion.WithResource("serviceimports")
)

// ServiceDiscoveryReconciler runs the cluster set's service discovery. A request names a service
// (namespace/name) or, with an empty namespace, a member whose MCS CRDs need checking. For a
// service it merges the exports of every member, writes one import ClusterWork per importing
// member (ServiceImport, derived Service, EndpointSlices), the ServiceExports' and
// ServiceImports' status, and the hub's view of the service for its GlobalNamespace.
type ServiceDiscoveryReconciler struct {
	HubClient client.Client
	// HubReader reads from the hub past every cache (a Work of a name the cache does not hold yet).
	HubReader client.Reader
	// ImportWorks caches the import ClusterWorks whole (and only those: hubwork.NewWorkCache), so
	// that a reconcile reads the service's Works without a request to the hub; the manager's own
	// cache holds ClusterWorks by metadata only.
	ImportWorks cache.Cache
	Inventory   *mcs.Inventory
	Engine      *work.Engine
	Catalog     *mcs.Catalog
	// GlobalNamespaceEvents wakes the GlobalNamespace controller when a namespace's services changed.
	GlobalNamespaceEvents chan<- event.TypedGenericEvent[*netv1alpha1.GlobalNamespace]

	requests chan event.TypedGenericEvent[*metav1.PartialObjectMetadata]
	// specWrites holds, per import Work, the generation of this controller's last spec write:
	// the update that reports it needs no reconcile (importWorkChanged).
	specWrites sync.Map
	// refusals are the MCS status writes members refused, reported in the service's status.
	refusals *mcs.Refusals
}

// +kubebuilder:rbac:groups=networking.meridian.io,resources=globalnamespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=memberclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch;create;update;patch;delete

// Reconcile handles one service, or one member's CRDs.
func (r *ServiceDiscoveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if req.Namespace == "" {
		return ctrl.Result{}, r.ensureCRDs(ctx, req.Name)
	}
	ns, name := req.Namespace, req.Name
	members := &fleetv1alpha1.MemberClusterList{}
	if err := r.HubClient.List(ctx, members); err != nil {
		return ctrl.Result{}, err
	}
	gns := r.globalNamespaces(ctx)
	inSet := map[string]bool{}
	var set []string
	for _, m := range members.Items {
		if m.DeletionTimestamp.IsZero() && m.Spec.ServiceDiscovery != fleetv1alpha1.ServiceDiscoveryDisabled {
			inSet[m.Name] = true
			set = append(set, m.Name)
		}
	}
	sort.Strings(set)

	exports, errs := r.exports(ctx, gns, set, ns, name)
	imp, verdicts := mcs.Resolve(exports)

	works, stale, err := r.importWorks(ctx, ns, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, w := range stale {
		errs = append(errs, r.deleteWork(ctx, w))
	}
	var imports []mcs.MemberImport
	for _, member := range set {
		i, err := r.importInto(ctx, gns, member, ns, name, imp, works[member])
		errs = append(errs, err)
		if i != nil {
			imports = append(imports, *i)
		}
	}
	for member, w := range works {
		if !inSet[member] {
			errs = append(errs, r.deleteWork(ctx, w))
		}
	}

	for _, e := range exports {
		if e.Export != nil {
			errs = append(errs, r.exportStatus(ctx, e.Cluster, e.Export, mcs.ExportConditions(verdicts[e.Cluster], imports)))
		}
	}
	st := mcs.ServiceStatus(name, imp, verdicts, imports)
	if st != nil {
		st.Conditions = []metav1.Condition{r.refusals.Condition(mcs.ServiceKey{Namespace: ns, Name: name})}
	} else {
		r.refusals.Forget(mcs.ServiceKey{Namespace: ns, Name: name})
	}
	if r.Catalog.Set(ns, name, st) {
		r.wakeGlobalNamespaces(gns, ns)
	}
	return ctrl.Result{}, kerrors.NewAggregate(errs)
}

// exports collects the members' exports of a service; in a namespace whose discovery is off, it
// tells the ServiceExports so.
func (r *ServiceDiscoveryReconciler) exports(ctx context.Context, gns map[string]*netv1alpha1.GlobalNamespace, set []string, ns, name string) ([]mcs.Export, []error) {
	var errs []error
	var exports []mcs.Export
	for _, member := range set {
		if exists, _ := r.Inventory.Namespace(member, ns); !exists {
			continue
		}
		se, svc, slices := r.Inventory.Export(member, ns, name)
		switch r.mode(gns, member, ns) {
		case netv1alpha1.ServiceDiscoveryNone:
			if se != nil {
				errs = append(errs, r.exportStatus(ctx, member, se, mcs.DisabledConditions()))
			}
			continue
		case netv1alpha1.ServiceDiscoveryAll:
			if se == nil && svc == nil {
				continue
			}
		default:
			if se == nil {
				continue
			}
		}
		exports = append(exports, mcs.Export{Cluster: member, Export: se, Service: svc, Slices: slices})
	}
	return exports, errs
}

// importInto brings a member's import of the service in line and says where it stands there
// (nil: the member does not import it).
func (r *ServiceDiscoveryReconciler) importInto(ctx context.Context, gns map[string]*netv1alpha1.GlobalNamespace, member, ns, name string,
	imp *mcs.Import, current *fleetv1alpha1.ClusterWork) (*mcs.MemberImport, error) {
	if !r.Inventory.Ready(member) {
		// Unknown state: its import stays as it is until the member's inventory is back, and
		// counts for as much as its Work says.
		if current == nil || imp == nil {
			return nil, nil
		}
		state, msg := mcs.WorkImportState(current, imp.Type == mcsv1beta1.ClusterSetIP, false)
		if state == mcs.Imported {
			state, msg = mcs.ImportPending, "its inventory is not synced"
		}
		return &mcs.MemberImport{Cluster: member, State: state, Message: msg}, nil
	}
	exists, _ := r.Inventory.Namespace(member, ns)
	if imp == nil || !exists || r.mode(gns, member, ns) == netv1alpha1.ServiceDiscoveryNone {
		return nil, r.deleteWork(ctx, current)
	}
	vips := r.Inventory.DerivedIPs(member, ns, name)
	desired, err := mcs.ImportWork(member, ns, name, mcs.Desired(ns, name, imp, vips))
	if err != nil {
		return &mcs.MemberImport{Cluster: member, State: mcs.ImportFailed, Message: err.Error()}, err
	}
	if current != nil && current.Name != desired.Name {
		// A Work of an older naming scheme: it goes first, so that the two never fight over
		// the member's objects; its deletion queues this service again.
		return &mcs.MemberImport{Cluster: member, State: mcs.ImportPending, Message: "its ClusterWork is being renamed"}, r.deleteWork(ctx, current)
	}
	w, err := r.ensureWork(ctx, desired, current)
	if errors.Is(err, hubwork.ErrNameTaken) {
		return &mcs.MemberImport{Cluster: member, State: mcs.ImportFailed, Message: err.Error()}, err
	} else if err != nil {
		return &mcs.MemberImport{Cluster: member, State: mcs.ImportPending, Message: err.Error()}, err
	}
	state, msg := mcs.WorkImportState(w, imp.Type == mcsv1beta1.ClusterSetIP, len(vips) > 0)
	if current == nil {
		state, msg = mcs.ImportPending, "its ClusterWork was just created"
	}
	return &mcs.MemberImport{Cluster: member, State: state, Message: msg}, r.importStatus(ctx, member, ns, name, imp.Sources)
}

func (r *ServiceDiscoveryReconciler) wakeGlobalNamespaces(gns map[string]*netv1alpha1.GlobalNamespace, namespace string) {
	for _, g := range gns {
		if g.NamespaceIn("") == namespace {
			r.GlobalNamespaceEvents <- event.TypedGenericEvent[*netv1alpha1.GlobalNamespace]{Object: g}
		}
	}
}

// importWorkChanged says whether an update of an import Work changes what a reconcile of its
// service reads from it: its labels, its import state (mcs.WorkImportState: deletion, Applied,
// objects refused or in conflict, with their messages), or its spec written by another hand
// than this controller's (which the reconcile writes back).
func (r *ServiceDiscoveryReconciler) importWorkChanged(old, now *fleetv1alpha1.ClusterWork) bool {
	if !maps.Equal(old.Labels, now.Labels) {
		return true
	}
	if old.Generation != now.Generation {
		if g, ok := r.specWrites.Load(client.ObjectKeyFromObject(now)); !ok || g.(int64) != now.Generation {
			return true
		}
	}
	oldState, oldMsg := mcs.WorkImportState(old, false, false)
	state, msg := mcs.WorkImportState(now, false, false)
	return oldState != state || oldMsg != msg
}

// SetupWithManager registers the reconciler: member changes arrive from the Inventory; on the
// hub it follows GlobalNamespaces (mode), MemberClusters (opt-out) and its import Works (from
// ImportWorks).
func (r *ServiceDiscoveryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var out []reconcile.Request
		for _, k := range r.keys(ctx) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
		}
		return out
	})
	discoveryChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			switch o := e.ObjectOld.(type) {
			case *netv1alpha1.GlobalNamespace:
				return o.Spec.ServiceDiscovery != e.ObjectNew.(*netv1alpha1.GlobalNamespace).Spec.ServiceDiscovery
			case *fleetv1alpha1.MemberCluster:
				return o.Spec.ServiceDiscovery != e.ObjectNew.(*fleetv1alpha1.MemberCluster).Spec.ServiceDiscovery
			}
			return false
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	byService := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, w *fleetv1alpha1.ClusterWork) []reconcile.Request {
		l := w.GetLabels()
		if l[netv1alpha1.ServiceNameLabel] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[netv1alpha1.ServiceNamespaceLabel], Name: l[netv1alpha1.ServiceNameLabel]}}}
	})
	// A Work's import state (applied, refused, member unreachable) is what the exports
	// report; its deletion lets a renamed Work be made. Creations and spec writes are this
	// controller's own, and most status writes (a new generation applied) leave the import's
	// state as it was: they do not queue the service again (importWorkChanged).
	workChanged := predicate.TypedFuncs[*fleetv1alpha1.ClusterWork]{
		CreateFunc: func(event.TypedCreateEvent[*fleetv1alpha1.ClusterWork]) bool { return false },
		UpdateFunc: func(e event.TypedUpdateEvent[*fleetv1alpha1.ClusterWork]) bool {
			return r.importWorkChanged(e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(e event.TypedDeleteEvent[*fleetv1alpha1.ClusterWork]) bool {
			r.specWrites.Delete(client.ObjectKeyFromObject(e.Object))
			return true
		},
		GenericFunc: func(event.TypedGenericEvent[*fleetv1alpha1.ClusterWork]) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("servicediscovery").
		WatchesRawSource(source.Channel(r.requests, &handler.TypedEnqueueRequestForObject[*metav1.PartialObjectMetadata]{})).
		Watches(&netv1alpha1.GlobalNamespace{}, all, builder.WithPredicates(discoveryChanged)).
		Watches(&fleetv1alpha1.MemberCluster{}, all, builder.WithPredicates(discoveryChanged)).
		WatchesRawSource(source.Kind(r.ImportWorks, &fleetv1alpha1.ClusterWork{}, byService, workChanged)).
		Complete(r)
}
