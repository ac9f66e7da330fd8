package work

import (
	"errors"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// statusWorkers write status subresources into one member, beside (not among) its Work workers:
// a burst of status writes never delays the member's Works, and a hung member holds only these.
const statusWorkers = 2

// ErrNotConnected says that a member has no connection: nothing was or will be written to it.
var ErrNotConnected = errors.New("the member is not connected")

// StatusDone receives the outcome of a status write: nil once written, or an error that retrying
// will not fix (the object is gone, the member refused the write), or ErrNotConnected when the
// member was disconnected before the write could be made.
type StatusDone func(error)

type statusKey struct {
	gvr             schema.GroupVersionResource
	namespace, name string
}

type statusRequest struct {
	obj  *unstructured.Unstructured
	done []StatusDone
}

// statusWriter queues, coalesces and writes one member's status writes.
type statusWriter struct {
	queue workqueue.TypedRateLimitingInterface[statusKey]
	mu    sync.Mutex
	// pending is the latest object to write per key, and everyone waiting for it.
	pending map[statusKey]*statusRequest
}

func newStatusWriter(member string) *statusWriter {
	return &statusWriter{
		queue:   newMemberQueue[statusKey](member, "status"),
		pending: map[statusKey]*statusRequest{},
	}
}

// ApplyStatus queues a write of status fields of an object in a member, by server-side apply to
// its status subresource under Meridian's field manager: only the fields in obj's status are
// claimed, so an object someone else owns (a ServiceExport) keeps its spec and the rest of its
// status. It is the one way Meridian writes status into members.
//
// It returns at once: the write happens on the member's own status workers, each request bounded
// by the member's request timeout, so that a member that hangs delays no caller and no other
// member. Writes to one object coalesce (the latest obj wins); a write the member did not answer
// is retried with backoff while the member stays connected. done (may be nil) is called once with
// the outcome. ApplyStatus returns ErrNotConnected, and queues nothing, when the member has no
// connection. Callers compare with what the member holds first, so that nothing is written when
// nothing changed.
func (e *Engine) ApplyStatus(member string, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, done StatusDone) error {
	s := e.syncer(member)
	if s == nil || s.ctx.Err() != nil {
		return fmt.Errorf("write the status of %s %s/%s: member %s: %w", gvr.Resource, obj.GetNamespace(), obj.GetName(), member, ErrNotConnected)
	}
	s.status.add(statusKey{gvr: gvr, namespace: obj.GetNamespace(), name: obj.GetName()}, obj.DeepCopy(), done)
	return nil
}

func (w *statusWriter) add(key statusKey, obj *unstructured.Unstructured, done StatusDone) {
	w.mu.Lock()
	req := w.pending[key]
	if req == nil {
		req = &statusRequest{}
		w.pending[key] = req
	}
	req.obj = obj
	if done != nil {
		req.done = append(req.done, done)
	}
	w.mu.Unlock()
	w.queue.Add(key)
}

func (s *MemberSyncer) statusWorker() {
	defer s.wg.Done()
	w := s.status
	for {
		key, shutdown := w.queue.Get()
		if shutdown {
			return
		}
		w.mu.Lock()
		req := w.pending[key]
		delete(w.pending, key)
		w.mu.Unlock()
		if req == nil {
			w.queue.Forget(key)
			w.queue.Done(key)
			continue
		}
		err := s.writeStatus(key, req.obj)
		if err != nil && s.ctx.Err() == nil && retriable(err) {
			// Keep the waiters; a newer object queued meanwhile replaces this one.
			w.mu.Lock()
			if newer := w.pending[key]; newer != nil {
				newer.done = append(req.done, newer.done...)
			} else {
				w.pending[key] = req
			}
			w.mu.Unlock()
			w.queue.AddRateLimited(key)
			w.queue.Done(key)
			continue
		}
		if err != nil && s.ctx.Err() != nil {
			err = fmt.Errorf("write the status of %s %s/%s in member %s: %w", key.gvr.Resource, key.namespace, key.name, s.name, ErrNotConnected)
		}
		w.queue.Forget(key)
		w.queue.Done(key)
		for _, d := range req.done {
			d(err)
		}
	}
}

func (s *MemberSyncer) writeStatus(key statusKey, obj *unstructured.Unstructured) error {
	_, err := s.resource(key.gvr, key.namespace).ApplyStatus(s.ctx, key.name, obj,
		metav1.ApplyOptions{FieldManager: fleetv1alpha1.FieldManager, Force: true})
	if err != nil {
		return fmt.Errorf("write the status of %s %s/%s in member %s: %w", key.gvr.Resource, key.namespace, key.name, s.name, err)
	}
	return nil
}

// retriable tells whether a write may succeed when tried again: the member did not answer, or
// answered that it was busy. Refusals (invalid, forbidden, gone) are reported instead.
func retriable(err error) bool {
	return !(apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) ||
		apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsUnauthorized(err))
}

// drain tells everyone still waiting that the member was disconnected; called once the workers
// have stopped.
func (w *statusWriter) drain(member string) {
	w.mu.Lock()
	pending := w.pending
	w.pending = map[statusKey]*statusRequest{}
	w.mu.Unlock()
	for key, req := range pending {
		err := fmt.Errorf("write the status of %s %s/%s in member %s: %w", key.gvr.Resource, key.namespace, key.name, member, ErrNotConnected)
		for _, d := range req.done {
			d(err)
		}
	}
}
