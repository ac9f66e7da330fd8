package agentstatus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func agent(renewedAgo time.Duration, version, hash string) Agent {
	return Agent{HasLease: true, RenewTime: t0.Add(-renewedAgo), Interval: 2 * time.Second, HasReport: true,
		Version: version, ConfigHash: hash, ConfigValid: metav1.ConditionTrue, Healthy: true}
}

func TestSummarize(t *testing.T) {
	exp := Expected{AgentConfig: "fleet", Version: "v2", ConfigHash: "h2"}
	refused := agent(time.Second, "v2", "h1")
	refused.ConfigValid, refused.RefusedConfigHash, refused.ConfigMessage = metav1.ConditionFalse, "h2", "featureGates: unknown gates X"
	refusedOld := refused
	refusedOld.RefusedConfigHash = "h0"
	for _, tc := range []struct {
		name                            string
		m                               Member
		ready, upToDate, stale, invalid int32
		summary, inMessage              string
		next                            time.Duration
	}{
		{name: "every agent fresh and up to date", m: Member{Nodes: []string{"a", "b"}, Agents: map[string]Agent{"a": agent(time.Second, "v2", "h2"), "b": agent(0, "v2", "h2")}},
			ready: 2, upToDate: 2, summary: "2/2", next: 5 * time.Second},
		{name: "a Lease renewed exactly three intervals ago is stale", m: Member{Nodes: []string{"a", "b"}, Agents: map[string]Agent{"a": agent(6*time.Second, "v2", "h2"), "b": agent(5999*time.Millisecond, "v2", "h2")}},
			ready: 1, upToDate: 1, stale: 1, summary: "1/2", inMessage: "The agent of node a is stale", next: time.Millisecond},
		{name: "an agent on the old config is ready but not up to date", m: Member{Nodes: []string{"a"}, Agents: map[string]Agent{"a": agent(0, "v2", "h1")}},
			ready: 1, summary: "1/1", next: 6 * time.Second},
		{name: "a node without an agent counts as desired, not ready", m: Member{Nodes: []string{"a", "b"}, Agents: map[string]Agent{"a": agent(0, "v2", "h2")}},
			ready: 1, upToDate: 1, summary: "1/2", inMessage: "Node b has no agent Lease", next: 6 * time.Second},
		{name: "an agent that refused the revision's config", m: Member{Nodes: []string{"a"}, Agents: map[string]Agent{"a": refused}},
			ready: 1, invalid: 1, summary: "1/1", inMessage: "refused its config: featureGates: unknown gates X", next: 5 * time.Second},
		{name: "a refusal of an older file is not a refusal of this revision", m: Member{Nodes: []string{"a"}, Agents: map[string]Agent{"a": refusedOld}},
			ready: 1, summary: "1/1", next: 5 * time.Second},
		{name: "Antrea's agents fold into the summary", m: Member{Nodes: []string{"a", "b"}, Agents: map[string]Agent{"a": agent(0, "v2", "h2"), "b": agent(0, "v2", "h2")},
			Antrea: &Antrea{Agents: map[string]AntreaInfo{"a": {Version: "v2.2.0", Healthy: true, Heartbeat: t0.Add(-time.Minute)}, "b": {Version: "v2.2.0", Healthy: true, Heartbeat: t0.Add(-4 * time.Minute)}}}},
			ready: 2, upToDate: 2, summary: "2/2 (antrea 1/2)", next: 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, next := Summarize(tc.m, exp, t0)
			if s.Ready != tc.ready || s.UpToDate != tc.upToDate || s.Stale != tc.stale || s.ConfigInvalid != tc.invalid || s.Summary != tc.summary {
				t.Errorf("got ready %d upToDate %d stale %d invalid %d %q, want %d %d %d %d %q", s.Ready, s.UpToDate, s.Stale, s.ConfigInvalid, s.Summary,
					tc.ready, tc.upToDate, tc.stale, tc.invalid, tc.summary)
			}
			if !strings.Contains(s.Message, tc.inMessage) {
				t.Errorf("message %q lacks %q", s.Message, tc.inMessage)
			}
			if got := next.Sub(t0); got != tc.next {
				t.Errorf("next change in %s, want %s", got, tc.next)
			}
		})
	}
	if s, _ := Summarize(Member{Nodes: []string{"a"}}, Expected{}, t0); s != nil {
		t.Errorf("a member with no agent, no revision and no Antrea gets a summary: %+v", s)
	}
	s, _ := Summarize(Member{Nodes: []string{"a", "b"}, Agents: map[string]Agent{"a": agent(0, "v1", "h"), "b": agent(0, "v2", "h")}}, exp, t0)
	if fmt.Sprint(s.Versions) != "[{v1 1} {v2 1}]" {
		t.Errorf("versions %v", s.Versions)
	}
}

// The clock alone turns an agent stale: Summarize says when, and at that time it is.
func TestStaleByClock(t *testing.T) {
	m := Member{Nodes: []string{"a"}, Agents: map[string]Agent{"a": agent(0, "v2", "h2")}}
	s, next := Summarize(m, Expected{}, t0)
	if s.Stale != 0 || !next.Equal(t0.Add(6*time.Second)) {
		t.Fatalf("fresh: %+v, next %s", s, next)
	}
	if s, _ := Summarize(m, Expected{}, next.Add(-time.Nanosecond)); s.Stale != 0 {
		t.Fatal("stale before three intervals")
	}
	if s, _ := Summarize(m, Expected{}, next); s.Stale != 1 || s.Ready != 0 {
		t.Fatalf("not stale after three intervals: %+v", s)
	}
}

func TestTrimsAreIdempotent(t *testing.T) {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "meridian-agent-a", Labels: map[string]string{"x": "y"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a"), LeaseDurationSeconds: ptr.To[int32](8), RenewTime: ptr.To(metav1.NewMicroTime(t0))}}
	once, _ := TrimLease(l)
	twice, _ := TrimLease(once)
	if a := leaseAgent(twice.(*coordinationv1.Lease)); a.Interval != 2*time.Second || !a.RenewTime.Equal(t0) || twice.(*coordinationv1.Lease).Labels != nil {
		t.Errorf("lease trimmed to %+v", a)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "member.meridian.io/v1alpha1", "kind": "NodeAgentInfo", "metadata": map[string]any{"name": "a"},
		"version": "v2", "configHash": "h1", "refusedConfigHash": "h2",
		"conditions": []any{map[string]any{"type": "ConfigValid", "status": "False", "reason": "InvalidConfig", "message": "bad", "lastTransitionTime": "2026-01-01T00:00:00Z"},
			map[string]any{"type": "DataplaneReady", "status": "False", "reason": "DataplaneStarting", "message": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"}},
		"policies": []any{map[string]any{"name": "p", "generation": int64(1)}},
	}}
	once, err := TrimNodeAgentInfo(u)
	if err != nil {
		t.Fatal(err)
	}
	twice, _ = TrimNodeAgentInfo(once)
	info := twice.(*memberv1alpha1.NodeAgentInfo)
	if info.RefusedConfigHash != "h2" || len(info.Conditions) != 1 || info.Policies != nil {
		t.Errorf("NodeAgentInfo trimmed to %+v", info)
	}
	aai := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.antrea.io/v1beta1", "kind": "AntreaAgentInfo", "metadata": map[string]any{"name": "a"}, "version": "v2.2.0",
		"agentConditions": []any{map[string]any{"type": "AgentHealthy", "status": "True", "lastHeartbeatTime": "2026-01-01T12:00:00Z"}},
		"ovsInfo":         map[string]any{"version": "3.1"},
	}}
	once, _ = TrimAntreaAgentInfo(aai)
	twice, _ = TrimAntreaAgentInfo(once)
	if i := twice.(*antreaInfo).Info; i.Version != "v2.2.0" || !i.Healthy || !i.Heartbeat.Equal(t0) {
		t.Errorf("AntreaAgentInfo trimmed to %+v", i)
	}
}

// Many changes within one interval make one write at its start and one at its end, never more.
func TestReporterCoalesces(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = fleetv1alpha1.AddToScheme(scheme)
	mc := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "m"}}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(mc).WithStatusSubresource(mc).WithInterceptorFuncs(interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			writes++
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
	}).Build()
	clk := clocktesting.NewFakePassiveClock(t0)
	r := &Reporter{HubClient: c, Coalescer: Coalescer{Clock: clk}}
	ctx := context.Background()
	interval := 10 * time.Second
	report := func(ready int32) time.Duration {
		t.Helper()
		cur := &fleetv1alpha1.MemberCluster{}
		if err := c.Get(ctx, client.ObjectKey{Name: "m"}, cur); err != nil {
			t.Fatal(err)
		}
		wait, err := r.Report(ctx, cur, &fleetv1alpha1.AgentSummary{Desired: 200, Ready: ready, Summary: fmt.Sprintf("%d/200", ready)}, interval)
		if err != nil {
			t.Fatal(err)
		}
		return wait
	}
	if w := report(0); w != 0 || writes != 1 {
		t.Fatalf("first summary: wait %s, %d writes", w, writes)
	}
	// 200 nodes come up one by one within the interval.
	for i := int32(1); i <= 200; i++ {
		clk.SetTime(t0.Add(time.Duration(i) * 40 * time.Millisecond))
		if w := report(i); w <= 0 {
			t.Fatalf("change %d within the interval written (wait %s)", i, w)
		}
	}
	if writes != 1 {
		t.Fatalf("%d writes within one interval", writes)
	}
	clk.SetTime(t0.Add(interval))
	if w := report(200); w != 0 || writes != 2 {
		t.Fatalf("at the interval's end: wait %s, %d writes", w, writes)
	}
	if w := report(200); w != 0 || writes != 2 {
		t.Fatalf("an unchanged summary is written again: %d writes", writes)
	}
	got := &fleetv1alpha1.MemberCluster{}
	_ = c.Get(ctx, client.ObjectKey{Name: "m"}, got)
	if got.Status.Agents.Summary != "200/200" {
		t.Fatalf("status says %q", got.Status.Agents.Summary)
	}
}
