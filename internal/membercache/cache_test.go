package membercache

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
	// failNext fails that many of the next requests with a 500.
	failNext atomic.Int32
	// requests counts the requests answered.
	requests atomic.Int64
}

func newFakeMember(t *testing.T) *fakeMember {
	f := &fakeMember{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if f.hang.Load() {
			<-r.Context().Done()
			return
		}
		if f.failNext.Add(-1) >= 0 {
			http.Error(w, "blip", http.StatusInternalServerError)
			return
		}
		f.failNext.Store(0)
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

// recorder is a Subscriber that keeps the notices it got, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
	health map[string]int
}

func newRecorder() *recorder { return &recorder{health: map[string]int{}} }

func (n *recorder) MemberConnected(m *Member) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, "connected "+m.Name)
}

func (n *recorder) MemberHealthChanged(name string, _ Health) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.health[name]++
}

func (n *recorder) MemberDisconnected(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, "disconnected "+name)
}

func (n *recorder) get(name string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.health[name]
}

func (n *recorder) log() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.events...)
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

func TestCacheProbesAndNotifiesOnlyOnChange(t *testing.T) {
	f := newFakeMember(t)
	f.nodes.Store(3)
	n := newRecorder()
	r := New()
	r.Subscribe(n)
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
	probes := f.requests.Load()
	waitFor(t, 2*time.Second, "three more probes", func() bool { return f.requests.Load() >= probes+6 })
	if got := n.get("east"); got != 1 {
		t.Fatalf("notices after steady probes = %d, want 1", got)
	}
	f.nodes.Store(4)
	waitFor(t, 2*time.Second, "notice of the new node", func() bool { return n.get("east") == 2 })

	if changed, err := r.Ensure("east", f.kubeconfig(), fast); err != nil || changed {
		t.Fatalf("Ensure with the same kubeconfig = %v, %v; want no reconnect", changed, err)
	}
}

func TestCacheReportsUnreachableWithinIntervalPlusTimeout(t *testing.T) {
	f := newFakeMember(t)
	r := New()
	defer r.Stop()
	if _, err := r.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "first probe", func() bool { h, _ := r.Health("east"); return h.Reachable })

	f.hang.Store(true)
	hungAt := time.Now()
	waitFor(t, 2*time.Second, "unreachable", func() bool { h, _ := r.Health("east"); return !h.Reachable })
	// The bound is the failure threshold times one interval plus one timeout; allow scheduling
	// slack on a loaded machine.
	if took := time.Since(hungAt); took > DefaultFailureThreshold*(fast.Interval+fast.Timeout)+500*time.Millisecond {
		t.Errorf("a hung member turned unreachable after %s", took)
	}
	h, _ := r.Health("east")
	if h.Reason != ReasonUnreachable {
		t.Errorf("reason = %s, want %s", h.Reason, ReasonUnreachable)
	}
	f.hang.Store(false)
	waitFor(t, 2*time.Second, "reachable again", func() bool { h, _ := r.Health("east"); return h.Reachable })
}

func TestCacheClassifiesRefusedCredentials(t *testing.T) {
	f := newFakeMember(t)
	f.status.Store(http.StatusUnauthorized)
	r := New()
	defer r.Stop()
	if _, err := r.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "Unauthorized", func() bool { h, _ := r.Health("east"); return h.Reason == ReasonUnauthorized })
}

func TestCacheRejectsInvalidKubeconfigs(t *testing.T) {
	r := New()
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

func TestCacheOneHungMemberDoesNotDelayAnother(t *testing.T) {
	hung, live := newFakeMember(t), newFakeMember(t)
	hung.hang.Store(true)
	live.nodes.Store(1)
	r := New()
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

func TestCacheOneFailedProbeDoesNotFlipReachable(t *testing.T) {
	f := newFakeMember(t)
	n := newRecorder()
	r := New()
	r.Subscribe(n)
	defer r.Stop()
	opts := fast
	opts.FailureThreshold = 3
	if _, err := r.Ensure("east", f.kubeconfig(), opts); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "first probe", func() bool { h, _ := r.Health("east"); return h.Reachable })
	notices := n.get("east")

	// Two failed probes in a row, below the threshold of three, then answers again.
	f.failNext.Store(2)
	for f.failNext.Load() > 0 {
		if h, _ := r.Health("east"); !h.Reachable {
			t.Fatal("a member turned unreachable below the failure threshold")
		}
		time.Sleep(5 * time.Millisecond) // polls the fake; the cache's state is checked each round
	}
	probes := f.requests.Load()
	waitFor(t, 2*time.Second, "two more probes", func() bool { return f.requests.Load() >= probes+4 })
	if h, _ := r.Health("east"); !h.Reachable {
		t.Fatal("a member turned unreachable after two failed probes with a threshold of three")
	}
	if got := n.get("east"); got != notices {
		t.Fatalf("health notices after a blip = %d, want %d (none)", got, notices)
	}

	// Failures at the threshold turn it unreachable.
	f.failNext.Store(1 << 30)
	waitFor(t, 2*time.Second, "unreachable at the threshold", func() bool { h, _ := r.Health("east"); return !h.Reachable })
	if got := n.get("east"); got != notices+1 {
		t.Fatalf("health notices = %d, want %d", got, notices+1)
	}
}

func TestCacheTellsSubscribersOfEveryConnectionChange(t *testing.T) {
	f, other := newFakeMember(t), newFakeMember(t)
	n := newRecorder()
	r := New()
	r.Subscribe(n)
	defer r.Stop()

	if _, err := r.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	first := r.Member("east")
	// New credentials: the old connection ends before the new one is handed out.
	if changed, err := r.Ensure("east", other.kubeconfig(), fast); err != nil || !changed {
		t.Fatalf("Ensure with a new kubeconfig = %v, %v", changed, err)
	}
	select {
	case <-first.Done():
	default:
		t.Fatal("the old connection's context still runs after its kubeconfig was replaced")
	}
	second := r.Member("east")
	if second == first || second.Fingerprint == first.Fingerprint {
		t.Fatal("a replaced kubeconfig kept the old connection")
	}
	// An unusable kubeconfig disconnects.
	if _, err := r.Ensure("east", []byte("nonsense: ["), fast); !IsInvalidKubeconfig(err) {
		t.Fatalf("err = %v, want an InvalidKubeconfigError", err)
	}
	if r.Member("east") != nil {
		t.Fatal("a member with an unusable kubeconfig stays connected")
	}
	if _, err := r.Ensure("east", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	r.Remove("east")
	r.Remove("east") // removing twice tells nobody twice
	want := []string{"connected east", "disconnected east", "connected east", "disconnected east", "connected east", "disconnected east"}
	if got := n.log(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notices = %v, want %v", got, want)
	}

	// A subscriber that comes late is told of the members already connected.
	if _, err := r.Ensure("west", f.kubeconfig(), fast); err != nil {
		t.Fatal(err)
	}
	late := newRecorder()
	r.Subscribe(late)
	if got := late.log(); fmt.Sprint(got) != "[connected west]" {
		t.Fatalf("late subscriber's notices = %v", got)
	}
	r.Stop()
	if got := late.log(); fmt.Sprint(got) != "[connected west disconnected west]" {
		t.Fatalf("notices after Stop = %v", got)
	}
}
