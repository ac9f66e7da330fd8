package testbed

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Transitions counts the state changes of one object as every write of it is seen, to compare
// with the Events a controller records on transitions: a watch delivers every write in order,
// so a state that flaps under load counts as often as it is written, and a test can require
// one Event per transition without failing on a legitimate flap or passing Events per pass.
type Transitions struct {
	mu     sync.Mutex
	counts map[string]int
	ended  error
}

// WatchTransitions starts watching the object of list's kind named name (cluster-scoped) on
// the cluster, from before it exists until ctx ends. states says the object's state under each
// key (a member cluster, "rollout"); every write in which a key's state differs from the
// previous write's (or the key is new) counts one transition into "key=state".
func (c *Cluster) WatchTransitions(ctx context.Context, list client.ObjectList, name string, states func(client.Object) map[string]string) (*Transitions, error) {
	wc, err := client.NewWithWatch(c.Config, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		return nil, err
	}
	w, err := wc.Watch(ctx, list, client.MatchingFields{"metadata.name": name})
	if err != nil {
		return nil, err
	}
	t := &Transitions{counts: map[string]int{}}
	go func() {
		defer w.Stop()
		was := map[string]string{}
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(client.Object)
			if !ok || obj.GetName() != name {
				continue
			}
			now := states(obj)
			t.mu.Lock()
			for k, s := range now {
				if old, seen := was[k]; !seen || old != s {
					t.counts[k+"="+s]++
				}
			}
			t.mu.Unlock()
			was = now
		}
		if ctx.Err() == nil {
			t.mu.Lock()
			t.ended = fmt.Errorf("the watch of %s ended early: transitions may be missed", name)
			t.mu.Unlock()
		}
	}()
	return t, nil
}

// Counts returns the transitions seen so far, keyed "key=state"; an error when the watch ended
// before its context did.
func (t *Transitions) Counts() (map[string]int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out, t.ended
}
