package inventory

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TrimPod keeps of a pod what policy needs: namespace, name, labels, address and phase.
func TrimPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion, Labels: p.Labels},
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP},
	}, nil
}

// TrimNamespace keeps a namespace's name and labels.
func TrimNamespace(o any) (any, error) {
	n, ok := o.(*corev1.Namespace)
	if !ok {
		return o, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels}}, nil
}

// TrimCRD keeps of a CustomResourceDefinition its group, kind, served versions and whether it
// is established: the kinds the member serves.
func TrimCRD(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	if _, trimmed, _ := unstructured.NestedBool(u.Object, "spec", "established"); trimmed {
		return u, nil // informers may hand a trimmed object in again: transforms are idempotent
	}
	out := &unstructured.Unstructured{Object: map[string]any{}}
	out.SetAPIVersion(u.GetAPIVersion())
	out.SetKind(u.GetKind())
	out.SetName(u.GetName())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
	var versions []any
	vs, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok && m["served"] == true {
			versions = append(versions, m["name"])
		}
	}
	established := false
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			established = true
		}
	}
	out.Object["spec"] = map[string]any{"group": group, "kind": kind, "versions": versions, "established": established}
	return out, nil
}

// ServedKinds lists the kinds a trimmed CRD serves once it is established.
func ServedKinds(u *unstructured.Unstructured) []schema.GroupVersionKind {
	if est, _, _ := unstructured.NestedBool(u.Object, "spec", "established"); !est {
		return nil
	}
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "kind")
	vs, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	var out []schema.GroupVersionKind
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, schema.GroupVersionKind{Group: group, Version: s, Kind: kind})
		}
	}
	return out
}
