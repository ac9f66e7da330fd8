package work

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// A pass takes its Work from a cache of whole Works only when that cache holds the version the
// metadata cache queued; otherwise it reads the hub, at that version.
func TestReadWorkFromAWholeCacheOnlyAtTheQueuedVersion(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := fleetv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	work := func(rv, manifest string) *fleetv1alpha1.ClusterWork {
		w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: "meridian-member-m1", Name: "w", ResourceVersion: rv}}
		w.Spec.Objects = []fleetv1alpha1.WorkObject{{RawExtension: runtime.RawExtension{Raw: []byte(manifest)}}}
		return w
	}
	// The fake clients give an object made without a version the same one: the hub's and a
	// cache's copy made so are at one version. The hub plays the metadata cache too.
	hub := fake.NewClientBuilder().WithScheme(scheme).WithObjects(work("", `{"v":"hub"}`)).Build()
	onHub := &fleetv1alpha1.ClusterWork{}
	if err := hub.Get(ctx, client.ObjectKey{Namespace: "meridian-member-m1", Name: "w"}, onHub); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cached    *fleetv1alpha1.ClusterWork // nil: the cache does not hold it
		wantHub   bool
		wantBytes string
	}{
		{"the cache holds the queued version", work("", `{"v":"cache"}`), false, `{"v":"cache"}`},
		{"the cache is behind", work("1", `{"v":"cache"}`), true, `{"v":"hub"}`},
		{"the cache does not hold it", nil, true, `{"v":"hub"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tc.cached != nil {
				b = b.WithObjects(tc.cached)
			}
			whole := b.Build()
			hubReads := 0
			reader := interceptor.NewClient(hub.(client.WithWatch), interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, o client.Object, opts ...client.GetOption) error {
				hubReads++
				return c.Get(ctx, key, o, opts...)
			}})
			r := &ClusterWorkReconciler{HubClient: hub, HubReader: reader, WholeWorks: []client.Reader{whole}}
			w, err := r.readWork(ctx, client.ObjectKeyFromObject(onHub))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(w.Spec.Objects[0].Raw); got != tc.wantBytes || (hubReads > 0) != tc.wantHub {
				t.Errorf("read %s with %d hub reads; want %s, hub read %v", got, hubReads, tc.wantBytes, tc.wantHub)
			}
		})
	}
}
