package policy

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/controllers/internal/transition"
	"github.com/meridian-io/meridian/controllers/internal/written"
	"github.com/meridian-io/meridian/internal/placement"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/internal/policy/inventory"
	"github.com/meridian-io/meridian/internal/policy/realization"
)

// GlobalNetworkPolicyReconciler compiles each GlobalNetworkPolicy into one ClusterWork per
// selected member, in the member's form, and reports per cluster how it is enforced. It never
// talks to a member: forms and pods come from the policy inventory, realization from the Works.
type GlobalNetworkPolicyReconciler struct {
	HubClient client.Client
	// HubReader reads ClusterWorks (with their status) from the hub.
	HubReader client.Reader
	Inventory *inventory.Inventory
	// Events re-queue policies on inventory changes (see Handlers) and after a compilation
	// changed their Works.
	Events chan event.GenericEvent
	// Compiled holds each member's last compilation.
	Compiled compile.Cache
	// Realization times each member's realization of each policy generation.
	Realization *realization.Timer
	// Recorder records the transitions a user acts on (policyEvents), once each, when the status
	// that says them is written.
	Recorder events.EventRecorder
	// written is each policy's last written status, which the Events are decided against.
	written written.Statuses[policyv1alpha1.GlobalNetworkPolicyStatus]
}

// +kubebuilder:rbac:groups=policy.meridian.io,resources=globalnetworkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.meridian.io,resources=globalnetworkpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=policy.meridian.io,resources=tiers,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch;create;update;patch;delete

// Reconcile writes the policy's Works where they differ and sets its status.
func (r *GlobalNetworkPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &policyv1alpha1.GlobalNetworkPolicy{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, g); apierrors.IsNotFound(err) {
		r.Realization.Forget(req.Name)
		r.written.Forget(req.Name)
		return ctrl.Result{}, r.deleteWorks(ctx, req.Name)
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !g.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // its Works are owned by it: the garbage collector removes them
	}
	before := g.DeepCopy()
	pass, err := r.load(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.Realization.Retain(pass.memberNames())
	selected, err := placement.Select(g.Spec.Placement, pass.members)
	if err != nil {
		return ctrl.Result{}, r.terminal(ctx, before, g, compile.Outcome{Reason: policyv1alpha1.NoClustersReason, Message: fmt.Sprintf("The placement is invalid: %v; fix spec.placement.", err)})
	}
	if !slices.ContainsFunc(pass.tiers, func(t policyv1alpha1.Tier) bool { return t.Name == g.TierName() }) {
		return ctrl.Result{}, r.terminal(ctx, before, g, compile.Outcome{Reason: policyv1alpha1.UnknownTierReason,
			Message: fmt.Sprintf("Tier %q does not exist: create it or set spec.tier to an existing tier.", g.TierName())})
	}
	works, err := r.works(ctx, g.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	var statuses []policyv1alpha1.ClusterPolicyStatus
	var out compile.Outcome
	for _, member := range selected {
		s, err := r.member(ctx, g, member, pass, works[member])
		if err != nil {
			errs = append(errs, err)
		}
		if s.Message == notConnected {
			out.Unreachable = append(out.Unreachable, member)
		}
		statuses = append(statuses, s)
	}
	for member, w := range works {
		if !slices.Contains(selected, member) && w.DeletionTimestamp.IsZero() {
			if err := r.HubClient.Delete(ctx, w); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("delete ClusterWork %s/%s: %w", w.Namespace, w.Name, err))
			}
		}
	}
	compile.SetStatus(g, statuses, out)
	if len(errs) == 0 {
		g.Status.ObservedGeneration = g.Generation
	}
	if err := r.patchStatus(ctx, before, g); err != nil {
		errs = append(errs, err)
	} else {
		// Timed by what the status says, once it says it.
		r.Realization.Observe(g.Name, g.Generation, before.Status.ObservedGeneration, g.Status.Clusters)
	}
	return ctrl.Result{}, kerrors.NewAggregate(errs)
}

const notConnected = "The member is not connected: its objects wait until it is reachable again."

// pass is the hub state one reconcile works from.
type pass struct {
	tiers   []policyv1alpha1.Tier
	members []fleetv1alpha1.MemberCluster
	hub     *compile.Hub
}

func (p *pass) memberNames() []string {
	names := make([]string, len(p.members))
	for i := range p.members {
		names[i] = p.members[i].Name
	}
	return names
}

// load lists the hub's tiers, members and policies without copying them out of the cache: a
// pass reads them only (the compiler copies what it keeps), and every policy's change is a pass
// that reads all of them.
func (r *GlobalNetworkPolicyReconciler) load(ctx context.Context) (*pass, error) {
	tiers, members, policies := &policyv1alpha1.TierList{}, &fleetv1alpha1.MemberClusterList{}, &policyv1alpha1.GlobalNetworkPolicyList{}
	for _, l := range []client.ObjectList{tiers, members, policies} {
		if err := r.HubClient.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
	}
	return &pass{tiers: tiers.Items, members: members.Items, hub: compile.NewHub(tiers.Items, members.Items, policies.Items)}, nil
}

// member compiles the member (compile.Cache translates only what changed since its last
// compilation: this policy, and those whose place in the form's numbering it moved), writes
// this policy's Work and the member's shared Work, and reports the policy there.
func (r *GlobalNetworkPolicyReconciler) member(ctx context.Context, g *policyv1alpha1.GlobalNetworkPolicy, member string, p *pass, current *fleetv1alpha1.ClusterWork) (policyv1alpha1.ClusterPolicyStatus, error) {
	form, ok := r.Inventory.Form(member)
	if !ok {
		s := policyv1alpha1.ClusterPolicyStatus{Cluster: member, Form: policyv1alpha1.FormNone, Enforcement: policyv1alpha1.EnforcementExact, Phase: policyv1alpha1.PhasePending, Message: notConnected}
		if current != nil {
			s.Form = policyv1alpha1.Form(current.Labels[policyv1alpha1.FormLabel])
		}
		return s, nil
	}
	in := p.hub.MemberInput(member)
	in.Namespaces = r.Inventory.Namespaces(member)
	in.Pods = r.Inventory.Pods(compile.PeerClusters(in))
	m, changed, err := r.Compiled.Compile(form, in)
	if err != nil {
		return policyv1alpha1.ClusterPolicyStatus{Cluster: member, Form: form, Enforcement: policyv1alpha1.EnforcementExact, Phase: policyv1alpha1.PhaseFailed, Message: err.Error()}, err
	}
	for _, name := range changed {
		if name != g.Name {
			r.enqueue(ctx, name)
		}
	}
	desired := m.Works[g.Name].DeepCopy() // m is shared by the cache
	w := current
	switch {
	case desired == nil && current != nil:
		// Unsupported now: nothing weaker stays in the member.
		if err := r.HubClient.Delete(ctx, current); client.IgnoreNotFound(err) != nil {
			return compile.ClusterStatus(member, form, m.Enforcement[g.Name], nil), fmt.Errorf("delete ClusterWork %s/%s: %w", current.Namespace, current.Name, err)
		}
		w = nil
	case desired != nil:
		if err := controllerutil.SetOwnerReference(g, desired, r.HubClient.Scheme()); err != nil {
			return policyv1alpha1.ClusterPolicyStatus{}, err
		}
		if w, err = hubwork.WriteWork(ctx, r.HubClient, desired, current); err != nil {
			return compile.ClusterStatus(member, form, m.Enforcement[g.Name], current), err
		}
	}
	if m.Shared != nil {
		if err := r.writeShared(ctx, m.Shared.DeepCopy()); err != nil {
			return compile.ClusterStatus(member, form, m.Enforcement[g.Name], w), err
		}
	}
	return compile.ClusterStatus(member, form, m.Enforcement[g.Name], w), nil
}

// writeShared keeps the member's shared Work (owned by no policy: its objects outlive any one).
func (r *GlobalNetworkPolicyReconciler) writeShared(ctx context.Context, desired *fleetv1alpha1.ClusterWork) error {
	current := &fleetv1alpha1.ClusterWork{}
	err := r.HubReader.Get(ctx, client.ObjectKeyFromObject(desired), current)
	if apierrors.IsNotFound(err) {
		current = nil
	} else if err != nil {
		return err
	}
	_, err = hubwork.WriteWork(ctx, r.HubClient, desired, current)
	return err
}

// works returns the policy's ClusterWorks by member.
func (r *GlobalNetworkPolicyReconciler) works(ctx context.Context, name string) (map[string]*fleetv1alpha1.ClusterWork, error) {
	list := &fleetv1alpha1.ClusterWorkList{}
	if err := r.HubReader.List(ctx, list, client.MatchingLabels{policyv1alpha1.GlobalNetworkPolicyLabel: name}); err != nil {
		return nil, err
	}
	out := map[string]*fleetv1alpha1.ClusterWork{}
	for i := range list.Items {
		w := &list.Items[i]
		if member := w.Labels[fleetv1alpha1.MemberClusterLabel]; member != "" && w.Name == compile.WorkName(name) {
			out[member] = w
		}
	}
	return out, nil
}

// deleteWorks removes a deleted policy's Works. The garbage collector would (the policy owns
// them), but a hub without one (a bare control plane) would then keep the policy in force in
// every member; deleting them here does not depend on it.
func (r *GlobalNetworkPolicyReconciler) deleteWorks(ctx context.Context, name string) error {
	works, err := r.works(ctx, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range works {
		if w.DeletionTimestamp.IsZero() {
			if err := r.HubClient.Delete(ctx, w); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("delete ClusterWork %s/%s: %w", w.Namespace, w.Name, err))
			}
		}
	}
	return kerrors.NewAggregate(errs)
}

// terminal reports a problem retrying will not fix as Stalled and waits for a new spec.
func (r *GlobalNetworkPolicyReconciler) terminal(ctx context.Context, before, g *policyv1alpha1.GlobalNetworkPolicy, o compile.Outcome) error {
	compile.SetStatus(g, nil, o)
	g.Status.ObservedGeneration = g.Generation
	return r.patchStatus(ctx, before, g)
}

func (r *GlobalNetworkPolicyReconciler) patchStatus(ctx context.Context, before, after *policyv1alpha1.GlobalNetworkPolicy) error {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return nil
	}
	if err := r.HubClient.Status().Patch(ctx, after, client.MergeFrom(before)); err != nil {
		return client.IgnoreNotFound(err)
	}
	was := r.written.Swap(after.Name, after.UID, *before.Status.DeepCopy(), *after.Status.DeepCopy())
	transition.Record(ctx, r.Recorder, r.HubClient, after, "Reconcile", policyEvents(&was, &after.Status))
	return nil
}

// Handlers are the inventory's handlers: a member's change re-queues every policy (its form or
// namespaces matter to all placed on it); pod churn re-queues only the policies whose ClusterSet
// peers select the pod before or after the change.
func (r *GlobalNetworkPolicyReconciler) Handlers(ctx context.Context, hub client.Reader) inventory.Handlers {
	send := func(name string) { r.enqueue(ctx, name) }
	list := func() []policyv1alpha1.GlobalNetworkPolicy {
		l := &policyv1alpha1.GlobalNetworkPolicyList{}
		if err := hub.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil { // read only
			ctrl.LoggerFrom(ctx).Error(err, "Listing GlobalNetworkPolicies")
			return nil
		}
		return l.Items
	}
	return inventory.Handlers{
		MemberChanged: func(string) {
			for _, g := range list() {
				send(g.Name)
			}
		},
		PodsChanged: func(changes []inventory.PodChange) {
			policies := list()
			for i := range policies {
				g := &policies[i]
				for _, c := range changes {
					if compile.PeersMatch(g, c.Old, c.New) {
						send(g.Name)
						break
					}
				}
			}
		},
	}
}

// enqueue re-queues a policy by name.
func (r *GlobalNetworkPolicyReconciler) enqueue(ctx context.Context, name string) {
	e := event.GenericEvent{Object: &policyv1alpha1.GlobalNetworkPolicy{}}
	e.Object.SetName(name)
	select {
	case r.Events <- e:
	case <-ctx.Done():
	}
}

// SetupWithManager registers the reconciler. A policy's change re-queues the policies whose Works
// it changed (its own compilation of each member names them, see compile.Cache); a policy created,
// deleted or moved to other members (its placement), a tier's change and MemberCluster label
// changes (placements) re-queue every policy, as those change members the policy's own pass does
// not compile;
// a policy's Works re-queue it (their status is its phase); the inventory's events come through
// Events.
func (r *GlobalNetworkPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	placementChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*policyv1alpha1.GlobalNetworkPolicy), e.ObjectNew.(*policyv1alpha1.GlobalNetworkPolicy)
			return !equality.Semantic.DeepEqual(o.Spec.Placement, n.Spec.Placement)
		},
	}
	memberChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&policyv1alpha1.GlobalNetworkPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&policyv1alpha1.GlobalNetworkPolicy{}, handler.EnqueueRequestsFromMapFunc(r.all), builder.WithPredicates(placementChanged)).
		// A Tier's spec (its priority) orders every policy; its status (written by the Tier
		// controller) changes nothing here.
		Watches(&policyv1alpha1.Tier{}, handler.EnqueueRequestsFromMapFunc(r.all), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1alpha1.ClusterWork{}, handler.EnqueueRequestsFromMapFunc(byPolicyLabel), builder.OnlyMetadata).
		Watches(&fleetv1alpha1.MemberCluster{}, handler.EnqueueRequestsFromMapFunc(r.all), builder.WithPredicates(memberChanged)).
		WatchesRawSource(source.Channel(r.Events, &handler.EnqueueRequestForObject{})).
		Named("globalnetworkpolicy").
		Complete(r)
}

// The request mappers are controllers/internal/hubwork's, shared by every compiler controller.
var byPolicyLabel = hubwork.ByLabel(policyv1alpha1.GlobalNetworkPolicyLabel)

func (r *GlobalNetworkPolicyReconciler) all(ctx context.Context, o client.Object) []reconcile.Request {
	return hubwork.All(r.HubClient, func() client.ObjectList { return &policyv1alpha1.GlobalNetworkPolicyList{} }, "GlobalNetworkPolicies")(ctx, o)
}
