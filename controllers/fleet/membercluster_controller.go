// Package fleet holds the reconcilers of the fleet.meridian.io API: member clusters and their
// discovery from Cluster API.
package fleet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"sigs.k8s.io/cluster-api/util/patch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
)

// kubeconfigSecretIndex indexes MemberClusters by the "namespace/name" of their kubeconfig Secret.
const kubeconfigSecretIndex = "fleet.meridian.io/kubeconfig-secret"

// MemberClusterReconciler connects to member clusters, keeps their hub namespace and reports
// their health. Probing happens in the member cache's own goroutines; this reconciler only reads
// their results, so a member that hangs never holds a worker.
type MemberClusterReconciler struct {
	// HubClient reads and writes the hub; cached.
	HubClient client.Client
	// HubReader reads the hub without the cache (Secrets are cached by metadata only).
	HubReader client.Reader
	// Members is the member cache: the one owner of every connection to a member.
	Members  *membercache.Cache
	Recorder events.EventRecorder
	// StatusRefreshInterval bounds how stale status.lastProbeTime may get while nothing changes.
	StatusRefreshInterval time.Duration
	// MemberQPS and MemberBurst set the rate of every member client.
	MemberQPS   float32
	MemberBurst int
	// ProbeEvents receives a notice for each member whose probe result changed.
	ProbeEvents             <-chan event.TypedGenericEvent[*fleetv1alpha1.MemberCluster]
	MaxConcurrentReconciles int
}

// scope carries one reconcile pass.
type scope struct {
	member *fleetv1alpha1.MemberCluster
	// connErr is a terminal reason the member cannot be connected (bad or missing kubeconfig).
	connReason, connMessage string
	health                  membercache.Health
	connected               bool
}

// +kubebuilder:rbac:groups=fleet.meridian.io,resources=memberclusters,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=fleet.meridian.io,resources=memberclusters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one MemberCluster's connection, hub namespace and status up to date.
func (r *MemberClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	member := &fleetv1alpha1.MemberCluster{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, member); err != nil {
		if apierrors.IsNotFound(err) {
			r.Members.Remove(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("MemberCluster", klog.KObj(member)))

	if !member.DeletionTimestamp.IsZero() {
		// The hub namespace goes with the MemberCluster by garbage collection (owner reference).
		r.Members.Remove(member.Name)
		return ctrl.Result{}, nil
	}

	helper, err := patch.NewHelper(member, r.HubClient)
	if err != nil {
		return ctrl.Result{}, err
	}
	s := &scope{member: member}
	before := member.DeepCopy()
	defer func() {
		setStatus(member, s, time.Now(), r.StatusRefreshInterval, reterr)
		r.recordTransitions(before, member)
		if err := helper.Patch(ctx, member, patch.WithOwnedConditions{Conditions: []string{
			fleetv1alpha1.ReadyCondition, fleetv1alpha1.ReachableCondition,
		}}); err != nil {
			reterr = kerrors.NewAggregate([]error{reterr, fmt.Errorf("patch status of MemberCluster %s: %w", member.Name, err)})
		}
	}()

	var errs []error
	for _, phase := range []func(context.Context, *scope) error{r.reconcileNamespace, r.reconcileConnection} {
		if err := phase(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return ctrl.Result{}, kerrors.NewAggregate(errs)
	}
	// Nothing watchable says that lastProbeTime grew stale: come back when it will have.
	return ctrl.Result{RequeueAfter: r.StatusRefreshInterval}, nil
}

// reconcileNamespace ensures the hub namespace meridian-member-<name>, owned by the MemberCluster.
func (r *MemberClusterReconciler) reconcileNamespace(ctx context.Context, s *scope) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.member.HubNamespace()}}
	err := r.HubClient.Get(ctx, client.ObjectKeyFromObject(ns), ns)
	switch {
	case apierrors.IsNotFound(err):
		ns.Labels = map[string]string{fleetv1alpha1.MemberClusterLabel: s.member.Name}
		if err := controllerutil.SetControllerReference(s.member, ns, r.HubClient.Scheme()); err != nil {
			return err
		}
		if err := r.HubClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create hub namespace %s: %w", ns.Name, err)
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Created hub namespace", "namespace", ns.Name)
	case err != nil:
		return fmt.Errorf("get hub namespace %s: %w", ns.Name, err)
	case !metav1.IsControlledBy(ns, s.member):
		// A namespace of that name that we did not create is left alone; it still holds the
		// member's objects, but the user learns that it will not go with the MemberCluster.
		r.Recorder.Eventf(s.member, nil, corev1.EventTypeWarning, "NamespaceNotOwned", "Reconcile",
			"Hub namespace %s exists and is not owned by this MemberCluster; it will not be deleted with it", ns.Name)
	}
	s.member.Status.Namespace = ns.Name
	return nil
}

// reconcileConnection reads the kubeconfig and hands it to the member cache, which reconnects only
// when it changed; then it reads the latest probe result.
func (r *MemberClusterReconciler) reconcileConnection(ctx context.Context, s *scope) error {
	namespace, name, key := s.member.KubeconfigSecret()
	if name == "" {
		s.connReason, s.connMessage = fleetv1alpha1.InvalidKubeconfigReason,
			"Set exactly one of spec.kubeconfigSecretRef and spec.clusterRef."
		r.Members.Remove(s.member.Name)
		return nil
	}
	secret := &corev1.Secret{}
	if err := r.HubReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get kubeconfig Secret %s/%s: %w", namespace, name, err)
		}
		s.connReason = fleetv1alpha1.KubeconfigSecretNotFoundReason
		s.connMessage = fmt.Sprintf("Secret %s/%s, which should hold the member's kubeconfig, does not exist. Create it with the kubeconfig under key %q.", namespace, name, key)
		if s.member.Spec.ClusterRef != nil {
			s.connMessage = fmt.Sprintf("Secret %s/%s, which Cluster API writes once the control plane of Cluster %s/%s is initialised, does not exist yet.",
				namespace, name, s.member.Spec.ClusterRef.Namespace, s.member.Spec.ClusterRef.Name)
		}
		r.Members.Remove(s.member.Name)
		return nil
	}
	kubeconfig, ok := secret.Data[key]
	if !ok {
		s.connReason = fleetv1alpha1.InvalidKubeconfigReason
		s.connMessage = fmt.Sprintf("Secret %s/%s has no key %q. Put the member's kubeconfig under that key or set spec.kubeconfigSecretRef.key.", namespace, name, key)
		r.Members.Remove(s.member.Name)
		return nil
	}
	probe := s.member.Spec.Probe
	changed, err := r.Members.Ensure(s.member.Name, kubeconfig, membercache.Options{
		Interval: seconds(probe.IntervalSeconds, 15),
		Timeout:  seconds(probe.TimeoutSeconds, 5),
		// FailureThreshold 0 (not defaulted by the API server yet) is the cache's default.
		FailureThreshold: int(probe.FailureThreshold),
		QPS:              r.MemberQPS,
		Burst:            r.MemberBurst,
	})
	if err != nil {
		if membercache.IsInvalidKubeconfig(err) {
			// A terminal error: reported as a condition, logged, and not retried until the
			// Secret changes.
			ctrl.LoggerFrom(ctx).Error(err, "Kubeconfig cannot be used", "secret", klog.KRef(namespace, name), "key", key,
				"reason", fleetv1alpha1.InvalidKubeconfigReason)
			s.connReason = fleetv1alpha1.InvalidKubeconfigReason
			s.connMessage = fmt.Sprintf("The kubeconfig in Secret %s/%s key %q cannot be used: %v. Replace it with a kubeconfig whose current context reaches the member.",
				namespace, name, key, err.(*membercache.InvalidKubeconfigError).Err)
			return nil
		}
		return err
	}
	if changed {
		ctrl.LoggerFrom(ctx).Info("Connecting to member", "secret", klog.KRef(namespace, name))
	}
	s.health, s.connected = r.Members.Health(s.member.Name)
	return nil
}

func (r *MemberClusterReconciler) recordTransitions(before, after *fleetv1alpha1.MemberCluster) {
	was := conditionStatus(before, fleetv1alpha1.ReachableCondition)
	now := conditionStatus(after, fleetv1alpha1.ReachableCondition)
	if was == now {
		return
	}
	c := findCondition(after, fleetv1alpha1.ReachableCondition)
	switch now {
	case metav1.ConditionTrue:
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, "MemberReachable", "Probe", "Member cluster is reachable: %s", c.Message)
	case metav1.ConditionFalse:
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, c.Reason, "Probe", "%s", c.Message)
	}
}

func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

// SetupWithManager registers the reconciler with its watches: MemberClusters, their hub
// namespaces, the kubeconfig Secrets they name (by metadata only) and the probers' notices.
func (r *MemberClusterReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &fleetv1alpha1.MemberCluster{}, kubeconfigSecretIndex,
		func(o client.Object) []string {
			ns, name, _ := o.(*fleetv1alpha1.MemberCluster).KubeconfigSecret()
			if name == "" {
				return nil
			}
			return []string{ns + "/" + name}
		}); err != nil {
		return fmt.Errorf("index MemberClusters by kubeconfig Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1alpha1.MemberCluster{}).
		Owns(&corev1.Namespace{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.membersOfSecret), builder.OnlyMetadata).
		WatchesRawSource(source.Channel(r.ProbeEvents, &handler.TypedEnqueueRequestForObject[*fleetv1alpha1.MemberCluster]{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("membercluster").
		Complete(r)
}

func (r *MemberClusterReconciler) membersOfSecret(ctx context.Context, o client.Object) []ctrl.Request {
	list := &fleetv1alpha1.MemberClusterList{}
	if err := r.HubClient.List(ctx, list, client.MatchingFields{kubeconfigSecretIndex: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing MemberClusters of a kubeconfig Secret", "secret", klog.KObj(o))
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
	}
	return reqs
}
