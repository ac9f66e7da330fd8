package fleet

import (
	"context"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/agentstatus"
)

// AgentStatusReconciler writes each MemberCluster's status.agents: the member's agents as the
// aggregator (a member-cache subscriber) sees them, against the revision its AgentConfig Work
// carries. Writes are coalesced by the Reporter: at most one per member per heartbeat interval.
type AgentStatusReconciler struct {
	HubClient  client.Client
	Aggregator *agentstatus.Aggregator
	Reporter   *agentstatus.Reporter
	Clock      clock.PassiveClock
	// Events receives a notice per member whose agents changed (from the aggregator).
	Events <-chan event.TypedGenericEvent[*fleetv1alpha1.MemberCluster]
}

// +kubebuilder:rbac:groups=fleet.meridian.io,resources=memberclusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch

// Reconcile brings one MemberCluster's agents summary up to date, or says when it may.
func (r *AgentStatusReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &fleetv1alpha1.MemberCluster{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, mc); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.Reporter.Forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	snap, ok := r.Aggregator.Snapshot(mc.Name)
	if !ok {
		return ctrl.Result{}, nil // not connected or not synced: the aggregator notifies when it is
	}
	exp, err := r.expected(ctx, mc.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	want, next := agentstatus.Summarize(snap, exp, now)
	wait, err := r.Reporter.Report(ctx, mc, want, agentstatus.Interval(snap))
	if err != nil {
		return ctrl.Result{}, err
	}
	if !next.IsZero() && (wait == 0 || next.Sub(now) < wait) {
		wait = max(next.Sub(now), time.Millisecond)
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

// expected reads the revision the member was handed from its AgentConfig Work's annotations (by
// metadata). Two AgentConfigs never both write to one member; should two Works exist for a
// moment, the first by name counts.
func (r *AgentStatusReconciler) expected(ctx context.Context, member string) (agentstatus.Expected, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(fleetv1alpha1.GroupVersion.WithKind("ClusterWorkList"))
	if err := r.HubClient.List(ctx, list, client.InNamespace(fleetv1alpha1.MemberClusterNamespacePrefix+member), client.HasLabels{fleetv1alpha1.AgentConfigLabel}); err != nil {
		return agentstatus.Expected{}, err
	}
	slices.SortFunc(list.Items, func(a, b metav1.PartialObjectMetadata) int { return strings.Compare(a.Name, b.Name) })
	for _, w := range list.Items {
		if w.DeletionTimestamp.IsZero() {
			return agentstatus.Expected{
				AgentConfig: w.Labels[fleetv1alpha1.AgentConfigLabel],
				Version:     w.Annotations[fleetv1alpha1.AgentVersionAnnotation],
				ConfigHash:  w.Annotations[fleetv1alpha1.AgentWorkConfigHashAnnotation],
			}, nil
		}
	}
	return agentstatus.Expected{}, nil
}

// SetupWithManager registers the reconciler: a MemberCluster is queued when it is created, when
// the aggregator says its agents changed, and when its AgentConfig Work's revision changes.
func (r *AgentStatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	revisionChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !equality.Semantic.DeepEqual(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations())
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1alpha1.MemberCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1alpha1.ClusterWork{}, handler.EnqueueRequestsFromMapFunc(workMember), builder.OnlyMetadata, builder.WithPredicates(revisionChanged)).
		WatchesRawSource(source.Channel(r.Events, &handler.TypedEnqueueRequestForObject[*fleetv1alpha1.MemberCluster]{})).
		Named("agentstatus").
		Complete(r)
}

func workMember(_ context.Context, o client.Object) []reconcile.Request {
	if o.GetLabels()[fleetv1alpha1.AgentConfigLabel] == "" {
		return nil
	}
	if member := o.GetLabels()[fleetv1alpha1.MemberClusterLabel]; member != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: member}}}
	}
	return nil
}
