package work

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// A member often sends the watch event of an apply before the syncer has read the apply's answer.
// That event is the syncer's own write: it must not queue the Work for another pass. An event of
// another version seen meanwhile (someone else's write) still must.
func TestWatchEventOfAnApplyInFlight(t *testing.T) {
	work := types.NamespacedName{Namespace: "meridian-member-m1", Name: "w"}
	key := ObjectKey{GroupKind: schema.GroupKind{Group: "discovery.k8s.io", Kind: "EndpointSlice"}, Namespace: "ns", Name: "s"}
	event := func(rv string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("discovery.k8s.io/v1")
		u.SetKind("EndpointSlice")
		u.SetNamespace("ns")
		u.SetName("s")
		u.SetResourceVersion(rv)
		u.SetAnnotations(map[string]string{fleetv1alpha1.WorkAnnotation: "w"})
		u.Object[trimmedKey] = map[string]any{"projection": "p-" + rv}
		return u
	}
	cases := []struct {
		name     string
		events   []string // resourceVersions of the watch events that arrive during the apply
		answered string   // the apply's answer ("" failed)
		queued   bool
	}{
		{name: "the echo of the apply", events: []string{"7"}, answered: "7"},
		{name: "no event before the answer", answered: "7"},
		{name: "another write after the apply's", events: []string{"7", "8"}, answered: "7", queued: true},
		{name: "a write the apply's answer does not show", events: []string{"6"}, answered: "7", queued: true},
		{name: "an event and a failed apply", events: []string{"6"}, queued: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName]())
			defer q.ShutDown()
			s := &MemberSyncer{hubNamespace: work.Namespace, queue: q, applied: map[ObjectKey]appliedRecord{},
				applying: map[ObjectKey]string{}, waiting: map[string]map[types.NamespacedName]bool{}}
			// A previous apply is known: its echo would be recognised without the in-flight mark.
			s.applied[key] = appliedRecord{manifest: "m", projection: "p-5", resourceVersion: "5"}
			s.applyStarts(key)
			for _, rv := range c.events {
				if !s.isOwnEcho(event(rv)) {
					t.Fatalf("event %s during the apply: not held for the answer", rv)
				}
			}
			var answer *appliedRecord
			if c.answered != "" {
				answer = &appliedRecord{manifest: "m", projection: "p-" + c.answered, resourceVersion: c.answered}
			}
			s.applyDone(key, work, answer)
			if got := s.applied[key].resourceVersion; answer != nil && got != c.answered {
				t.Fatalf("recorded resourceVersion %q after the apply, want the answer's %q", got, c.answered)
			}
			if got := q.Len() == 1; got != c.queued {
				t.Fatalf("Work queued = %v, want %v", got, c.queued)
			}
			// Once answered, events are judged against the record again.
			if s.isOwnEcho(event("9")) {
				t.Fatal("an event of a version nobody recorded was taken for an echo after the apply ended")
			}
		})
	}
}
