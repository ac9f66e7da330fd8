package networking

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/mcs"
)

// What queues a service for the service-discovery reconciler, and what it reads on the hub.

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

// NewRequests makes the request channel (and the record of refused status writes); call it
// before the Inventory starts.
func (r *ServiceDiscoveryReconciler) NewRequests() {
	r.requests = make(chan event.TypedGenericEvent[*metav1.PartialObjectMetadata], 4096)
	r.refusals = mcs.NewRefusals()
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
