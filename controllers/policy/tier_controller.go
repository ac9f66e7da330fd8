package policy

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// TierReconciler reports each Tier's status: Ready, observedGeneration and how many
// GlobalNetworkPolicies use it. It writes only the status, only when it changed.
type TierReconciler struct {
	HubClient client.Client
}

// +kubebuilder:rbac:groups=policy.meridian.io,resources=tiers,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.meridian.io,resources=tiers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=policy.meridian.io,resources=globalnetworkpolicies,verbs=get;list;watch

// Reconcile counts the tier's policies and sets its status.
func (r *TierReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	t := &policyv1alpha1.Tier{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	policies := &policyv1alpha1.GlobalNetworkPolicyList{}
	if err := r.HubClient.List(ctx, policies); err != nil {
		return ctrl.Result{}, err
	}
	before := t.DeepCopy()
	setTierStatus(t, policies.Items)
	if equality.Semantic.DeepEqual(before.Status, t.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(r.HubClient.Status().Patch(ctx, t, client.MergeFrom(before)))
}

// SetupWithManager registers the reconciler: a Tier is queued when its spec changes, and a
// policy's creation, deletion or spec change queues its tier (and, for a change of tier, the old
// one: the update event carries both).
func (r *TierReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&policyv1alpha1.Tier{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&policyv1alpha1.GlobalNetworkPolicy{}, tierOfPolicy, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("tier").
		Complete(r)
}

// tierOfPolicy queues the tier a policy names, before and after an update.
var tierOfPolicy = handler.Funcs{
	CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueTier(q, e.Object)
	},
	UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueTier(q, e.ObjectOld)
		enqueueTier(q, e.ObjectNew)
	},
	DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		enqueueTier(q, e.Object)
	},
}

func enqueueTier(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
	if p, ok := o.(*policyv1alpha1.GlobalNetworkPolicy); ok {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: p.TierName()}})
	}
}
