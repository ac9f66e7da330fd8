package globalns

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/conditions"
)

// SetStatus writes the per-cluster report and the kstatus conditions: Ready is True only when
// the namespace is applied in every selected cluster and no cluster is being cleaned up; Stalled
// is True when progress needs a person (a conflict or a refused namespace); Reconciling is True
// while Meridian is still working (pending, unreachable or leaving clusters). Never both.
//
// passErr is what went wrong in this pass (writing or deleting Works): the pass is retried, so
// the GlobalNamespace is Reconciling and not Ready, and observedGeneration does not move.
func SetStatus(g *netv1alpha1.GlobalNamespace, clusters []netv1alpha1.ClusterNamespaceStatus, passErr error) {
	sort.Slice(clusters, func(a, b int) bool { return clusters[a].Cluster < clusters[b].Cluster })
	g.Status.Clusters = clusters
	count := map[netv1alpha1.ClusterNamespaceState][]string{}
	selected := 0
	for _, c := range clusters {
		count[c.State] = append(count[c.State], c.Cluster)
		if c.State != netv1alpha1.ClusterNamespaceRemoving {
			selected++
		}
	}
	applied := len(count[netv1alpha1.ClusterNamespaceApplied])
	g.Status.Summary = fmt.Sprintf("%d/%d", applied, selected)

	first := func(state netv1alpha1.ClusterNamespaceState) string {
		for _, c := range clusters {
			if c.State == state {
				return fmt.Sprintf("%s: %s", c.Cluster, c.Message)
			}
		}
		return ""
	}
	list := func(state netv1alpha1.ClusterNamespaceState) string { return strings.Join(count[state], ", ") }

	var stalledReason, stalledMsg, progressReason, progressMsg string
	switch {
	case len(count[netv1alpha1.ClusterNamespaceConflict]) > 0:
		stalledReason = netv1alpha1.ConflictReason
		stalledMsg = fmt.Sprintf("The namespace exists and may not be taken over in %s (set spec.adopt to take it over). %s", list(netv1alpha1.ClusterNamespaceConflict), first(netv1alpha1.ClusterNamespaceConflict))
	case len(count[netv1alpha1.ClusterNamespaceFailed]) > 0:
		stalledReason = netv1alpha1.ApplyFailedReason
		stalledMsg = fmt.Sprintf("The member refused the namespace in %s. %s", list(netv1alpha1.ClusterNamespaceFailed), first(netv1alpha1.ClusterNamespaceFailed))
	}
	switch {
	case len(count[netv1alpha1.ClusterNamespacePending]) > 0:
		progressReason = netv1alpha1.ApplyPendingReason
		progressMsg = fmt.Sprintf("Applying the namespace in %s.", list(netv1alpha1.ClusterNamespacePending))
	case len(count[netv1alpha1.ClusterNamespaceUnreachable]) > 0:
		progressReason = netv1alpha1.MembersUnreachableReason
		progressMsg = fmt.Sprintf("Waiting for unreachable clusters: %s. %s", list(netv1alpha1.ClusterNamespaceUnreachable), first(netv1alpha1.ClusterNamespaceUnreachable))
	case len(count[netv1alpha1.ClusterNamespaceRemoving]) > 0:
		progressReason = netv1alpha1.RemovingReason
		progressMsg = fmt.Sprintf("Carrying out deletion policy %s in clusters that left the placement: %s.", g.Spec.DeletionPolicy, list(netv1alpha1.ClusterNamespaceRemoving))
	}

	switch {
	case passErr != nil:
		msg := fmt.Sprintf("Could not bring the ClusterWorks in line with the spec; retrying: %v", passErr)
		set(g, netv1alpha1.StalledCondition, metav1.ConditionFalse, netv1alpha1.WorkWriteFailedReason, "No conflict or refusal.")
		set(g, netv1alpha1.ReconcilingCondition, metav1.ConditionTrue, netv1alpha1.WorkWriteFailedReason, msg)
		set(g, netv1alpha1.ReadyCondition, metav1.ConditionFalse, netv1alpha1.WorkWriteFailedReason, msg)
		return // observedGeneration stays: this generation is not carried out yet
	case stalledReason != "":
		set(g, netv1alpha1.StalledCondition, metav1.ConditionTrue, stalledReason, stalledMsg)
		set(g, netv1alpha1.ReconcilingCondition, metav1.ConditionFalse, stalledReason, "Progress needs a change to the GlobalNamespace or the member.")
		set(g, netv1alpha1.ReadyCondition, metav1.ConditionFalse, stalledReason, stalledMsg)
	case progressReason != "":
		set(g, netv1alpha1.StalledCondition, metav1.ConditionFalse, progressReason, "No conflict or refusal.")
		set(g, netv1alpha1.ReconcilingCondition, metav1.ConditionTrue, progressReason, progressMsg)
		set(g, netv1alpha1.ReadyCondition, metav1.ConditionFalse, progressReason, progressMsg)
	case selected == 0:
		msg := "The placement selects no MemberCluster."
		set(g, netv1alpha1.StalledCondition, metav1.ConditionFalse, netv1alpha1.NoClustersReason, "No conflict or refusal.")
		set(g, netv1alpha1.ReconcilingCondition, metav1.ConditionFalse, netv1alpha1.NoClustersReason, msg)
		set(g, netv1alpha1.ReadyCondition, metav1.ConditionTrue, netv1alpha1.NoClustersReason, msg)
	default:
		msg := fmt.Sprintf("The namespace exists in all %d selected clusters.", selected)
		set(g, netv1alpha1.StalledCondition, metav1.ConditionFalse, netv1alpha1.AllAppliedReason, "No conflict or refusal.")
		set(g, netv1alpha1.ReconcilingCondition, metav1.ConditionFalse, netv1alpha1.AllAppliedReason, msg)
		set(g, netv1alpha1.ReadyCondition, metav1.ConditionTrue, netv1alpha1.AllAppliedReason, msg)
	}
	g.Status.ObservedGeneration = g.Generation
}

// SetDeleting reports a GlobalNamespace whose member namespaces are being cleaned up.
func SetDeleting(g *netv1alpha1.GlobalNamespace, clusters []netv1alpha1.ClusterNamespaceStatus) {
	sort.Slice(clusters, func(a, b int) bool { return clusters[a].Cluster < clusters[b].Cluster })
	g.Status.Clusters = clusters
	names := make([]string, 0, len(clusters))
	for _, c := range clusters {
		names = append(names, c.Cluster)
	}
	msg := fmt.Sprintf("Carrying out deletion policy %s in %s.", g.Spec.DeletionPolicy, strings.Join(names, ", "))
	set(g, netv1alpha1.StalledCondition, metav1.ConditionFalse, netv1alpha1.DeletingReason, "No conflict or refusal.")
	set(g, netv1alpha1.ReconcilingCondition, metav1.ConditionTrue, netv1alpha1.DeletingReason, msg)
	set(g, netv1alpha1.ReadyCondition, metav1.ConditionFalse, netv1alpha1.DeletingReason, msg)
}

func set(g *netv1alpha1.GlobalNamespace, t string, s metav1.ConditionStatus, reason, msg string) {
	conditions.Set(&g.Status.Conditions, metav1.Condition{
		Type: t, Status: s, Reason: reason, Message: strings.TrimSpace(msg), ObservedGeneration: g.Generation,
	})
}
