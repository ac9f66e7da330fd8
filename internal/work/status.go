package work

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// ApplyStatus writes status fields of an object in a member by server-side apply to its status
// subresource, under Meridian's field manager: only the fields in obj's status are claimed, so
// an object someone else owns (a ServiceExport) keeps its spec and the rest of its status. It
// is the one way Meridian writes status into members; callers compare with what the member holds
// first, so that nothing is written when nothing changed.
func (e *Engine) ApplyStatus(ctx context.Context, member string, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) error {
	s, err := e.syncer(member)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("member %s is not connected", member)
	}
	s.acquire()
	defer s.release()
	_, err = s.resource(gvr, obj.GetNamespace()).ApplyStatus(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fleetv1alpha1.FieldManager, Force: true})
	return err
}
