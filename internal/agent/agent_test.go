package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/agent/agenttest"
)

type counts struct{ creates, updates atomic.Int64 }

func fakeClient(t *testing.T, c *counts) client.WithWatch {
	t.Helper()
	s := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := memberv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*memberv1alpha1.NodeAgentInfo); ok {
				c.creates.Add(1)
			}
			return cl.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*memberv1alpha1.NodeAgentInfo); ok {
				c.updates.Add(1)
			}
			return cl.Update(ctx, obj, opts...)
		},
	}).Build()
}

func configFile(t *testing.T, body string) []byte {
	t.Helper()
	return []byte("apiVersion: agent.meridian.io/v1alpha1\nkind: NodeAgentConfiguration\n" + body)
}

func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func newTestAgent(t *testing.T, dir string, c client.Client) *Agent {
	t.Helper()
	a, err := New(Options{NodeName: "node-a", ConfigPath: filepath.Join(dir, agentfile.FileName), Version: "v1",
		Client: c, MetricsHost: "127.0.0.1", LogOutput: io.Discard, ConfigCheckPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestReloadKeepsTheLastGoodConfig(t *testing.T) {
	dir := t.TempDir()
	good := configFile(t, "enforcementMode: Audit\nlogVerbosity: 3\n")
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: good}); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, dir, fakeClient(t, &counts{}))
	if !a.reload() {
		t.Fatal("the first valid file did not change the config in force")
	}
	if a.configHash != agentfile.Hash(good) || a.config.EnforcementMode != "Audit" || a.configCond.Status != metav1.ConditionTrue {
		t.Fatalf("after a good file: hash %q mode %q cond %+v", a.configHash, a.config.EnforcementMode, a.configCond)
	}
	if a.reload() {
		t.Fatal("re-reading the same file changed the config")
	}

	bad := configFile(t, "enforcementMode: Audit\nfeatureGates: {Teleport: true}\n")
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: bad}); err != nil {
		t.Fatal(err)
	}
	if a.reload() {
		t.Fatal("an invalid file changed the config in force")
	}
	if a.configHash != agentfile.Hash(good) || a.configCond.Status != metav1.ConditionFalse || a.configCond.Reason != memberv1alpha1.InvalidConfigReason {
		t.Fatalf("after a bad file: hash %q cond %+v", a.configHash, a.configCond)
	}
	for _, want := range []string{"unknown gates Teleport", "keeping the last good config (hash " + agentfile.Hash(good) + ")"} {
		if !strings.Contains(a.configCond.Message, want) {
			t.Errorf("message %q lacks %q", a.configCond.Message, want)
		}
	}

	good2 := configFile(t, "enforcementMode: Enforce\n")
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: good2}); err != nil {
		t.Fatal(err)
	}
	if !a.reload() || a.configHash != agentfile.Hash(good2) || a.configCond.Status != metav1.ConditionTrue {
		t.Fatalf("a good file after a bad one: hash %q cond %+v", a.configHash, a.configCond)
	}
}

// An agent of an older build (KnownGates without the gate) refuses a file the hub rendered, keeps
// its last good config and names the refused file's hash in its NodeAgentInfo.
func TestOlderAgentRefusesAnUnknownGateAndNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	good := configFile(t, "enforcementMode: Enforce\n")
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: good}); err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, dir, fakeClient(t, &counts{}))
	a.opts.KnownGates = []string{}
	a.reload()
	gated := configFile(t, "enforcementMode: Enforce\nfeatureGates: {ProcessMetrics: true}\n")
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: gated}); err != nil {
		t.Fatal(err)
	}
	if a.reload() {
		t.Fatal("a file with a gate this agent does not know changed the config in force")
	}
	info := a.desiredInfo(nil)
	if info.ConfigHash != agentfile.Hash(good) || info.RefusedConfigHash != agentfile.Hash(gated) || !strings.Contains(a.configCond.Message, "unknown gates ProcessMetrics") {
		t.Fatalf("config %q refused %q cond %+v", info.ConfigHash, info.RefusedConfigHash, a.configCond)
	}
	a.opts.KnownGates = nil // this build knows the gate
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: append(gated, '\n')}); err != nil {
		t.Fatal(err)
	}
	if !a.reload() || a.desiredInfo(nil).RefusedConfigHash != "" {
		t.Fatalf("a valid file left refusedConfigHash %q", a.desiredInfo(nil).RefusedConfigHash)
	}
}

func TestMissingFileRunsDefaultsAndSaysSo(t *testing.T) {
	a := newTestAgent(t, t.TempDir(), fakeClient(t, &counts{}))
	a.reload()
	if a.configHash != "" || a.configCond.Reason != memberv1alpha1.ConfigUnreadableReason || !strings.Contains(a.configCond.Message, "built-in defaults") {
		t.Fatalf("hash %q cond %+v", a.configHash, a.configCond)
	}
	if a.config.HeartbeatIntervalSeconds != agentfile.DefaultHeartbeatIntervalSeconds {
		t.Fatalf("defaults not in force: %+v", a.config)
	}
}

func TestNodeAgentInfoIsWrittenOnlyOnChange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: configFile(t, "")}); err != nil {
		t.Fatal(err)
	}
	var n counts
	c := fakeClient(t, &n)
	a := newTestAgent(t, dir, c)
	a.reload()
	for range 3 {
		if err := a.syncInfo(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n.creates.Load() != 1 || n.updates.Load() != 0 {
		t.Fatalf("three syncs of an unchanged state: %d creates, %d updates; want 1, 0", n.creates.Load(), n.updates.Load())
	}
	// A resync reads the object back and finds nothing to write.
	a.info = nil
	if err := a.syncInfo(ctx); err != nil {
		t.Fatal(err)
	}
	if n.updates.Load() != 0 {
		t.Fatalf("a resync of an unchanged state wrote %d times", n.updates.Load())
	}
	// A new config is one update.
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: configFile(t, "enforcementMode: Audit\n")}); err != nil {
		t.Fatal(err)
	}
	a.reload()
	if err := a.syncInfo(ctx); err != nil {
		t.Fatal(err)
	}
	got := &memberv1alpha1.NodeAgentInfo{}
	if err := c.Get(ctx, client.ObjectKey{Name: "node-a"}, got); err != nil {
		t.Fatal(err)
	}
	if n.updates.Load() != 1 || got.ConfigHash != a.configHash || got.EnforcementMode != "Audit" || got.Version != "v1" {
		t.Fatalf("after a config change: %d updates, info %+v", n.updates.Load(), got)
	}
	dp := meta.FindStatusCondition(got.Conditions, memberv1alpha1.DataplaneReadyCondition)
	if dp == nil || dp.Status != metav1.ConditionFalse || dp.Reason != memberv1alpha1.DataplaneDisabledReason {
		t.Fatalf("DataplaneReady: %+v", dp)
	}
}

func TestLeaseIsCreatedThenRenewed(t *testing.T) {
	ctx := context.Background()
	c := fakeClient(t, &counts{})
	a := newTestAgent(t, t.TempDir(), c)
	if err := a.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	l := &coordinationv1.Lease{}
	key := client.ObjectKey{Namespace: memberv1alpha1.AgentNamespace, Name: "meridian-agent-node-a"}
	if err := c.Get(ctx, key, l); err != nil {
		t.Fatal(err)
	}
	if *l.Spec.HolderIdentity != "node-a" || *l.Spec.LeaseDurationSeconds != 40 {
		t.Fatalf("lease %+v", l.Spec)
	}
	first := l.Spec.RenewTime.Time
	time.Sleep(2 * time.Millisecond) // the fake client keeps microseconds: let the clock move
	if err := a.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, key, l); err != nil {
		t.Fatal(err)
	}
	if !l.Spec.RenewTime.After(first) {
		t.Fatalf("renewTime did not move: %v then %v", first, l.Spec.RenewTime.Time)
	}
	// Someone else updates the Lease: the agent's next renewal conflicts, the one after reads it again.
	l.Labels = map[string]string{"touched": "yes"}
	if err := c.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := a.renewLease(ctx); err == nil {
		t.Fatal("a renewal over a stale Lease did not conflict")
	}
	if err := a.renewLease(ctx); err != nil {
		t.Fatalf("the renewal after a conflict: %v", err)
	}
}

func TestRunReloadsASwappedConfigWithoutRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	port1, port2 := freePort(t), freePort(t)
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: configFile(t, fmt.Sprintf("metricsPort: %d\n", port1))}); err != nil {
		t.Fatal(err)
	}
	c := fakeClient(t, &counts{})
	a := newTestAgent(t, dir, c)
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	infoHash := func() string {
		got := &memberv1alpha1.NodeAgentInfo{}
		if err := c.Get(ctx, client.ObjectKey{Name: "node-a"}, got); err != nil {
			return ""
		}
		return got.ConfigHash
	}
	serves := func(port int32, want string) func() bool {
		return func() bool {
			r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
			if err != nil {
				return false
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			return strings.Contains(string(b), want)
		}
	}
	first := configFile(t, fmt.Sprintf("metricsPort: %d\n", port1))
	waitFor("the first config in NodeAgentInfo", func() bool { return infoHash() == agentfile.Hash(first) })
	waitFor("metrics on the first port", serves(port1, "meridian_agent_heartbeats_total"))
	if serves(port1, "go_goroutines")() {
		t.Fatal("Go runtime metrics are served with the ProcessMetrics gate off")
	}

	second := configFile(t, fmt.Sprintf("metricsPort: %d\nfeatureGates: {ProcessMetrics: true}\n", port2))
	if err := agenttest.WriteConfigMapDir(dir, map[string][]byte{agentfile.FileName: second}); err != nil {
		t.Fatal(err)
	}
	waitFor("the swapped config in NodeAgentInfo", func() bool { return infoHash() == agentfile.Hash(second) })
	waitFor("metrics with the gate's collectors on the new port", serves(port2, "go_goroutines"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
