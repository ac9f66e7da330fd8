package work

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meridian-io/meridian/internal/membercache"
)

// statusMember is an apiserver that answers probes and status applies, and can hang the applies.
type statusMember struct {
	srv     *httptest.Server
	mu      sync.Mutex
	written []string // the bodies of the status applies, in order
	release chan struct{}
}

func newStatusMember(t *testing.T, hung bool) *statusMember {
	m := &statusMember{release: make(chan struct{})}
	if !hung {
		close(m.release)
	}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/version":
			fmt.Fprint(w, `{"major":"1","minor":"36","gitVersion":"v1.36.3"}`)
		case r.URL.Path == "/api/v1/nodes":
			fmt.Fprint(w, `{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[]}`)
		case r.Method == http.MethodPatch:
			select {
			case <-m.release:
			case <-r.Context().Done():
				return
			}
			body, _ := io.ReadAll(r.Body)
			m.mu.Lock()
			m.written = append(m.written, string(body))
			m.mu.Unlock()
			_, _ = w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *statusMember) writes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.written...)
}

func (m *statusMember) kubeconfig() []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: %q}}]
users: [{name: u, user: {token: secret}}]
contexts: [{name: c, context: {cluster: m, user: u}}]
current-context: c
`, m.srv.URL))
}

var exportsGVR = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1beta1", Resource: "serviceexports"}

func exportStatus(reason string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
		"metadata": map[string]any{"namespace": "ns", "name": "svc"},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Ready", "reason": reason}}},
	}}
}

func TestApplyStatusHungMemberDelaysNoCallerAndNoOtherMember(t *testing.T) {
	hung, live := newStatusMember(t, true), newStatusMember(t, false)
	cache := membercache.New()
	defer cache.Stop()
	engine := NewEngine(2, func(context.Context, *MemberSyncer, types.NamespacedName) (time.Duration, error) { return 0, nil })
	defer engine.Stop()
	cache.Subscribe(engine)
	opts := membercache.Options{Interval: time.Second, Timeout: 10 * time.Second, QPS: -1}
	for name, m := range map[string]*statusMember{"hung": hung, "live": live} {
		if _, err := cache.Ensure(name, m.kubeconfig(), opts); err != nil {
			t.Fatal(err)
		}
	}

	// Three writes of the same object to the hung member: each call returns at once.
	hungDone := make(chan error, 3)
	start := time.Now()
	for _, reason := range []string{"A", "B", "C"} {
		if err := engine.ApplyStatus("hung", exportsGVR, exportStatus(reason), func(err error) { hungDone <- err }); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("ApplyStatus to a hung member took %s; it must only queue", took)
	}
	// The live member's write is answered while the other hangs.
	liveDone := make(chan error, 1)
	if err := engine.ApplyStatus("live", exportsGVR, exportStatus("L"), func(err error) { liveDone <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-liveDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a status write to a live member waited for the hung one")
	}

	// Once the member answers, the writes queued behind the first coalesce into the latest.
	close(hung.release)
	for range 3 {
		select {
		case err := <-hungDone:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("status writes to the resumed member were not reported")
		}
	}
	got := hung.writes()
	if len(got) > 2 || len(got) == 0 {
		t.Fatalf("writes = %d (%v), want the first and the coalesced latest", len(got), got)
	}
	if last := got[len(got)-1]; !contains(last, `"reason":"C"`) {
		t.Fatalf("last write = %s, want the latest status (reason C)", last)
	}

	if err := engine.ApplyStatus("nobody", exportsGVR, exportStatus("X"), nil); err == nil {
		t.Fatal("ApplyStatus to an unknown member queued a write")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
