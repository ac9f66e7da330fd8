package fleet

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/names"
)

// MemberNameAnnotation on a joining Cluster API Cluster chooses the name of its MemberCluster;
// without it the name is "<namespace>-<name>", with a short hash where that could be another
// Cluster's name or is too long (internal/names).
const MemberNameAnnotation = "meridian.io/member-name"

// ClusterDiscoveryReconciler turns Cluster API Clusters labelled meridian.io/join=true, once their
// control plane is initialised, into MemberClusters, and removes those MemberClusters when the
// Cluster or its label goes. It only ever deletes MemberClusters it created (labelled with the
// Cluster's namespace and name).
type ClusterDiscoveryReconciler struct {
	HubClient client.Client
	Recorder  events.EventRecorder
}

// +kubebuilder:rbac:groups=cluster.x-k8s.io,resources=clusters,verbs=get;list;watch

// Reconcile makes the MemberClusters discovered from one Cluster match it.
func (r *ClusterDiscoveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	existing := &fleetv1alpha1.MemberClusterList{}
	if err := r.HubClient.List(ctx, existing, client.MatchingLabels{
		fleetv1alpha1.DiscoveredClusterNamespaceLabel: req.Namespace,
		fleetv1alpha1.DiscoveredClusterNameLabel:      req.Name,
	}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list MemberClusters discovered from Cluster %s: %w", req, err)
	}

	cluster := &clusterv1.Cluster{}
	err := r.HubClient.Get(ctx, req.NamespacedName, cluster)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	found := err == nil
	wanted := found && cluster.DeletionTimestamp.IsZero() && cluster.Labels[fleetv1alpha1.JoinLabel] == "true" && controlPlaneInitialized(cluster)

	var keep string
	if wanted {
		name := memberNameFor(cluster, existing.Items)
		keep = name
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 || len(name) > fleetv1alpha1.MaxMemberClusterNameLength {
			r.Recorder.Eventf(cluster, nil, corev1.EventTypeWarning, "InvalidMemberName", "Join",
				"Cannot join as MemberCluster %q: the name must be a DNS label of at most %d characters; set annotation %s to a shorter name",
				name, fleetv1alpha1.MaxMemberClusterNameLength, MemberNameAnnotation)
			keep = ""
		} else if err := r.ensureMember(ctx, cluster, name); err != nil {
			return ctrl.Result{}, err
		}
	}

	for i := range existing.Items {
		m := &existing.Items[i]
		if m.Name == keep || !m.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.HubClient.Delete(ctx, m); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("delete MemberCluster %s discovered from Cluster %s: %w", m.Name, req, err)
		}
		ctrl.LoggerFrom(ctx).Info("Removed discovered MemberCluster", "MemberCluster", klog.KObj(m))
	}
	return ctrl.Result{}, nil
}

func (r *ClusterDiscoveryReconciler) ensureMember(ctx context.Context, cluster *clusterv1.Cluster, name string) error {
	member := &fleetv1alpha1.MemberCluster{}
	err := r.HubClient.Get(ctx, client.ObjectKey{Name: name}, member)
	switch {
	case err == nil:
		if member.Labels[fleetv1alpha1.DiscoveredClusterNamespaceLabel] != cluster.Namespace ||
			member.Labels[fleetv1alpha1.DiscoveredClusterNameLabel] != cluster.Name {
			r.Recorder.Eventf(cluster, nil, corev1.EventTypeWarning, "MemberNameTaken", "Join",
				"Cannot join as MemberCluster %q: a MemberCluster of that name exists and was not created for this Cluster; set annotation %s to another name",
				name, MemberNameAnnotation)
		}
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get MemberCluster %s: %w", name, err)
	}
	member = &fleetv1alpha1.MemberCluster{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				fleetv1alpha1.DiscoveredClusterNamespaceLabel: cluster.Namespace,
				fleetv1alpha1.DiscoveredClusterNameLabel:      cluster.Name,
			},
		},
		Spec: fleetv1alpha1.MemberClusterSpec{
			ClusterRef: &fleetv1alpha1.ClusterReference{Namespace: cluster.Namespace, Name: cluster.Name},
		},
	}
	if err := r.HubClient.Create(ctx, member); err != nil {
		return fmt.Errorf("create MemberCluster %s for Cluster %s: %w", name, klog.KObj(cluster), err)
	}
	ctrl.LoggerFrom(ctx).Info("Created MemberCluster for joining Cluster", "MemberCluster", klog.KObj(member))
	r.Recorder.Eventf(cluster, member, corev1.EventTypeNormal, "Joined", "Join", "Registered as MemberCluster %s", name)
	return nil
}

// memberNameFor names the MemberCluster of a joining Cluster: the annotation's name, else the
// Cluster's namespace and name joined so that two Clusters never share a name (namespace "a-b"
// name "c" and namespace "a" name "b-c"). existing are the MemberClusters already discovered for
// the Cluster: one that has the plain "<namespace>-<name>" of an older release keeps it, since
// renaming a MemberCluster would take the member out of the fleet and join it again.
func memberNameFor(c *clusterv1.Cluster, existing []fleetv1alpha1.MemberCluster) string {
	if n := c.Annotations[MemberNameAnnotation]; n != "" {
		return n
	}
	legacy := c.Namespace + "-" + c.Name
	for i := range existing {
		if existing[i].Name == legacy && existing[i].DeletionTimestamp.IsZero() {
			return legacy
		}
	}
	return names.Join(fleetv1alpha1.MaxMemberClusterNameLength, "", c.Namespace, c.Name)
}

func controlPlaneInitialized(c *clusterv1.Cluster) bool {
	if p := c.Status.Initialization.ControlPlaneInitialized; p != nil && *p {
		return true
	}
	return meta.IsStatusConditionTrue(c.Status.Conditions, clusterv1.ClusterControlPlaneInitializedCondition)
}

// SetupWithManager registers the reconciler. Both kinds are watched: a Cluster's own changes,
// and a discovered MemberCluster deleted by hand (it comes back while the Cluster still joins).
func (r *ClusterDiscoveryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&clusterv1.Cluster{}).
		Watches(&fleetv1alpha1.MemberCluster{}, enqueueDiscoveringCluster()).
		Named("clusterdiscovery").
		Complete(r)
}
