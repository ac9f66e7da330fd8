package work

import (
	"context"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// unownedLister answers, for one Sync pass, whether objects Meridian does not own exist in the
// member. The member cache holds only Meridian's objects; instead of a GET per new object, it
// lists once per resource and namespace, by metadata only, what lacks Meridian's label.
type unownedLister struct {
	s  *MemberSyncer
	mu sync.Mutex
	// lists by resource and namespace: name -> metadata of the unowned object.
	lists map[unownedKey]*unownedList
}

type unownedKey struct {
	gvr       schema.GroupVersionResource
	namespace string
}

type unownedList struct {
	once  sync.Once
	items map[string]*metav1.PartialObjectMetadata
	err   error
}

func newUnownedLister(s *MemberSyncer) *unownedLister {
	return &unownedLister{s: s, lists: map[unownedKey]*unownedList{}}
}

// get returns the metadata of an object that exists in the member without Meridian's label, or
// nil when there is none.
func (u *unownedLister) get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*metav1.PartialObjectMetadata, error) {
	key := unownedKey{gvr: gvr, namespace: namespace}
	u.mu.Lock()
	l, ok := u.lists[key]
	if !ok {
		l = &unownedList{}
		u.lists[key] = l
	}
	u.mu.Unlock()
	l.once.Do(func() {
		u.s.acquire()
		defer u.s.release()
		l.items = map[string]*metav1.PartialObjectMetadata{}
		ri := u.s.metadataResource(gvr, namespace)
		opts := metav1.ListOptions{LabelSelector: fleetv1alpha1.ManagedByLabel + "!=" + fleetv1alpha1.ManagedByValue, Limit: 500}
		for {
			list, err := ri.List(ctx, opts)
			if err != nil {
				l.err = fmt.Errorf("list %s in member %s: %w", gvr.Resource, u.s.name, err)
				return
			}
			for i := range list.Items {
				l.items[list.Items[i].Name] = &list.Items[i]
			}
			if list.Continue == "" {
				return
			}
			opts.Continue = list.Continue
		}
	})
	if l.err != nil {
		return nil, l.err
	}
	return l.items[name], nil
}
