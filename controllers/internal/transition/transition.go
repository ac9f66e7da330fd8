// Package transition records the Events of status transitions the controllers decide (a
// cluster turning Realized, a wave starting), each about the object and, where it concerns one
// member cluster, related to that MemberCluster.
package transition

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Event is one Event a status change produces. Cluster names the member cluster it is about,
// empty when it is about the object as a whole.
type Event struct {
	Type, Reason, Message string
	Cluster               string
}

// Record records the Events about obj with the given action. An Event about a member cluster
// carries its MemberCluster as the related object. That is more than a pointer for the reader:
// the events library (k8s.io/client-go/tools/events) folds the Events of one object version
// that share type, reason, action and related object into a series and keeps the first one's
// message, so without it the Events of two clusters decided in one pass would become one Event
// naming only the first cluster.
func Record(ctx context.Context, rec events.EventRecorder, hub client.Reader, obj runtime.Object, action string, evs []Event) {
	if rec == nil {
		return
	}
	for _, e := range evs {
		var related runtime.Object
		if e.Cluster != "" {
			related = Member(ctx, hub, e.Cluster)
		}
		rec.Eventf(obj, related, e.Type, e.Reason, action, "%s", e.Message)
	}
}

// Member is the hub's MemberCluster of that name as the related object of an Event: the one in
// the cache (with its uid), or one with the name only when it cannot be read (a cluster being
// removed).
func Member(ctx context.Context, hub client.Reader, name string) runtime.Object {
	m := &fleetv1alpha1.MemberCluster{}
	if hub != nil {
		if err := hub.Get(ctx, client.ObjectKey{Name: name}, m); err == nil {
			return m
		}
	}
	return &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
