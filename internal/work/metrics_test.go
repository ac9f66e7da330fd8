package work

import (
	"maps"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// memberSeries gathers the manager's registry and returns the value of each series of the
// family that carries member="<member>", keyed by its queue label: a gauge's or counter's value,
// a histogram's count.
func memberSeries(t *testing.T, family, member string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["member"] != member {
				continue
			}
			out[labels["queue"]] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestMemberQueuesReportPerMemberAndGoWithTheMember(t *testing.T) {
	const member = "metrics-queue-member"
	work := newMemberQueue[string](member, "work")
	status := newMemberQueue[string](member, "status")
	passes := newPassMetrics(member)
	for _, item := range []string{"a", "b", "c"} {
		work.Add(item)
	}
	status.Add("s")
	item, _ := work.Get()
	work.AddAfter(item, time.Hour) // a pass that asked to come back later: not in the depth until then
	work.Done(item)

	for family, want := range map[string]map[string]float64{
		"meridian_member_queue_depth":                 {"work": 2, "status": 1},
		"meridian_member_queue_adds_total":            {"work": 3, "status": 1},
		"meridian_member_queue_retries_total":         {"work": 1, "status": 0},
		"meridian_member_queue_wait_duration_seconds": {"work": 1, "status": 0},
	} {
		if got := memberSeries(t, family, member); !maps.Equal(got, want) {
			t.Errorf("%s{member=%q} = %v, want %v", family, member, got, want)
		}
	}

	// The member goes while its queue still holds items: its series go with it, and what the
	// draining queue still does reports nowhere.
	work.ShutDown()
	status.ShutDown()
	forgetMemberMetrics(member)
	for {
		item, shutdown := work.Get()
		if shutdown {
			break
		}
		passes.observe(time.Now(), nil) // a pass that ends after the member went
		work.Done(item)
	}
	for _, family := range []string{"meridian_work_apply_duration_seconds", "meridian_member_queue_depth", "meridian_member_queue_adds_total", "meridian_member_queue_retries_total", "meridian_member_queue_wait_duration_seconds", "meridian_member_queue_longest_running_seconds"} {
		if got := memberSeries(t, family, member); len(got) != 0 {
			t.Errorf("%s{member=%q} = %v after the member went, want no series", family, member, got)
		}
	}

	// A member of the same name added later counts from zero.
	again := newMemberQueue[string](member, "work")
	defer again.ShutDown()
	again.Add("x")
	if got, want := memberSeries(t, "meridian_member_queue_depth", member), map[string]float64{"work": 1}; !maps.Equal(got, want) {
		t.Errorf("depth of the member's new queue = %v, want %v", got, want)
	}
}
