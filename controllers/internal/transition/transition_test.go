package transition

import (
	"context"
	"sort"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	ctrlfake "sigs.k8s.io/controller-runtime/pkg/client/fake"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// Two clusters' Events of one pass (one object version, one reason) reach the apiserver as two
// Events through client-go's own broadcaster, each naming its cluster and related to its
// MemberCluster; without the related object the library folds them into one.
func TestRecordKeepsTheEventsOfTwoClustersApart(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{fleetv1alpha1.AddToScheme, policyv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	a := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "uid-a"}}
	hub := ctrlfake.NewClientBuilder().WithScheme(scheme).WithObjects(a).Build()
	policy := &policyv1alpha1.GlobalNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-p", ResourceVersion: "7"}}

	for _, tc := range []struct {
		name     string
		clusters [2]string
		want     int
	}{
		{"about clusters", [2]string{"a", "b"}, 2},
		// The library's behaviour this package works around: the test fails if it changes.
		{"about the object", [2]string{"", ""}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cs := fake.NewClientset()
			b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
			if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
				t.Fatal(err)
			}
			defer b.Shutdown()
			rec := b.NewRecorder(scheme, "test")
			Record(ctx, rec, hub, policy, "Reconcile", []Event{
				{Type: "Normal", Reason: "Realized", Message: "Realized in cluster a.", Cluster: tc.clusters[0]},
				{Type: "Normal", Reason: "Realized", Message: "Realized in cluster b.", Cluster: tc.clusters[1]},
			})
			var list *eventsv1.EventList
			deadline := time.Now().Add(10 * time.Second)
			for {
				var err error
				if list, err = cs.EventsV1().Events("").List(ctx, metav1.ListOptions{}); err != nil {
					t.Fatal(err)
				}
				if len(list.Items) >= tc.want || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Give a wrongly folded series the time to show.
			time.Sleep(200 * time.Millisecond)
			if list, _ = cs.EventsV1().Events("").List(ctx, metav1.ListOptions{}); len(list.Items) != tc.want {
				t.Fatalf("%d Events recorded, want %d: %+v", len(list.Items), tc.want, list.Items)
			}
			if tc.want != 2 {
				return
			}
			sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Note < list.Items[j].Note })
			for i, m := range []string{"a", "b"} {
				e := list.Items[i]
				if e.Note != "Realized in cluster "+m+"." || e.Related == nil || e.Related.Kind != "MemberCluster" || e.Related.Name != m {
					t.Errorf("Event %d = note %q related %+v, want cluster %s's", i, e.Note, e.Related, m)
				}
			}
			if uid := list.Items[0].Related.UID; uid != "uid-a" {
				t.Errorf("related uid = %q, want the cached MemberCluster's", uid)
			}
		})
	}
}
