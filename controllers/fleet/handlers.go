package fleet

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// enqueueDiscoveringCluster maps a MemberCluster created by discovery to its Cluster API Cluster.
func enqueueDiscoveringCluster() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		ns, name := o.GetLabels()[fleetv1alpha1.DiscoveredClusterNamespaceLabel], o.GetLabels()[fleetv1alpha1.DiscoveredClusterNameLabel]
		if ns == "" || name == "" {
			return nil
		}
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
	})
}
