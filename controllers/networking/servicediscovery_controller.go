package networking

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	mcscrd "sigs.k8s.io/mcs-api/config/crd"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
	"sigs.k8s.io/yaml"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/mcs"
	"github.com/meridian-io/meridian/internal/work"
)

// ServiceDisabledReason is the Valid=False reason of a ServiceExport in a namespace whose
// GlobalNamespace turns service discovery off.
const ServiceDisabledReason = "ServiceDiscoveryDisabled"

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
	// HubReader reads ClusterWorks from the hub: the manager caches them by metadata only.
	HubReader client.Reader
	Inventory *mcs.Inventory
	Engine    *work.Engine
	Catalog   *mcs.Catalog
	// GlobalNamespaceEvents wakes the GlobalNamespace controller when a namespace's services changed.
	GlobalNamespaceEvents chan<- event.TypedGenericEvent[*netv1alpha1.GlobalNamespace]

	requests chan event.TypedGenericEvent[*metav1.PartialObjectMetadata]
}

// +kubebuilder:rbac:groups=networking.meridian.io,resources=globalnamespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=memberclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch;create;update;patch;delete

// Handlers are the Inventory's callbacks: every change becomes a request.
func (r *ServiceDiscoveryReconciler) Handlers() mcs.Handlers {
	return mcs.Handlers{
		Service:   func(ns, name string) { r.enqueue(ns, name) },
		Namespace: func(_, ns string) { r.enqueueAll(func(k mcs.ServiceKey) bool { return k.Namespace == ns }) },
		Member: func(member string) {
			r.enqueue("", member)
			r.enqueueAll(func(mcs.ServiceKey) bool { return true })
		},
	}
}

// NewRequests makes the request channel; call it before the Inventory starts.
func (r *ServiceDiscoveryReconciler) NewRequests() {
	r.requests = make(chan event.TypedGenericEvent[*metav1.PartialObjectMetadata], 4096)
}

func (r *ServiceDiscoveryReconciler) enqueue(namespace, name string) {
	o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	r.requests <- event.TypedGenericEvent[*metav1.PartialObjectMetadata]{Object: o}
}

// enqueueAll queues every service some member exports, and every service imported now, that match.
func (r *ServiceDiscoveryReconciler) enqueueAll(match func(mcs.ServiceKey) bool) {
	for _, k := range r.keys(context.Background()) {
		if match(k) {
			r.enqueue(k.Namespace, k.Name)
		}
	}
}

func (r *ServiceDiscoveryReconciler) keys(ctx context.Context) []mcs.ServiceKey {
	set := map[mcs.ServiceKey]bool{}
	gns := r.globalNamespaces(ctx)
	for _, k := range r.Inventory.Candidates(func(member, ns string) bool {
		return r.mode(gns, member, ns) == netv1alpha1.ServiceDiscoveryAll
	}) {
		set[k] = true
	}
	works := &metav1.PartialObjectMetadataList{}
	works.SetGroupVersionKind(fleetv1alpha1.GroupVersion.WithKind("ClusterWorkList"))
	if err := r.HubClient.List(ctx, works, client.HasLabels{netv1alpha1.ServiceNameLabel}); err == nil {
		for _, w := range works.Items {
			set[mcs.ServiceKey{Namespace: w.Labels[netv1alpha1.ServiceNamespaceLabel], Name: w.Labels[netv1alpha1.ServiceNameLabel]}] = true
		}
	}
	out := make([]mcs.ServiceKey, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

func (r *ServiceDiscoveryReconciler) globalNamespaces(ctx context.Context) map[string]*netv1alpha1.GlobalNamespace {
	list := &netv1alpha1.GlobalNamespaceList{}
	out := map[string]*netv1alpha1.GlobalNamespace{}
	if err := r.HubClient.List(ctx, list); err != nil {
		return out
	}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// mode is the service discovery mode of a namespace in a member: its GlobalNamespace's, or
// Exported for namespaces no GlobalNamespace made.
func (r *ServiceDiscoveryReconciler) mode(gns map[string]*netv1alpha1.GlobalNamespace, member, namespace string) netv1alpha1.ServiceDiscoveryMode {
	_, from := r.Inventory.Namespace(member, namespace)
	if g := gns[from]; g != nil && g.Spec.ServiceDiscovery.Mode != "" {
		return g.Spec.ServiceDiscovery.Mode
	}
	return netv1alpha1.ServiceDiscoveryExported
}

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
				errs = append(errs, r.exportStatus(ctx, member, se, []metav1.Condition{
					{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionFalse, Reason: ServiceDisabledReason,
						Message: "The namespace's GlobalNamespace sets serviceDiscovery.mode None: nothing is exported from or imported into it."},
					{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionFalse, Reason: string(mcsv1beta1.ServiceExportReasonFailed), Message: "Not exported."},
				}))
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
	imp, verdicts := mcs.Resolve(exports)

	works, err := r.importWorks(ctx, ns, name)
	if err != nil {
		return ctrl.Result{}, err
	}
	var importers []string
	for _, member := range set {
		if !r.Inventory.Ready(member) {
			continue // unknown state: leave its import as it is until the member's inventory is back
		}
		exists, _ := r.Inventory.Namespace(member, ns)
		if imp == nil || !exists || r.mode(gns, member, ns) == netv1alpha1.ServiceDiscoveryNone {
			errs = append(errs, r.deleteWork(ctx, works[member]))
			continue
		}
		importers = append(importers, member)
		desired, err := mcs.ImportWork(member, ns, name, mcs.Desired(ns, name, imp, r.Inventory.DerivedIPs(member, ns, name)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, r.ensureWork(ctx, desired, works[member]))
		errs = append(errs, r.importStatus(ctx, member, ns, name, imp.Sources))
	}
	for member, w := range works {
		if !inSet[member] {
			errs = append(errs, r.deleteWork(ctx, w))
		}
	}

	for _, e := range exports {
		if e.Export == nil {
			continue
		}
		errs = append(errs, r.exportStatus(ctx, e.Cluster, e.Export, exportConditions(verdicts[e.Cluster], len(importers))))
	}

	var st *netv1alpha1.GlobalServiceStatus
	if imp != nil {
		st = &netv1alpha1.GlobalServiceStatus{Name: name, Type: string(imp.Type), SourceClusters: imp.Sources,
			ImportingClusters: importers, ReadyEndpoints: int32(imp.ReadyCount())}
		for _, p := range imp.Ports {
			st.Ports = append(st.Ports, netv1alpha1.ServicePort{Name: p.Name, Protocol: string(p.Protocol), Port: p.Port, AppProtocol: p.AppProtocol})
		}
		for _, v := range verdicts {
			if v.ConflictMessage != "" {
				st.Conflict = v.ConflictMessage
				break
			}
		}
	}
	if r.Catalog.Set(ns, name, st) {
		r.wakeGlobalNamespaces(gns, ns)
	}
	return ctrl.Result{}, kerrors.NewAggregate(errs)
}

func exportConditions(v mcs.Verdict, importers int) []metav1.Condition {
	valid := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionValid), Status: metav1.ConditionTrue,
		Reason: string(mcsv1beta1.ServiceExportReasonValid), Message: "The Service can be exported."}
	ready := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionReady), Status: metav1.ConditionTrue,
		Reason: string(mcsv1beta1.ServiceExportReasonExported), Message: fmt.Sprintf("Imported into %d clusters of the cluster set.", importers)}
	conflict := metav1.Condition{Type: string(mcsv1beta1.ServiceExportConditionConflict), Status: metav1.ConditionFalse,
		Reason: string(mcsv1beta1.ServiceExportReasonNoConflicts), Message: "The exports of this service agree."}
	if v.InvalidReason != "" {
		valid.Status, valid.Reason, valid.Message = metav1.ConditionFalse, string(v.InvalidReason), v.InvalidMessage
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, string(mcsv1beta1.ServiceExportReasonFailed), "Not exported: "+v.InvalidMessage
		return []metav1.Condition{valid, ready}
	}
	if v.ConflictReason != "" {
		conflict.Status, conflict.Reason, conflict.Message = metav1.ConditionTrue, string(v.ConflictReason), v.ConflictMessage
	}
	return []metav1.Condition{valid, ready, conflict}
}

// exportStatus writes the ServiceExport's conditions when they differ from what it says now.
func (r *ServiceDiscoveryReconciler) exportStatus(ctx context.Context, member string, se *mcsv1beta1.ServiceExport, want []metav1.Condition) error {
	if r.Inventory.CRDs(member) == mcs.CRDsForeign {
		return nil // another MCS implementation owns the ServiceExports' status there
	}
	conds := append([]metav1.Condition(nil), se.Status.Conditions...)
	changed := false
	for _, c := range want {
		c.ObservedGeneration = se.Generation
		old := meta.FindStatusCondition(conds, c.Type)
		if old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message {
			changed = true
		}
		meta.SetStatusCondition(&conds, c)
	}
	if !changed {
		return nil
	}
	var mine []any
	for _, c := range conds {
		for _, w := range want {
			if c.Type == w.Type {
				u, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&c)
				mine = append(mine, u)
			}
		}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mcsv1beta1.SchemeGroupVersion.String(), "kind": "ServiceExport",
		"metadata": map[string]any{"namespace": se.Namespace, "name": se.Name},
		"status":   map[string]any{"conditions": mine},
	}}
	if err := r.Engine.ApplyStatus(member, serviceExportGVR, obj, r.statusWritten(ctx, se.Namespace, se.Name)); err != nil {
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
	have := make([]string, 0, len(si.Status.Clusters))
	for _, c := range si.Status.Clusters {
		have = append(have, c.Cluster)
	}
	if equality.Semantic.DeepEqual(have, sources) {
		return nil
	}
	clusters := make([]any, 0, len(sources))
	for _, c := range sources {
		clusters = append(clusters, map[string]any{"cluster": c})
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mcsv1beta1.SchemeGroupVersion.String(), "kind": "ServiceImport",
		"metadata": map[string]any{"namespace": ns, "name": name},
		"status":   map[string]any{"clusters": clusters},
	}}
	if err := r.Engine.ApplyStatus(member, serviceImportGVR, obj, r.statusWritten(ctx, ns, name)); err != nil {
		return fmt.Errorf("write the status of ServiceImport %s/%s in %s: %w", ns, name, member, err)
	}
	return nil
}

// statusWritten receives the outcome of a status write the work engine made on the member's own
// workers (it retries by itself what the member did not answer): a refusal is logged; the next
// change of the service writes again.
func (r *ServiceDiscoveryReconciler) statusWritten(ctx context.Context, ns, name string) work.StatusDone {
	log := ctrl.LoggerFrom(ctx)
	return func(err error) {
		if err == nil || apierrors.IsNotFound(err) || errors.Is(err, work.ErrNotConnected) {
			return // written, gone, or the member's reconnection queues every service again
		}
		log.Error(err, "Writing MCS status into a member", "service", ns+"/"+name)
	}
}

func (r *ServiceDiscoveryReconciler) importWorks(ctx context.Context, ns, name string) (map[string]*fleetv1alpha1.ClusterWork, error) {
	list := &fleetv1alpha1.ClusterWorkList{}
	if err := r.HubReader.List(ctx, list, client.MatchingLabels{netv1alpha1.ServiceNamespaceLabel: ns, netv1alpha1.ServiceNameLabel: name}); err != nil {
		return nil, err
	}
	out := map[string]*fleetv1alpha1.ClusterWork{}
	for i := range list.Items {
		if m := list.Items[i].Labels[fleetv1alpha1.MemberClusterLabel]; m != "" {
			out[m] = &list.Items[i]
		}
	}
	return out, nil
}

// ensureWork creates or updates a ClusterWork. A missing hub namespace, or a cache behind the hub,
// is no error: a later event retries.
func (r *ServiceDiscoveryReconciler) ensureWork(ctx context.Context, desired, current *fleetv1alpha1.ClusterWork) error {
	_, err := writeWork(ctx, r.HubClient, desired, current)
	if apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (r *ServiceDiscoveryReconciler) deleteWork(ctx context.Context, w *fleetv1alpha1.ClusterWork) error {
	if w == nil || !w.DeletionTimestamp.IsZero() {
		return nil
	}
	return client.IgnoreNotFound(r.HubClient.Delete(ctx, w))
}

// ensureCRDs installs the ServiceExport and ServiceImport CRDs into a member that lacks them,
// through a ClusterWork whose policy is Orphan: removing Meridian never deletes users' exports.
func (r *ServiceDiscoveryReconciler) ensureCRDs(ctx context.Context, member string) error {
	mc := &fleetv1alpha1.MemberCluster{}
	if err := r.HubClient.Get(ctx, types.NamespacedName{Name: member}, mc); err != nil {
		return client.IgnoreNotFound(err)
	}
	state := r.Inventory.CRDs(member)
	if !mc.DeletionTimestamp.IsZero() || mc.Spec.ServiceDiscovery == fleetv1alpha1.ServiceDiscoveryDisabled ||
		(state != mcs.CRDsAbsent && state != mcs.CRDsOurs) {
		return nil
	}
	desired := &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{Namespace: mc.HubNamespace(), Name: netv1alpha1.CRDWorkName,
			Labels: map[string]string{fleetv1alpha1.MemberClusterLabel: member}, Finalizers: []string{fleetv1alpha1.WorkFinalizer}},
		Spec: fleetv1alpha1.ClusterWorkSpec{DeletionPolicy: fleetv1alpha1.DeletionPolicyOrphan},
	}
	for _, y := range [][]byte{mcscrd.ServiceExportCRD, mcscrd.ServiceImportCRD} {
		raw, err := yaml.YAMLToJSON(y)
		if err != nil {
			return fmt.Errorf("read the Multi-Cluster Services CRDs: %w", err)
		}
		desired.Spec.Objects = append(desired.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	current := &fleetv1alpha1.ClusterWork{}
	err := r.HubReader.Get(ctx, client.ObjectKeyFromObject(desired), current)
	if apierrors.IsNotFound(err) {
		current = nil
	} else if err != nil {
		return err
	}
	return r.ensureWork(ctx, desired, current)
}

func (r *ServiceDiscoveryReconciler) wakeGlobalNamespaces(gns map[string]*netv1alpha1.GlobalNamespace, namespace string) {
	for _, g := range gns {
		if g.NamespaceIn("") == namespace {
			r.GlobalNamespaceEvents <- event.TypedGenericEvent[*netv1alpha1.GlobalNamespace]{Object: g}
		}
	}
}

// SetupWithManager registers the reconciler: member changes arrive from the Inventory; on the
// hub it follows GlobalNamespaces (mode), MemberClusters (opt-out) and its import Works.
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
	byService := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		l := o.GetLabels()
		if l[netv1alpha1.ServiceNameLabel] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[netv1alpha1.ServiceNamespaceLabel], Name: l[netv1alpha1.ServiceNameLabel]}}}
	})
	workDeleted := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("servicediscovery").
		WatchesRawSource(source.Channel(r.requests, &handler.TypedEnqueueRequestForObject[*metav1.PartialObjectMetadata]{})).
		Watches(&netv1alpha1.GlobalNamespace{}, all, builder.WithPredicates(discoveryChanged)).
		Watches(&fleetv1alpha1.MemberCluster{}, all, builder.WithPredicates(discoveryChanged)).
		Watches(&fleetv1alpha1.ClusterWork{}, byService, builder.OnlyMetadata, builder.WithPredicates(workDeleted)).
		Complete(r)
}
