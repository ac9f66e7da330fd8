package fleet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/argocd"
	"github.com/meridian-io/meridian/internal/membercache"
)

// ArgoCDClusterReconciler keeps an Argo CD cluster Secret in Namespace for each Ready
// MemberCluster (internal/argocd says what it holds and when it goes). It reads the member's
// kubeconfig from the hub and never talks to the member.
type ArgoCDClusterReconciler struct {
	HubClient client.Client
	// HubReader reads Secrets whole (the manager caches them by metadata only).
	HubReader client.Reader
	// Members tells whether the member's current kubeconfig has been probed successfully.
	Members  *membercache.Cache
	Recorder events.EventRecorder
	// HealthEvents queues a member whose probe result changed (its new credentials may just
	// have been verified).
	HealthEvents <-chan event.TypedGenericEvent[*fleetv1alpha1.MemberCluster]
	// Namespace is Argo CD's namespace, where the cluster Secrets go.
	Namespace string
	// Grace is how long a member may stay unready before its Secret is removed.
	Grace time.Duration
	Clock clock.Clock
}

// Reconcile writes, keeps or deletes the member's Argo CD cluster Secret. The request names the
// MemberCluster.
func (r *ArgoCDClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &fleetv1alpha1.MemberCluster{}
	if err := r.HubClient.Get(ctx, req.NamespacedName, mc); apierrors.IsNotFound(err) {
		mc = nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: argocd.SecretName(req.Name)}
	log := ctrl.LoggerFrom(ctx).WithValues("secret", key)
	live := &corev1.Secret{}
	if err := r.HubReader.Get(ctx, key, live); apierrors.IsNotFound(err) {
		live = nil
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("get Argo CD cluster Secret %s: %w", key, err)
	}
	if live != nil && !argocd.Owned(live) {
		if mc != nil {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, "ArgoCDSecretNotOwned", "ArgoCDClusterSecret",
				"Secret %s exists and was not written by Meridian; it is left alone. Delete or rename it to let Meridian register the member with Argo CD.", key)
		}
		return ctrl.Result{}, nil
	}

	action, requeue := argocd.Decide(mc, r.Clock.Now(), r.Grace)
	switch action {
	case argocd.Delete:
		if live == nil {
			return ctrl.Result{}, nil
		}
		if err := r.HubClient.Delete(ctx, live, client.Preconditions{UID: &live.UID}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete Argo CD cluster Secret %s: %w", key, err)
		}
		log.Info("Removed the Argo CD cluster Secret")
		if mc != nil {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "ArgoCDClusterRemoved", "ArgoCDClusterSecret",
				"Removed Argo CD cluster Secret %s: the member has not been Ready for %s.", key, r.Grace)
		}
		return ctrl.Result{}, nil
	case argocd.Keep:
		return ctrl.Result{RequeueAfter: requeue}, nil
	}

	kubeconfig, cfg, err := r.kubeconfig(ctx, mc)
	if err == nil && !r.Members.Verified(mc.Name, kubeconfig) {
		// Ready describes the credentials the member cache has probed; these are new (or not
		// probed yet): keep what Argo CD has until the probe says they work.
		log.V(1).Info("Waiting for the member's kubeconfig to be probed")
		return ctrl.Result{}, nil
	}
	if err != nil {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, "ArgoCDClusterNotWritten", "ArgoCDClusterSecret",
			"The member is not registered with Argo CD: %v.", err)
		return ctrl.Result{}, nil // a new kubeconfig or MemberCluster queues it again
	}
	desired, err := argocd.Secret(mc, cfg, r.Namespace)
	if err != nil {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, "ArgoCDClusterNotWritten", "ArgoCDClusterSecret",
			"The member is not registered with Argo CD: %v.", err)
		return ctrl.Result{}, nil
	}
	if live == nil {
		if err := r.HubClient.Create(ctx, desired); err != nil {
			return ctrl.Result{}, fmt.Errorf("create Argo CD cluster Secret %s: %w", key, err)
		}
		log.Info("Wrote the Argo CD cluster Secret")
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "ArgoCDClusterRegistered", "ArgoCDClusterSecret",
			"Registered the member with Argo CD as Secret %s.", key)
		return ctrl.Result{}, nil
	}
	if !argocd.Differs(live, desired) {
		return ctrl.Result{}, nil
	}
	updated := live.DeepCopy()
	updated.Type, updated.Data, updated.Labels = desired.Type, desired.Data, desired.Labels
	if err := r.HubClient.Update(ctx, updated); err != nil {
		return ctrl.Result{}, fmt.Errorf("update Argo CD cluster Secret %s: %w", key, err)
	}
	log.Info("Updated the Argo CD cluster Secret")
	return ctrl.Result{}, nil
}

// kubeconfig reads the member's kubeconfig from the Secret the MemberCluster names.
func (r *ArgoCDClusterReconciler) kubeconfig(ctx context.Context, mc *fleetv1alpha1.MemberCluster) ([]byte, *rest.Config, error) {
	namespace, name, key := mc.KubeconfigSecret()
	if name == "" {
		return nil, nil, fmt.Errorf("the MemberCluster names no kubeconfig Secret")
	}
	secret := &corev1.Secret{}
	if err := r.HubReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
		return nil, nil, fmt.Errorf("read kubeconfig Secret %s/%s: %w", namespace, name, err)
	}
	cfg, err := membercache.RESTConfigFromKubeconfig(secret.Data[key])
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig Secret %s/%s key %q: %w", namespace, name, key, err)
	}
	return secret.Data[key], cfg, nil
}

// SetupWithManager registers the reconciler. It must run after the MemberCluster controller's,
// whose index of MemberClusters by kubeconfig Secret it reads. A MemberCluster's changes, its
// kubeconfig Secret's and its Argo CD Secret's (edited or deleted by hand) queue it.
func (r *ArgoCDClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&fleetv1alpha1.MemberCluster{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.membersOfSecret), builder.OnlyMetadata).
		WatchesRawSource(source.Channel(r.HealthEvents, &handler.TypedEnqueueRequestForObject[*fleetv1alpha1.MemberCluster]{})).
		Named("argocdcluster").
		Complete(r)
}

// membersOfSecret maps a Meridian-written Argo CD Secret to its member, and a kubeconfig Secret
// to the members that use it.
func (r *ArgoCDClusterReconciler) membersOfSecret(ctx context.Context, o client.Object) []ctrl.Request {
	if o.GetNamespace() == r.Namespace && o.GetLabels()[argocd.ManagedByLabel] == argocd.ManagedBy {
		if m := o.GetLabels()[argocd.MemberLabel]; m != "" {
			return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: m}}}
		}
	}
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
