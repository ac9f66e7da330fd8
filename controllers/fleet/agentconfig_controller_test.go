package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/agentconfig"
	"github.com/meridian-io/meridian/internal/agentstatus"
)

// Agent churn changes the members' summaries, and each change re-queues the AgentConfig: its
// status is written at most once per heartbeat interval, and the last change is written at the
// interval's end (no update lost).
func TestAgentConfigStatusWritesAreCoalesced(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := fleetv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(t0)
	ac := &fleetv1alpha1.AgentConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet", Generation: 1, CreationTimestamp: metav1.NewTime(t0)},
		Spec: fleetv1alpha1.AgentConfigSpec{
			Placement: fleetv1alpha1.Placement{ClusterNames: []string{"m1", "m2", "m3"}},
			Image:     "meridian-node-agent:v0.1.0", Version: "v0.1.0",
			Config: fleetv1alpha1.AgentSettings{HeartbeatIntervalSeconds: 10},
			// Waves of three: every member gets the revision at once, and each one's summary counts.
			Rollout: fleetv1alpha1.AgentRollout{ProgressDeadlineSeconds: 600, WaveSize: ptr.To(intstr.FromInt32(3))},
		},
	}
	objs := []client.Object{ac}
	for _, m := range []string{"m1", "m2", "m3"} {
		objs = append(objs, &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: m}})
	}
	writes := 0
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&fleetv1alpha1.AgentConfig{}, &fleetv1alpha1.MemberCluster{}, &fleetv1alpha1.ClusterWork{}).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				if _, ok := o.(*fleetv1alpha1.AgentConfig); ok {
					writes++
				}
				return c.SubResource(sub).Patch(ctx, o, p, opts...)
			},
		}).Build()
	r := &AgentConfigReconciler{HubClient: c, HubReader: c, Clock: clk, Writes: &agentstatus.Coalescer{Clock: clk}}
	reconcile := func() ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "fleet"}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// setReady makes member's agents summary (counted against the revision) say ready of 200.
	setReady := func(member string, ready int32) {
		t.Helper()
		mc := &fleetv1alpha1.MemberCluster{}
		if err := c.Get(ctx, client.ObjectKey{Name: member}, mc); err != nil {
			t.Fatal(err)
		}
		compiled, err := agentconfig.Compile(ac, mc)
		if err != nil {
			t.Fatal(err)
		}
		mc.Status.Agents = &fleetv1alpha1.AgentSummary{AgentConfig: ac.Name, Version: ac.Spec.Version, ConfigHash: compiled.ConfigHash,
			Desired: 200, Ready: ready, UpToDate: ready, Summary: fmt.Sprintf("%d/200", ready)}
		if err := c.Status().Update(ctx, mc); err != nil {
			t.Fatal(err)
		}
	}
	readyOf := func(member string) int32 {
		t.Helper()
		got := &fleetv1alpha1.AgentConfig{}
		if err := c.Get(ctx, client.ObjectKey{Name: "fleet"}, got); err != nil {
			t.Fatal(err)
		}
		for _, cl := range got.Status.Clusters {
			if cl.Cluster == member {
				return cl.Ready
			}
		}
		t.Fatalf("no status line for %s: %+v", member, got.Status.Clusters)
		return 0
	}

	// The first status of a generation is written at once.
	reconcile()
	if writes != 1 {
		t.Fatalf("first pass: %d status writes, want 1", writes)
	}
	// Three members' agents come up within the interval: 45 summary changes, each a pass.
	interval := 10 * time.Second
	const steps = 15
	for i := int32(1); i <= steps; i++ {
		clk.SetTime(t0.Add(time.Duration(i) * 650 * time.Millisecond))
		for _, m := range []string{"m1", "m2", "m3"} {
			setReady(m, i)
			res := reconcile()
			if res.RequeueAfter <= 0 || res.RequeueAfter > interval {
				t.Fatalf("change %d of %s held without a requeue within the interval: %+v", i, m, res)
			}
		}
	}
	if writes != 1 {
		t.Fatalf("%d status writes within one interval, want 1", writes)
	}
	if got := readyOf("m3"); got != 0 {
		t.Fatalf("a held change was written: m3 ready %d", got)
	}
	// The requeue at the interval's end writes the last state, every change folded in.
	clk.SetTime(t0.Add(interval))
	reconcile()
	if writes != 2 {
		t.Fatalf("at the interval's end: %d status writes, want 2", writes)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		if got := readyOf(m); got != steps {
			t.Errorf("the last change was lost: %s ready %d, want %d", m, got, steps)
		}
	}
	// Nothing changed: nothing written.
	clk.SetTime(t0.Add(3 * interval))
	reconcile()
	if writes != 2 {
		t.Fatalf("an unchanged status was written again: %d writes", writes)
	}

	// A new spec is acknowledged at once, even right after a write.
	setReady("m1", steps-1)
	clk.SetTime(t0.Add(3*interval + time.Second))
	reconcile()
	if writes != 3 {
		t.Fatalf("after a summary change: %d writes, want 3", writes)
	}
	cur := &fleetv1alpha1.AgentConfig{}
	if err := c.Get(ctx, client.ObjectKey{Name: "fleet"}, cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Config.LogVerbosity = 4
	cur.Generation = 2
	if err := c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(t0.Add(3*interval + 2*time.Second))
	reconcile()
	if err := c.Get(ctx, client.ObjectKey{Name: "fleet"}, cur); err != nil {
		t.Fatal(err)
	}
	if writes != 4 || cur.Status.ObservedGeneration != cur.Generation {
		t.Fatalf("a new generation waited for the interval: %d writes, observedGeneration %d of %d", writes, cur.Status.ObservedGeneration, cur.Generation)
	}
}
