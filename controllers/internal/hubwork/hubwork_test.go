package hubwork

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestWriteWorkWritesOnlyDifferences(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := fleetv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			writes++
			return c.Create(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			writes++
			return c.Patch(ctx, o, p, opts...)
		},
	}).Build()
	ctx := context.Background()
	desired := func() *fleetv1alpha1.ClusterWork {
		return &fleetv1alpha1.ClusterWork{
			ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-m1", Name: "w", Labels: map[string]string{"a": "1"},
				Annotations:     map[string]string{"rev": "1"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "X", Name: "x", UID: types.UID("u1")}}},
			Spec: fleetv1alpha1.ClusterWorkSpec{DeletionPolicy: fleetv1alpha1.DeletionPolicyDelete},
		}
	}
	got, err := WriteWork(ctx, c, desired(), nil)
	if err != nil || writes != 1 {
		t.Fatalf("create: %v, %d writes", err, writes)
	}
	current := &fleetv1alpha1.ClusterWork{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(got), current); err != nil {
		t.Fatal(err)
	}
	current.Labels["added-by-someone"] = "x"
	if err := c.Update(ctx, current); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteWork(ctx, c, desired(), current); err != nil || writes != 1 {
		t.Errorf("same Work, extra label: %v, %d writes; want no write", err, writes)
	}
	for name, change := range map[string]func(*fleetv1alpha1.ClusterWork){
		"spec":       func(w *fleetv1alpha1.ClusterWork) { w.Spec.DeletionPolicy = fleetv1alpha1.DeletionPolicyOrphan },
		"label":      func(w *fleetv1alpha1.ClusterWork) { w.Labels["a"] = "2" },
		"annotation": func(w *fleetv1alpha1.ClusterWork) { w.Annotations["rev"] = "2" },
		"owner":      func(w *fleetv1alpha1.ClusterWork) { w.OwnerReferences[0].UID = "u2" },
	} {
		before := writes
		d := desired()
		change(d)
		updated, err := WriteWork(ctx, c, d, current)
		if err != nil || writes != before+1 {
			t.Errorf("%s changed: %v, %d writes; want one", name, err, writes-before)
			continue
		}
		if updated.Labels["added-by-someone"] != "x" {
			t.Errorf("%s changed: another's label was dropped", name)
		}
		current = updated
	}
}

func TestMappers(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := fleetv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&fleetv1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		&fleetv1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
	).Build()
	reqs := All(c, func() client.ObjectList { return &fleetv1alpha1.AgentConfigList{} }, "AgentConfigs")(context.Background(), nil)
	if len(reqs) != 2 || reqs[0].Name != "a" || reqs[1].Name != "b" {
		t.Errorf("All = %v", reqs)
	}
	by := ByLabel(fleetv1alpha1.AgentConfigLabel)
	w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{fleetv1alpha1.AgentConfigLabel: "a"}}}
	if reqs := by(context.Background(), w); len(reqs) != 1 || reqs[0].Name != "a" || reqs[0].Namespace != "" {
		t.Errorf("ByLabel = %v", reqs)
	}
	if reqs := by(context.Background(), &fleetv1alpha1.ClusterWork{}); reqs != nil {
		t.Errorf("ByLabel without the label = %v", reqs)
	}
}

func TestExistingIsTheHubsCopyOnlyWhenItIsTheSameWork(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := fleetv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	work := func(owner string) *fleetv1alpha1.ClusterWork {
		return &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-m1", Name: "w",
			Labels: map[string]string{"owner": owner, fleetv1alpha1.MemberClusterLabel: "m1"}}}
	}
	hub := fake.NewClientBuilder().WithScheme(scheme).WithObjects(work("a")).Build()
	if got, err := Existing(ctx, hub, work("a"), "owner", fleetv1alpha1.MemberClusterLabel); err != nil || got.ResourceVersion == "" {
		t.Errorf("same owner: %v, %v; want the hub's copy", got, err)
	}
	if _, err := Existing(ctx, hub, work("b"), "owner", fleetv1alpha1.MemberClusterLabel); !errors.Is(err, ErrNameTaken) {
		t.Errorf("another owner: %v; want ErrNameTaken", err)
	}
	if _, err := Existing(ctx, fake.NewClientBuilder().WithScheme(scheme).Build(), work("a"), "owner"); !apierrors.IsNotFound(err) {
		t.Errorf("gone meanwhile: %v; want NotFound", err)
	}
}
