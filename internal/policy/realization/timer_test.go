package realization

import (
	"maps"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// samples gathers the histogram: per "cluster/form", the seconds observed, summed, and how many.
type samples map[string][2]float64

func gather(t *testing.T, vec *prometheus.HistogramVec) samples {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(vec)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := samples{}
	for _, f := range families {
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if len(labels) != 2 {
				t.Fatalf("series with labels %v, want cluster and form only", labels)
			}
			out[labels["cluster"]+"/"+labels["form"]] = [2]float64{m.Histogram.GetSampleSum(), float64(m.Histogram.GetSampleCount())}
		}
	}
	return out
}

func newVec() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "realization_test_seconds", Help: "test"}, []string{"cluster", "form"})
}

func status(cluster string, form policyv1alpha1.Form, phase policyv1alpha1.Phase) policyv1alpha1.ClusterPolicyStatus {
	return policyv1alpha1.ClusterPolicyStatus{Cluster: cluster, Form: form, Phase: phase}
}

const (
	realized = policyv1alpha1.PhaseRealized
	pending  = policyv1alpha1.PhasePending
	np       = policyv1alpha1.FormNetworkPolicy
	meridian = policyv1alpha1.FormMeridian
)

func TestEachMemberIsTimedOncePerGeneration(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC))
	vec := newVec()
	timer := newTimer(clock, vec)
	step := func(d time.Duration) { clock.SetTime(clock.Now().Add(d)) }
	expect := func(want samples) {
		t.Helper()
		if got := gather(t, vec); !maps.Equal(got, want) {
			t.Fatalf("observed %v, want %v", got, want)
		}
	}

	// A new policy (its status describes no generation yet).
	timer.Observe("p", 1, 0, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending), status("b", meridian, pending)})
	step(2 * time.Second)
	timer.Observe("p", 1, 0, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, pending)})
	expect(samples{"a/NetworkPolicy": {2, 1}})
	step(3 * time.Second)
	timer.Observe("p", 1, 1, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, realized)})
	expect(samples{"a/NetworkPolicy": {2, 1}, "b/Meridian": {5, 1}})

	// Falling back to Pending and recovering within the generation is not a second sample.
	step(time.Second)
	timer.Observe("p", 1, 1, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending), status("b", meridian, realized)})
	step(time.Second)
	timer.Observe("p", 1, 1, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, realized)})
	expect(samples{"a/NetworkPolicy": {2, 1}, "b/Meridian": {5, 1}})

	// Generation 2: b does not realize it before generation 3 comes, and is timed from generation 3.
	timer.Observe("p", 2, 1, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending), status("b", meridian, pending)})
	step(4 * time.Second)
	timer.Observe("p", 2, 1, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, pending)})
	timer.Observe("p", 3, 2, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending), status("b", meridian, pending)})
	step(time.Second)
	// A stale read of generation 2 changes nothing.
	timer.Observe("p", 2, 1, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, realized)})
	timer.Observe("p", 3, 2, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending), status("b", meridian, realized)})
	expect(samples{"a/NetworkPolicy": {6, 2}, "b/Meridian": {6, 2}})

	// A member the placement adds within the generation is timed from the pass that adds it.
	step(10 * time.Second)
	timer.Observe("p", 3, 3, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, realized), status("c", np, pending)})
	step(3 * time.Second)
	timer.Observe("p", 3, 3, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", meridian, realized), status("c", np, realized)})
	expect(samples{"a/NetworkPolicy": {6 + 11, 3}, "b/Meridian": {6, 2}, "c/NetworkPolicy": {3, 1}})

	// A member that is gone loses its series; a deleted policy its state.
	timer.Retain([]string{"a", "c"})
	expect(samples{"a/NetworkPolicy": {17, 3}, "c/NetworkPolicy": {3, 1}})
	timer.Forget("p")
	if len(timer.policies) != 0 {
		t.Fatalf("state kept for %d policies after Forget", len(timer.policies))
	}
}

func TestARestartTimesNoGenerationItFoundUnderWay(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC))
	vec := newVec()
	timer := newTimer(clock, vec) // a process that just started
	step := func(d time.Duration) { clock.SetTime(clock.Now().Add(d)) }

	// "old": generation 7, which the status already describes, was applied long before this
	// process started; whether its members realize it now or later, it gives no sample.
	timer.Observe("old", 7, 7, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", np, pending)})
	// "changed": generation 4 came while no manager ran (the status still describes 3): timed
	// from this process's first pass.
	timer.Observe("changed", 4, 3, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending)})
	step(2 * time.Second)
	timer.Observe("old", 7, 7, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", np, realized)})
	timer.Observe("changed", 4, 3, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized)})
	if got, want := gather(t, vec), (samples{"a/NetworkPolicy": {2, 1}}); !maps.Equal(got, want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	// A member placed under "old" after the restart is timed from then; the next generation is.
	timer.Observe("old", 7, 7, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", np, realized), status("c", np, pending)})
	step(time.Second)
	timer.Observe("old", 7, 7, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", np, realized), status("c", np, realized)})
	timer.Observe("old", 8, 7, []policyv1alpha1.ClusterPolicyStatus{status("a", np, pending), status("b", np, pending), status("c", np, pending)})
	step(time.Second)
	timer.Observe("old", 8, 8, []policyv1alpha1.ClusterPolicyStatus{status("a", np, realized), status("b", np, pending), status("c", np, realized)})
	if got, want := gather(t, vec), (samples{"a/NetworkPolicy": {3, 2}, "c/NetworkPolicy": {2, 2}}); !maps.Equal(got, want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}
