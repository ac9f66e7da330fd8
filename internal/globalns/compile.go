package globalns

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/names"
	"github.com/meridian-io/meridian/internal/placement"
)

// Select returns the names of the MemberClusters the placement selects, sorted. A MemberCluster
// being deleted is not selected.
func Select(g *netv1alpha1.GlobalNamespace, members []fleetv1alpha1.MemberCluster) ([]string, error) {
	return placement.Select(g.Spec.Placement, members)
}

// WorkName is the name of the ClusterWork that carries the GlobalNamespace to a member:
// gns-<name>, shortened with a hash when that would be too long.
func WorkName(g *netv1alpha1.GlobalNamespace) string {
	return names.Join(names.DNSSubdomain, netv1alpha1.WorkNamePrefix, g.Name)
}

// DesiredWork is the ClusterWork that puts the GlobalNamespace's namespace into one member.
func DesiredWork(g *netv1alpha1.GlobalNamespace, member string) (*fleetv1alpha1.ClusterWork, error) {
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: g.NamespaceIn(member), Labels: map[string]string{}},
	}
	for k, v := range g.Spec.Labels {
		ns.Labels[k] = v
	}
	ns.Labels[netv1alpha1.GlobalNamespaceLabel] = g.Name
	if len(g.Spec.Annotations) > 0 {
		ns.Annotations = map[string]string{}
		for k, v := range g.Spec.Annotations {
			ns.Annotations[k] = v
		}
	}
	raw, err := json.Marshal(ns)
	if err != nil {
		return nil, err
	}
	policy := fleetv1alpha1.DeletionPolicyOrphan
	if g.Spec.DeletionPolicy == netv1alpha1.NamespaceDelete {
		policy = fleetv1alpha1.DeletionPolicyDelete
	}
	return &fleetv1alpha1.ClusterWork{
		ObjectMeta: metav1.ObjectMeta{
			Name:      WorkName(g),
			Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + member,
			Labels: map[string]string{
				netv1alpha1.GlobalNamespaceLabel: g.Name,
				fleetv1alpha1.MemberClusterLabel: member,
			},
			// Set at creation, the syncer need not add it with a write of its own.
			Finalizers: []string{fleetv1alpha1.WorkFinalizer},
		},
		Spec: fleetv1alpha1.ClusterWorkSpec{
			Objects:        []fleetv1alpha1.WorkObject{{RawExtension: runtime.RawExtension{Raw: raw}}},
			DeletionPolicy: policy,
			Adopt:          g.Spec.Adopt,
		},
	}, nil
}

// ClusterState reads where the namespace stands in a member from the Work that carries it. A nil
// Work is one not created yet.
func ClusterState(w *fleetv1alpha1.ClusterWork) (netv1alpha1.ClusterNamespaceState, string) {
	switch {
	case w == nil:
		return netv1alpha1.ClusterNamespacePending, "The ClusterWork for this cluster is not created yet."
	case !w.DeletionTimestamp.IsZero():
		return netv1alpha1.ClusterNamespaceRemoving, "The cluster left the placement; carrying out the deletion policy."
	}
	applied := findCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
	if applied != nil && applied.Status == metav1.ConditionUnknown {
		return netv1alpha1.ClusterNamespaceUnreachable, applied.Message
	}
	if w.Status.ObservedGeneration != w.Generation || len(w.Status.Objects) == 0 {
		return netv1alpha1.ClusterNamespacePending, "Waiting for the work syncer."
	}
	o := w.Status.Objects[0]
	switch o.State {
	case fleetv1alpha1.ObjectApplied:
		return netv1alpha1.ClusterNamespaceApplied, ""
	case fleetv1alpha1.ObjectConflict:
		return netv1alpha1.ClusterNamespaceConflict, o.Message
	case fleetv1alpha1.ObjectFailed:
		return netv1alpha1.ClusterNamespaceFailed, o.Message
	}
	return netv1alpha1.ClusterNamespacePending, o.Message
}

func findCondition(cs []metav1.Condition, t string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// DNSNames are the names an imported service answers to in the members: the cluster set's
// <service>.<namespace>.svc.clusterset.local, and <service>.<domain> when the GlobalNamespace
// sets a domain.
func DNSNames(service, namespace, domain string) []string {
	out := []string{service + "." + namespace + ".svc.clusterset.local"}
	if domain != "" {
		out = append(out, service+"."+domain)
	}
	return out
}

// Released is the Work that leaves a retained namespace to its member: the same namespace
// without the GlobalNamespace's label, so that once it is applied, deleting the Work (policy
// Orphan) leaves nothing that still names the GlobalNamespace. It returns nil when w already
// carries no label, or does not retain its namespace.
func Released(w *fleetv1alpha1.ClusterWork) (*fleetv1alpha1.ClusterWork, error) {
	if w.Spec.DeletionPolicy != fleetv1alpha1.DeletionPolicyOrphan || len(w.Spec.Objects) != 1 {
		return nil, nil
	}
	ns := &corev1.Namespace{}
	if err := json.Unmarshal(w.Spec.Objects[0].Raw, ns); err != nil {
		return nil, fmt.Errorf("read the namespace of ClusterWork %s/%s: %w", w.Namespace, w.Name, err)
	}
	if _, ok := ns.Labels[netv1alpha1.GlobalNamespaceLabel]; !ok {
		return nil, nil
	}
	delete(ns.Labels, netv1alpha1.GlobalNamespaceLabel)
	raw, err := json.Marshal(ns)
	if err != nil {
		return nil, err
	}
	out := w.DeepCopy()
	out.Spec.Objects = []fleetv1alpha1.WorkObject{{RawExtension: runtime.RawExtension{Raw: raw}}}
	return out, nil
}

// ReleaseDone says whether a retained namespace's Work may be deleted: its namespace no longer
// carries the label in the member, or was never Meridian's there (a conflict or refusal).
func ReleaseDone(w *fleetv1alpha1.ClusterWork) bool {
	switch state, _ := ClusterState(w); state {
	case netv1alpha1.ClusterNamespaceApplied, netv1alpha1.ClusterNamespaceConflict, netv1alpha1.ClusterNamespaceFailed:
		return true
	}
	return false
}

// NextWork is the Work to write for a member now, given the one on the hub (current, nil when
// there is none) and the one the GlobalNamespace wants. When desired gives a retained namespace
// another name (an override or spec.namespaceName changed), the old namespace is released first,
// as a deleted GlobalNamespace's is: current is rewritten without the GlobalNamespace's label,
// and desired follows once that is applied, so that the Work, no longer listing the old
// namespace, leaves it to the member carrying nothing that names the GlobalNamespace. Meanwhile
// releasing names the old namespace, and next is nil while there is nothing to write.
func NextWork(current, desired *fleetv1alpha1.ClusterWork) (next *fleetv1alpha1.ClusterWork, releasing string, err error) {
	if current == nil || desired.Spec.DeletionPolicy != fleetv1alpha1.DeletionPolicyOrphan {
		return desired, "", nil
	}
	have, err := namespaceOf(current)
	if err != nil {
		return nil, "", err
	}
	want, err := namespaceOf(desired)
	if err != nil {
		return nil, "", err
	}
	if have == "" || have == want {
		return desired, "", nil
	}
	// The old namespace's fate is decided by the policy the Work will have when it drops it.
	old := current.DeepCopy()
	old.Spec.DeletionPolicy = desired.Spec.DeletionPolicy
	released, err := Released(old)
	switch {
	case err != nil:
		return nil, "", err
	case released != nil:
		return released, have, nil
	case !ReleaseDone(current):
		return nil, have, nil
	}
	return desired, "", nil
}

// namespaceOf is the name of the namespace a GlobalNamespace's Work lists ("" when none).
func namespaceOf(w *fleetv1alpha1.ClusterWork) (string, error) {
	if len(w.Spec.Objects) != 1 {
		return "", nil
	}
	ns := &metav1.PartialObjectMetadata{}
	if err := json.Unmarshal(w.Spec.Objects[0].Raw, ns); err != nil {
		return "", fmt.Errorf("read the namespace of ClusterWork %s/%s: %w", w.Namespace, w.Name, err)
	}
	return ns.Name, nil
}
