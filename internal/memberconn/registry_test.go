package memberconn

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMember serves the two requests a probe makes, like a member apiserver would.
type fakeMember struct {
	srv    *httptest.Server
	nodes  atomic.Int32
	hang   atomic.Bool
	status atomic.Int32
}

func newFakeMember(t *testing.T) *fakeMember {
	f := &fakeMember{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.hang.Load() {
			<-r.Context().Done()
			return
		}
		if s := f.status.Load(); s != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(s))
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":%d,"reason":"Unauthorized"}`, s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/version":
			fmt.Fprint(w, `{"major":"1","minor":"36","gitVersion":"v1.36.3"}`)
		case "/api/v1/nodes":
			fmt.Fprint(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[`)
			for i := range int(f.nodes.Load()) {
				if i > 0 {
					fmt.Fprint(w, ",")
				}
				ready := "True"
				if i%2 == 1 {
					ready = "False"
				}
				fmt.Fprintf(w, `{"metadata":{"name":"n%d"},"status":{"conditions":[{"type":"Ready","status":"%s"}]}}`, i, ready)
			}
			fmt.Fprint(w, `]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMember) kubeconfig() []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: %q}}]
users: [{name: u, user: {token: secret}}]
contexts: [{name: c, context: {cluster: m, user: u}}]
current-context: c
`, f.srv.URL))
}

type notices struct {
	mu    sync.Mutex
	count map[string]int
}

func (n *notices) notify(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.count[name]++
}

func (n *notices) get(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.count[name]
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var fast = Options{Interval: 50 * time.Millisecond, Timeout: 200 * time.Millisecond, QPS: 100, Burst: 100}

func TestRegistryProbesAndNotifiesOnlyOnChange(t *testing.T) {
	f := newFakeMember(t)
	f.nodes.Store(3)
	n := &notices{count: map[string]int{}}
	r := NewRegistry(n.notify)
	defer r.Stop()

	changed, err := r.Ensure("east", f.kubeconfig(), fast)
	if err != nil || !changed {
		t.Fatalf("Ensure = %v, %v; want a new connection", changed, err)
	}
	waitFor(t, 2*time.Second, "first probe", func() bool { h, _ := r.Health("east"); return h.Reachable })
	h, _ := r.Health("east")
	if h.KubernetesVersion != "v1.36.3" || h.NodesTotal != 3 || h.NodesReady != 2 {
		t.Fatalf("health = %+v", h)
	}
	// Several probes of an unchanged member make exactly one notice (the first result).
	time.Sleep(300 * time.Millisecond)
	if got := n.get("east"); got != 1 {
		t.Fatalf("notices after steady probes = %d, want 1", got)
	}
	f.nodes.Store(4)
	waitFor(t, 2*time.Second, "notice of the new node", func() bool { return n.get("east") == 2 })

	if changed, err := r.Ensure("east", f.kubeconfig(), fast); err != nil || changed {
		t.Fatalf("Ensure with the same kubeconfig = %v, %v; want no reconnect", changed, err)
	}
}

func TestRegistryReportsUnreachableWithinIntervalPlusTimeout(t *testing.T) {
	f := newFakeMember(t)
	r := NewRegistry(nil)
	defer r.Stop()
	if _, err := r.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "first probe", func() bool { h, _ := r.Health("east"); return h.Reachable })

	f.hang.Store(true)
	hungAt := time.Now()
	waitFor(t, 2*time.Second, "unreachable", func() bool { h, _ := r.Health("east"); return !h.Reachable })
	// The bound is one interval plus one timeout; allow scheduling slack on a loaded machine.
	if took := time.Since(hungAt); took > fast.Interval+fast.Timeout+500*time.Millisecond {
		t.Errorf("a hung member turned unreachable after %s", took)
	}
	h, _ := r.Health("east")
	if h.Reason != ReasonUnreachable {
		t.Errorf("reason = %s, want %s", h.Reason, ReasonUnreachable)
	}
	f.hang.Store(false)
	waitFor(t, 2*time.Second, "reachable again", func() bool { h, _ := r.Health("east"); return h.Reachable })
}

func TestRegistryClassifiesRefusedCredentials(t *testing.T) {
	f := newFakeMember(t)
	f.status.Store(http.StatusUnauthorized)
	r := NewRegistry(nil)
	defer r.Stop()
	if _, err := r.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "Unauthorized", func() bool { h, _ := r.Health("east"); return h.Reason == ReasonUnauthorized })
}

func TestRegistryRejectsInvalidKubeconfigs(t *testing.T) {
	r := NewRegistry(nil)
	defer r.Stop()
	for name, kc := range map[string]string{
		"empty":     "",
		"not yaml":  "clusters: [ {",
		"no server": "apiVersion: v1\nkind: Config\nclusters: [{name: m, cluster: {}}]\ncontexts: [{name: c, context: {cluster: m}}]\ncurrent-context: c\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.Ensure("east", []byte(kc), fast)
			if !IsInvalidKubeconfig(err) {
				t.Fatalf("err = %v, want an InvalidKubeconfigError", err)
			}
			if _, ok := r.Health("east"); ok {
				t.Fatal("a member with an invalid kubeconfig stays connected")
			}
		})
	}
}

func TestRegistryOneHungMemberDoesNotDelayAnother(t *testing.T) {
	hung, live := newFakeMember(t), newFakeMember(t)
	hung.hang.Store(true)
	live.nodes.Store(1)
	r := NewRegistry(nil)
	defer r.Stop()
	slow := Options{Interval: time.Second, Timeout: time.Second, QPS: 100, Burst: 100}
	if _, err := r.Ensure("hung", hung.kubeconfig(), slow); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := r.Ensure("live", live.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 500*time.Millisecond, "live member probed while the other hangs", func() bool { h, _ := r.Health("live"); return h.Reachable })
	t.Logf("live member probed after %s", time.Since(start))
}
