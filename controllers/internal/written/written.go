// Package written remembers the last status a controller wrote for each object, so that the
// Events of a transition are decided against what was written, not against a cached object that
// may not show the controller's own last write yet (which would record the transition twice).
package written

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Statuses holds the last status written per object name. The zero value is ready to use.
type Statuses[S any] struct {
	mu   sync.Mutex
	last map[string]status[S]
}

type status[S any] struct {
	uid types.UID
	s   S
}

// Swap records now as the status written for the object name (uid) and returns the one written
// before it, or fallback (the object's status as read) when none was written for this object
// since the process started or since Forget (an object deleted and created again under its name
// has another uid).
func (w *Statuses[S]) Swap(name string, uid types.UID, fallback, now S) S {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[string]status[S]{}
	}
	prev, ok := w.last[name]
	if !ok || prev.uid != uid {
		prev.s = fallback
	}
	w.last[name] = status[S]{uid, now}
	return prev.s
}

// Forget drops what was written for name (the object is gone).
func (w *Statuses[S]) Forget(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, name)
}
