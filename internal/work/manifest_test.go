package work

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func workOf(t *testing.T, objs ...string) *fleetv1alpha1.ClusterWork {
	t.Helper()
	w := &fleetv1alpha1.ClusterWork{}
	w.Name = "w"
	for _, o := range objs {
		w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: []byte(o)}})
	}
	return w
}

func TestDecodeOrdersAndMarks(t *testing.T) {
	ms := Decode(workOf(t,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns","resourceVersion":"7","uid":"x"},"status":{"a":1}}`,
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns"}}`,
		`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"things.example.com"}}`,
	))
	var order []string
	for _, m := range ms {
		if m.Err != nil {
			t.Fatalf("unexpected error: %v", m.Err)
		}
		order = append(order, m.Key.GroupKind.Kind)
	}
	if got := strings.Join(order, ","); got != "CustomResourceDefinition,Namespace,ConfigMap" {
		t.Fatalf("apply order = %s", got)
	}
	cm := ms[2]
	if cm.Index != 0 {
		t.Errorf("index = %d, want 0", cm.Index)
	}
	if cm.Object.GetResourceVersion() != "" || cm.Object.GetUID() != "" || cm.Object.Object["status"] != nil {
		t.Errorf("server-owned fields kept: %v", cm.Object.Object)
	}
	if cm.Object.GetLabels()[fleetv1alpha1.ManagedByLabel] != fleetv1alpha1.ManagedByValue || cm.Object.GetAnnotations()[fleetv1alpha1.WorkAnnotation] != "w" {
		t.Errorf("ownership marks missing: %v", cm.Object.Object["metadata"])
	}
}

func TestDecodeReportsBadObjects(t *testing.T) {
	tests := map[string]string{
		`[1,2]`: "is not a JSON object",
		`{"kind":"ConfigMap","metadata":{"name":"c"}}`:                                        "needs apiVersion and kind",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}`:                                "needs metadata.name",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"c-"}}`:             "needs metadata.name",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"Bad_NS"}}`: "is not a namespace name",
	}
	for obj, want := range tests {
		ms := Decode(workOf(t, obj))
		if ms[0].Err == nil || !strings.Contains(ms[0].Err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", obj, ms[0].Err, want)
		}
	}
	ms := Decode(workOf(t, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"n"}}`, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"n"}}`))
	if ms[0].Err != nil || ms[1].Err == nil || !strings.Contains(ms[1].Err.Error(), "repeats") {
		t.Errorf("duplicate: %v / %v", ms[0].Err, ms[1].Err)
	}
}

func mustMap(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestProjectIgnoresWhatTheWorkDoesNotSet(t *testing.T) {
	desired := mustMap(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","labels":{"a":"1"}},
		"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","image":"i:1"}]}}}}`)
	live := mustMap(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","resourceVersion":"9","labels":{"a":"1","other":"x"}},
		"spec":{"replicas":2,"progressDeadlineSeconds":600,"template":{"spec":{"containers":[{"name":"c","image":"i:1","imagePullPolicy":"IfNotPresent"}]}}},
		"status":{"readyReplicas":1}}`)
	if Digest(Project(desired, live)) != Digest(Project(desired, desired)) {
		t.Fatalf("defaults, status and other labels changed the projection:\n%v\n%v", Project(desired, live), Project(desired, desired))
	}

	for name, edit := range map[string]func(m map[string]any){
		"a set field changed":     func(m map[string]any) { m["spec"].(map[string]any)["replicas"] = 3.0 },
		"a set label removed":     func(m map[string]any) { delete(m["metadata"].(map[string]any)["labels"].(map[string]any), "a") },
		"a list item changed":     func(m map[string]any) { containers(m)[0].(map[string]any)["image"] = "i:2" },
		"a list item added":       func(m map[string]any) { setContainers(m, append(containers(m), map[string]any{"name": "x"})) },
		"a set field went absent": func(m map[string]any) { delete(m["spec"].(map[string]any), "replicas") },
	} {
		t.Run(name, func(t *testing.T) {
			changed := mustMap(t, mustJSON(live))
			edit(changed)
			if Digest(Project(desired, changed)) == Digest(Project(desired, live)) {
				t.Fatal("projection did not change")
			}
		})
	}
}

func containers(m map[string]any) []any {
	return m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
}

func setContainers(m map[string]any, c []any) {
	m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"] = c
}

func TestReadPath(t *testing.T) {
	obj := mustMap(t, `{"status":{"numberReady":3,"conditions":[{"type":"A","status":"True"}],"name":"x"}}`)
	for path, want := range map[string]string{
		".status.numberReady": "3",
		".status.name":        `"x"`,
		".status.missing":     "",
		`.status.conditions[?(@.type=="A")].status`: `"True"`,
	} {
		if got := readPath(obj, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if got := readPath(obj, ".status[["); !strings.HasPrefix(got, "invalid jsonPath") {
		t.Errorf("bad path = %q", got)
	}
}

func TestSameSpec(t *testing.T) {
	spec := func(raw ...string) fleetv1alpha1.ClusterWorkSpec {
		s := fleetv1alpha1.ClusterWorkSpec{DeletionPolicy: fleetv1alpha1.DeletionPolicyDelete}
		for _, r := range raw {
			s.Objects = append(s.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: []byte(r)}})
		}
		return s
	}
	sent := `{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"a","creationTimestamp":null,"labels":{"x":"1"}},"spec":{},"status":{}}`
	stored := `{"apiVersion":"v1","kind":"Namespace","metadata":{"labels":{"x":"1"},"name":"a"}}`
	if !SameSpec(spec(sent), spec(stored)) {
		t.Error("re-encoded object with empty fields dropped should be the same")
	}
	if SameSpec(spec(sent), spec(`{"apiVersion":"v1","kind":"Namespace","metadata":{"labels":{"x":"2"},"name":"a"}}`)) {
		t.Error("a changed label should differ")
	}
	if SameSpec(spec(sent), spec(sent, stored)) {
		t.Error("another object should differ")
	}
	other := spec(sent)
	other.Adopt = true
	if SameSpec(spec(sent), other) {
		t.Error("adopt should differ")
	}
}
