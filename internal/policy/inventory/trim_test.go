package inventory

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"

	"github.com/meridian-io/meridian/internal/policy/compile"
)

func TestTrimPodKeepsOnlyWhatPolicyNeeds(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "db"}, Annotations: map[string]string{"big": "x"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status:     corev1.PodStatus{PodIP: "10.0.0.1", Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady}}},
	}
	o, _ := TrimPod(p)
	got := o.(*corev1.Pod)
	if got.Annotations != nil || got.ManagedFields != nil || len(got.Spec.Containers) != 0 || got.Status.Conditions != nil {
		t.Errorf("trimmed pod keeps more than needed: %+v", got)
	}
	if got.Labels["app"] != "db" || got.Status.PodIP != "10.0.0.1" || got.Namespace != "ns" || got.Status.Phase != corev1.PodRunning {
		t.Errorf("trimmed pod lost what policy needs: %+v", got)
	}
}

func crd(group, kind string, established bool, versions ...map[string]any) *unstructured.Unstructured {
	vs := make([]any, 0, len(versions))
	for _, v := range versions {
		vs = append(vs, v)
	}
	status := "False"
	if established {
		status = "True"
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": kind + "." + group},
		"spec":     map[string]any{"group": group, "names": map[string]any{"kind": kind}, "versions": vs, "schema": map[string]any{"huge": "x"}},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": status}}},
	}}
}

// The form follows the served versions of established CRDs only.
func TestServedKindsOfTrimmedCRDs(t *testing.T) {
	o, _ := TrimCRD(crd("policy.networking.k8s.io", "ClusterNetworkPolicy", true,
		map[string]any{"name": "v1alpha1", "served": false}, map[string]any{"name": "v1beta1", "served": true, "schema": map[string]any{}}))
	u := o.(*unstructured.Unstructured)
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "schema"); found {
		t.Error("trimmed CRD keeps its schema")
	}
	again, _ := TrimCRD(u)
	kinds := ServedKinds(again.(*unstructured.Unstructured))
	if len(kinds) != 1 || kinds[0] != compile.CNPKind {
		t.Errorf("served %v, want [%v]", kinds, compile.CNPKind)
	}
	o, _ = TrimCRD(crd("policy.networking.k8s.io", "ClusterNetworkPolicy", false, map[string]any{"name": "v1beta1", "served": true}))
	if kinds := ServedKinds(o.(*unstructured.Unstructured)); len(kinds) != 0 {
		t.Errorf("a CRD not established serves %v", kinds)
	}
}

// Antrea's CRD schema as members get it (internal/policy/translate/antrea) makes the Antrea form.
func TestAntreaCRDsChooseAntrea(t *testing.T) {
	served := map[schema.GroupVersionKind]bool{}
	for _, doc := range strings.Split(string(antrea.CRDs), "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil || len(u.Object) == 0 {
			continue
		}
		_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
		o, _ := TrimCRD(u)
		for _, k := range ServedKinds(o.(*unstructured.Unstructured)) {
			served[k] = true
		}
	}
	if f := compile.ChooseForm(served); f != policyv1alpha1.FormAntrea {
		t.Fatalf("form %s from %v, want Antrea", f, served)
	}
}
