package work

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"reflect"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// ObjectKey identifies an object in a member.
type ObjectKey struct {
	GroupKind schema.GroupKind
	Namespace string
	Name      string
}

func (k ObjectKey) String() string {
	gk := k.GroupKind.Kind
	if k.GroupKind.Group != "" {
		gk += "." + k.GroupKind.Group
	}
	if k.Namespace == "" {
		return gk + " " + k.Name
	}
	return gk + " " + k.Namespace + "/" + k.Name
}

// Manifest is one object of a Work, decoded and ready to apply.
type Manifest struct {
	Key     ObjectKey
	Version string
	// Object is the object as it will be applied: the Work's object plus Meridian's labels.
	Object *unstructured.Unstructured
	// Index is the object's position in spec.objects.
	Index int
	// Err says why the object cannot be applied (it is reported, the others go on).
	Err error
}

// GVK of the manifest.
func (m *Manifest) GVK() schema.GroupVersionKind {
	return m.Key.GroupKind.WithVersion(m.Version)
}

// Decode turns a Work's objects into Manifests, in apply order: CustomResourceDefinitions, then
// Namespaces, then the rest in the Work's order. An object that cannot be decoded keeps its place
// with Err set. Duplicates (same kind, namespace and name) are errors on every copy after the first.
func Decode(work *fleetv1alpha1.ClusterWork) []*Manifest {
	out := make([]*Manifest, 0, len(work.Spec.Objects))
	seen := map[ObjectKey]int{}
	for i, raw := range work.Spec.Objects {
		m := &Manifest{Index: i}
		out = append(out, m)
		obj := &unstructured.Unstructured{}
		if err := json.Unmarshal(raw.Raw, &obj.Object); err != nil {
			m.Err = fmt.Errorf("spec.objects[%d] is not a JSON object: %w", i, err)
			continue
		}
		gvk := obj.GroupVersionKind()
		m.Key = ObjectKey{GroupKind: gvk.GroupKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()}
		m.Version = gvk.Version
		switch {
		case gvk.Kind == "" || gvk.Version == "":
			m.Err = fmt.Errorf("spec.objects[%d] needs apiVersion and kind", i)
			continue
		case obj.GetName() == "":
			m.Err = fmt.Errorf("spec.objects[%d] (%s) needs metadata.name", i, gvk.Kind)
			continue
		case obj.GetGenerateName() != "":
			m.Err = fmt.Errorf("spec.objects[%d] (%s) uses metadata.generateName; give it a fixed metadata.name so that it can be tracked", i, gvk.Kind)
			continue
		}
		if ns := obj.GetNamespace(); ns != "" {
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				m.Err = fmt.Errorf("spec.objects[%d] (%s): metadata.namespace %q is not a namespace name: %s", i, m.Key, ns, msgs[0])
				continue
			}
		}
		if first, dup := seen[m.Key]; dup {
			m.Err = fmt.Errorf("spec.objects[%d] repeats %s of spec.objects[%d]; list each object once", i, m.Key, first)
			continue
		}
		seen[m.Key] = i
		m.Object = prepare(obj, work.Name)
	}
	sort.SliceStable(out, func(a, b int) bool { return applyRank(out[a]) < applyRank(out[b]) })
	return out
}

// prepare strips what a manifest must not carry and adds Meridian's ownership marks.
func prepare(obj *unstructured.Unstructured, workName string) *unstructured.Unstructured {
	obj = obj.DeepCopy()
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences"} {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	delete(obj.Object, "status")
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[fleetv1alpha1.ManagedByLabel] = fleetv1alpha1.ManagedByValue
	obj.SetLabels(labels)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[fleetv1alpha1.WorkAnnotation] = workName
	obj.SetAnnotations(ann)
	return obj
}

func applyRank(m *Manifest) int {
	switch m.Key.GroupKind {
	case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return 0
	case schema.GroupKind{Kind: "Namespace"}:
		return 1
	}
	return 2
}

// Digest is a short hash of a JSON-able value.
func Digest(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "unmarshalable:" + err.Error()
	}
	return digestOf(b)
}

// digestOf is the Digest of a value already marshalled to JSON.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// SameSpec says whether two ClusterWork specs ask for the same thing. Objects are compared as
// decoded JSON, not as bytes: the apiserver returns a Work's objects re-encoded (keys sorted,
// empty fields dropped), so a byte comparison would see a change on every pass.
func SameSpec(a, b fleetv1alpha1.ClusterWorkSpec) bool {
	if a.DeletionPolicy != b.DeletionPolicy || a.Adopt != b.Adopt || len(a.Objects) != len(b.Objects) ||
		!apiequality.Semantic.DeepEqual(a.StatusFeedback, b.StatusFeedback) {
		return false
	}
	for i := range a.Objects {
		var x, y any
		if json.Unmarshal(a.Objects[i].Raw, &x) != nil || json.Unmarshal(b.Objects[i].Raw, &y) != nil {
			return false
		}
		if !reflect.DeepEqual(dropEmpty(x), dropEmpty(y)) {
			return false
		}
	}
	return true
}

// dropEmpty removes nulls, empty objects and empty lists, which encode "unset" either way.
func dropEmpty(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range t {
			if e = dropEmpty(e); e != nil {
				out[k] = e
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(t) == 0 {
			return nil
		}
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = dropEmpty(e)
		}
		return out
	}
	return v
}
