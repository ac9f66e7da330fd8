package fleet

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/controllers/internal/transition"
	"github.com/meridian-io/meridian/controllers/internal/written"
	"github.com/meridian-io/meridian/internal/agentconfig"
	"github.com/meridian-io/meridian/internal/agentstatus"
)

// AgentConfigReconciler compiles each AgentConfig into one ClusterWork per selected member and
// hands a change to the members wave by wave, as internal/agentconfig's planner says. It never
// talks to a member; the Works' status feedback tells it how far each member's DaemonSet is.
type AgentConfigReconciler struct {
	HubClient client.Client
	// HubReader reads ClusterWorks (with their status) from the hub.
	HubReader client.Reader
	Clock     clock.Clock
	// Writes bounds the status writes: at most one per AgentConfig per heartbeat interval (its
	// spec.config's), except the first status of a new generation, written at once.
	Writes *agentstatus.Coalescer
	// Recorder records the transitions a user acts on (agentConfigEvents), once each, when the
	// status that says them is written (a coalesced pass that writes nothing records nothing).
	Recorder events.EventRecorder
	// written is each AgentConfig's last written status, which the Events are decided against.
	written written.Statuses[fleetv1alpha1.AgentConfigStatus]
}

// +kubebuilder:rbac:groups=fleet.meridian.io,resources=agentconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=agentconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=clusterworks,verbs=get;list;watch;create;update;patch;delete

// Reconcile brings the AgentConfig's ClusterWorks one step along its rollout and reports it.
func (r *AgentConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ac := &fleetv1alpha1.AgentConfig{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, ac); err != nil {
		if apierrors.IsNotFound(err) {
			r.Writes.Forget(req.Name)
			r.written.Forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ac.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the Works are owned by it: the garbage collector removes them
	}
	before := ac.DeepCopy()
	members := &fleetv1alpha1.MemberClusterList{}
	if err := r.HubClient.List(ctx, members); err != nil {
		return ctrl.Result{}, err
	}
	selected, err := agentconfig.Select(ac, members.Items)
	if err != nil {
		return r.terminal(ctx, before, ac, fleetv1alpha1.InvalidPlacementReason, err.Error())
	}
	all := &fleetv1alpha1.AgentConfigList{}
	if err := r.HubClient.List(ctx, all); err != nil {
		return ctrl.Result{}, err
	}
	held, lost, contested := agentconfig.Partition(ac, selected, all.Items, members.Items)
	works, err := r.works(ctx, ac.Name)
	if err != nil {
		return ctrl.Result{}, err
	}

	byName := map[string]*fleetv1alpha1.MemberCluster{}
	for i := range members.Items {
		byName[members.Items[i].Name] = &members.Items[i]
	}
	var errs []error
	compiled := map[string]*agentconfig.Member{}
	// state is a held cluster's line from its Work and the agents the member reports.
	state := func(name string, w *fleetv1alpha1.ClusterWork) agentconfig.ClusterState {
		return agentconfig.StateFromWork(name, compiled[name].Revision, w).
			WithAgents(byName[name].Status.Agents, ac.Name, ac.Spec.Version, compiled[name].ConfigHash)
	}
	states := make([]agentconfig.ClusterState, 0, len(held))
	for _, name := range held {
		m, err := agentconfig.Compile(ac, byName[name])
		if err != nil {
			return r.terminal(ctx, before, ac, fleetv1alpha1.ClusterFailedReason, err.Error())
		}
		compiled[name] = m
		states = append(states, state(name, works[name]))
	}
	now := r.Clock.Now()
	plan, err := agentconfig.PlanRollout(ac.Spec.Rollout, states, now)
	if err != nil {
		return r.terminal(ctx, before, ac, fleetv1alpha1.InvalidPlacementReason, err.Error())
	}
	for i, s := range states {
		// Clusters that have the revision keep their Work in line (drift of the Work itself);
		// clusters the plan names get it now; the others keep what they have.
		if s.HasRevision || slices.Contains(plan.Update, s.Name) {
			w, err := r.writeWork(ctx, ac, s.Name, compiled[s.Name], works[s.Name], now)
			if err != nil {
				errs = append(errs, err)
			}
			works[s.Name] = w
			if !s.HasRevision && err == nil {
				// Handed the revision in this pass: its line says so now, not one (coalesced)
				// status write later.
				states[i] = state(s.Name, w)
			}
		}
	}
	for member, w := range works {
		if !slices.Contains(held, member) && w != nil && w.DeletionTimestamp.IsZero() {
			if err := r.HubClient.Delete(ctx, w); client.IgnoreNotFound(err) != nil {
				errs = append(errs, err)
			}
		}
	}

	ac.Status.Clusters = nil
	for wave, names := range plan.Waves {
		for _, name := range names {
			i := slices.IndexFunc(states, func(s agentconfig.ClusterState) bool { return s.Name == name })
			ac.Status.Clusters = append(ac.Status.Clusters, agentconfig.ClusterStatus(states[i], wave+1, ac.Spec.Version, compiled[name].ConfigHash, plan, works[name]))
		}
	}
	for _, c := range lost {
		for _, name := range c.Clusters {
			ac.Status.Clusters = append(ac.Status.Clusters, agentconfig.LostClusterStatus(name, c.AgentConfig))
		}
	}
	updated := 0
	for _, c := range ac.Status.Clusters {
		if c.Phase == fleetv1alpha1.AgentClusterUpdated {
			updated++
		}
	}
	ac.Status.Rollout = &fleetv1alpha1.RolloutStatus{Phase: plan.Phase, Wave: int32(plan.Wave), Waves: int32(len(plan.Waves)),
		Summary: fmt.Sprintf("%d/%d clusters", updated, len(selected))}
	switch {
	case len(selected) == 0:
		plan.Reason, plan.Message = fleetv1alpha1.NoClustersSelectedReason, "The placement selects no MemberCluster."
	case len(held) == 0:
		// Older AgentConfigs hold every selected cluster: nothing rolls out, and waiting will
		// not change that (Stalled, from SetConditions).
		ac.Status.Rollout.Phase = fleetv1alpha1.RolloutStalled
		plan.Reason, plan.Message = fleetv1alpha1.AgentConfigConflictReason, "Nothing to roll out: older AgentConfigs hold every cluster this one selects."
	}
	agentconfig.SetConditions(ac, plan, lost, contested)
	if len(errs) == 0 {
		ac.Status.ObservedGeneration = ac.Generation
	}
	wait, err := r.patchStatus(ctx, before, ac)
	if err != nil {
		errs = append(errs, err)
	}
	requeue := plan.RequeueAfter
	if wait > 0 && (requeue == 0 || wait < requeue) {
		requeue = wait
	}
	return ctrl.Result{RequeueAfter: requeue}, kerrors.NewAggregate(errs)
}

// works returns the AgentConfig's ClusterWorks by member.
func (r *AgentConfigReconciler) works(ctx context.Context, name string) (map[string]*fleetv1alpha1.ClusterWork, error) {
	list := &fleetv1alpha1.ClusterWorkList{}
	if err := r.HubReader.List(ctx, list, client.MatchingLabels{fleetv1alpha1.AgentConfigLabel: name}); err != nil {
		return nil, err
	}
	out := map[string]*fleetv1alpha1.ClusterWork{}
	for i := range list.Items {
		w := &list.Items[i]
		if member := w.Labels[fleetv1alpha1.MemberClusterLabel]; member != "" && w.Name == fleetv1alpha1.AgentWorkNamePrefix+name {
			out[member] = w
		}
	}
	return out, nil
}

// writeWork makes the member's Work carry the compiled revision: created when missing, otherwise
// patched when its spec, labels or revision differ. The revision's start time is kept while the
// revision stays.
func (r *AgentConfigReconciler) writeWork(ctx context.Context, ac *fleetv1alpha1.AgentConfig, member string, m *agentconfig.Member, current *fleetv1alpha1.ClusterWork, now time.Time) (*fleetv1alpha1.ClusterWork, error) {
	desired, err := agentconfig.DesiredWork(ac, member, m)
	if err != nil {
		return current, err
	}
	if err := controllerutil.SetOwnerReference(ac, desired, r.HubClient.Scheme()); err != nil {
		return current, err
	}
	since := now.UTC().Format(time.RFC3339)
	if current != nil && current.Annotations[agentconfig.RevisionAnnotation] == m.Revision && current.Annotations[agentconfig.SinceAnnotation] != "" {
		since = current.Annotations[agentconfig.SinceAnnotation]
	}
	desired.Annotations[agentconfig.SinceAnnotation] = since
	return hubwork.WriteWork(ctx, r.HubClient, desired, current)
}

// terminal reports an error that retrying will not fix as Stalled, and waits for a new spec.
func (r *AgentConfigReconciler) terminal(ctx context.Context, before, ac *fleetv1alpha1.AgentConfig, reason, msg string) (ctrl.Result, error) {
	agentconfig.SetConditions(ac, agentconfig.Plan{Phase: fleetv1alpha1.RolloutStalled, Reason: reason, Message: msg}, nil, nil)
	ac.Status.ObservedGeneration = ac.Generation
	wait, err := r.patchStatus(ctx, before, ac)
	return ctrl.Result{RequeueAfter: wait}, err
}

// patchStatus writes the status when it changed, coalesced: within the heartbeat interval after
// the last write it writes nothing and returns how long to wait; the pass after that wait writes
// the status as it then is. Under agent churn the member summaries this status follows change up
// to once per member per interval; the AgentConfig is written at most once per interval however
// many members it spans. The first status of a new generation is written at once, so that a
// user's change is acknowledged (observedGeneration) without delay.
func (r *AgentConfigReconciler) patchStatus(ctx context.Context, before, after *fleetv1alpha1.AgentConfig) (time.Duration, error) {
	if equality.Semantic.DeepEqual(before.Status, after.Status) {
		return 0, nil
	}
	if before.Status.ObservedGeneration == after.Status.ObservedGeneration {
		if wait := r.Writes.Hold(after.Name, heartbeat(after)); wait > 0 {
			return wait, nil
		}
	}
	if err := r.HubClient.Status().Patch(ctx, after, client.MergeFrom(before)); err != nil {
		return 0, client.IgnoreNotFound(err)
	}
	r.Writes.Wrote(after.Name)
	was := r.written.Swap(after.Name, after.UID, *before.Status.DeepCopy(), *after.Status.DeepCopy())
	transition.Record(ctx, r.Recorder, r.HubClient, after, "Rollout", agentConfigEvents(&was, &after.Status))
	return 0, nil
}

// heartbeat is the agents' heartbeat interval in the AgentConfig's base config.
func heartbeat(ac *fleetv1alpha1.AgentConfig) time.Duration {
	if s := ac.Spec.Config.HeartbeatIntervalSeconds; s > 0 {
		return time.Duration(s) * time.Second
	}
	return agentstatus.DefaultInterval
}

// SetupWithManager registers the reconciler: an AgentConfig is queued again when its spec changes,
// when its Works change (their status says how the DaemonSets fare), and every AgentConfig when
// a MemberCluster's labels, agents summary or existence change, or another AgentConfig's placement does.
func (r *AgentConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Writes == nil {
		r.Writes = &agentstatus.Coalescer{Clock: r.Clock}
	}
	memberChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				!equality.Semantic.DeepEqual(e.ObjectOld.(*fleetv1alpha1.MemberCluster).Status.Agents, e.ObjectNew.(*fleetv1alpha1.MemberCluster).Status.Agents) ||
				!e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp())
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1alpha1.AgentConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1alpha1.ClusterWork{}, handler.EnqueueRequestsFromMapFunc(byAgentConfigLabel), builder.OnlyMetadata).
		Watches(&fleetv1alpha1.MemberCluster{}, handler.EnqueueRequestsFromMapFunc(r.all), builder.WithPredicates(memberChanged)).
		Watches(&fleetv1alpha1.AgentConfig{}, handler.EnqueueRequestsFromMapFunc(r.all), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("agentconfig").
		Complete(r)
}

// The request mappers are controllers/internal/hubwork's, shared by every compiler controller.
var byAgentConfigLabel = hubwork.ByLabel(fleetv1alpha1.AgentConfigLabel)

func (r *AgentConfigReconciler) all(ctx context.Context, o client.Object) []reconcile.Request {
	return hubwork.All(r.HubClient, func() client.ObjectList { return &fleetv1alpha1.AgentConfigList{} }, "AgentConfigs")(ctx, o)
}
