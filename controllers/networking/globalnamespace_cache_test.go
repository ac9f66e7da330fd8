package networking

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/internal/globalns"
)

// behindCache plays the GlobalNamespace's Works cache before it has seen the hub's latest
// writes: it holds what it was given, which may be less than the hub holds. Only the reads the
// reconciler makes are served.
type behindCache struct {
	cache.Cache
	holds client.Reader
}

func (c behindCache) Get(ctx context.Context, key client.ObjectKey, o client.Object, opts ...client.GetOption) error {
	return c.holds.Get(ctx, key, o, opts...)
}

func (c behindCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.holds.List(ctx, list, opts...)
}

func gnsTestScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, fleetv1alpha1.AddToScheme, netv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// A Work the cache does not hold yet (made by the pass before) is taken from the hub, not
// reported as a failed write; and the finalizer of a deleted GlobalNamespace stays while the hub
// still holds one of its Works, whatever the cache says.
func TestGlobalNamespaceReadsPastItsCacheWhereItMatters(t *testing.T) {
	scheme := gnsTestScheme(t)
	ctx := context.Background()
	newGNS := func() *netv1alpha1.GlobalNamespace {
		return &netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: types.UID("u-shop"), Finalizers: []string{netv1alpha1.GlobalNamespaceFinalizer}},
			Spec:       netv1alpha1.GlobalNamespaceSpec{Placement: fleetv1alpha1.Placement{ClusterNames: []string{"member-1"}}},
		}
	}
	member := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "member-1"}}
	hubWork := func(t *testing.T, g *netv1alpha1.GlobalNamespace, owner string) *fleetv1alpha1.ClusterWork {
		t.Helper()
		w, err := globalns.DesiredWork(g, "member-1")
		if err != nil {
			t.Fatal(err)
		}
		w.Labels[netv1alpha1.GlobalNamespaceLabel] = owner
		w.Finalizers = []string{"fleet.meridian.io/work"} // the work engine's, so a delete only marks it
		return w
	}
	reconciler := func(hub client.Client) *GlobalNamespaceReconciler {
		empty := fake.NewClientBuilder().WithScheme(scheme).Build()
		return &GlobalNamespaceReconciler{HubClient: hub, HubReader: hub, Works: behindCache{holds: empty}}
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Name: "shop"}}

	t.Run("a Work the cache has not seen yet", func(t *testing.T) {
		g := newGNS()
		hub := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&netv1alpha1.GlobalNamespace{}).
			WithObjects(g, member, hubWork(t, g, "shop")).Build()
		if _, err := reconciler(hub).Reconcile(ctx, req); err != nil {
			t.Fatalf("Reconcile: %v; want the hub's Work taken as it is", err)
		}
		got := &netv1alpha1.GlobalNamespace{}
		if err := hub.Get(ctx, req.NamespacedName, got); err != nil {
			t.Fatal(err)
		}
		for _, c := range got.Status.Clusters {
			if strings.Contains(c.Message, "Could not write") {
				t.Errorf("cluster %s: %q; want no write failure reported", c.Cluster, c.Message)
			}
		}
	})

	t.Run("a Work of that name that is another GlobalNamespace's", func(t *testing.T) {
		g := newGNS()
		hub := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&netv1alpha1.GlobalNamespace{}).
			WithObjects(g, member, hubWork(t, g, "another")).Build()
		_, err := reconciler(hub).Reconcile(ctx, req)
		if !errors.Is(err, hubwork.ErrNameTaken) || !strings.Contains(err.Error(), "carries something else") {
			t.Fatalf("Reconcile: %v; want an error naming the Work as another's", err)
		}
	})

	t.Run("deleted while the cache holds none of its Works", func(t *testing.T) {
		g := newGNS()
		w := hubWork(t, g, "shop")
		now := metav1.Now()
		g.DeletionTimestamp = &now
		hub := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&netv1alpha1.GlobalNamespace{}).
			WithObjects(g, member, w).Build()
		if _, err := reconciler(hub).Reconcile(ctx, req); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		got := &netv1alpha1.GlobalNamespace{}
		if err := hub.Get(ctx, req.NamespacedName, got); err != nil {
			t.Fatalf("the GlobalNamespace went while the hub still held its Work: %v", err)
		}
		// Its deletion policy (Orphan) first releases the namespace: the Work is rewritten
		// without the GlobalNamespace's label.
		left := &fleetv1alpha1.ClusterWork{}
		if err := hub.Get(ctx, client.ObjectKeyFromObject(w), left); err != nil {
			t.Fatal(err)
		}
		if released, err := globalns.Released(left); err != nil || released != nil {
			t.Errorf("its Work still names the GlobalNamespace in the member (%v); want it released", err)
		}
	})
}

// Changes of a GlobalNamespace's services within the delay are one reconcile, run once the
// first change has waited the delay (not pushed back by the later ones).
func TestServiceChangesGatheredForTheDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := queueAfter(delay)
	g := &netv1alpha1.GlobalNamespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	start := time.Now()
	for range 3 {
		h.Generic(context.Background(), event.TypedGenericEvent[*netv1alpha1.GlobalNamespace]{Object: g}, q)
		time.Sleep(delay / 10) // changes arriving over a part of the delay
	}
	item, _ := q.Get()
	waited := time.Since(start)
	q.Done(item)
	if item.Name != "shop" || waited < delay || waited > 2*delay {
		t.Fatalf("got %v after %v; want shop after %v to %v", item, waited, delay, 2*delay)
	}
	// Nothing else is queued: the three changes were one reconcile. Waiting the delay again
	// would show a second one.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if extra, shutdown := q.Get(); !shutdown {
			t.Errorf("a second reconcile %v: the changes were not gathered", extra)
		}
	}()
	time.Sleep(2 * delay)
	q.ShutDown()
	<-done
}
