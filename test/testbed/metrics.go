package testbed

import (
	"context"
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
)

// WriteVerbs are the verbs of apiserver_request_total that change state (server-side apply
// counts as APPLY).
var WriteVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true}

// metrics reads and parses the apiserver's /metrics.
func (c *Cluster) metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	body, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read metrics of %s: %w", c.Name, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("parse metrics of %s: %w", c.Name, err)
	}
	return families, nil
}

func labelsOf(m *dto.Metric) map[string]string {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	return labels
}

// WriteRequests reads the apiserver's apiserver_request_total and returns the write requests it
// served, by resource ("group/resource", core group as "/resource"). The apiserver's own identity
// lease renewals are counted under coordination.k8s.io/leases like any other write.
func (c *Cluster) WriteRequests(ctx context.Context) (map[string]float64, error) {
	families, err := c.metrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		labels := labelsOf(m)
		if WriteVerbs[labels["verb"]] {
			out[labels["group"]+"/"+labels["resource"]] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// WritesByVerb is WriteRequests keyed "VERB group/resource", e.g. "PATCH discovery.k8s.io/endpointslices".
func (c *Cluster) WritesByVerb(ctx context.Context) (map[string]float64, error) {
	families, err := c.metrics(ctx)
	return sumByVerb(families, "apiserver_request_total", func(verb string) bool { return WriteVerbs[verb] }, counterValue), err
}

// RequestsByVerb is every request the apiserver served (reads and watches too), keyed
// "VERB group/resource".
func (c *Cluster) RequestsByVerb(ctx context.Context) (map[string]float64, error) {
	families, err := c.metrics(ctx)
	return sumByVerb(families, "apiserver_request_total", all, counterValue), err
}

// RequestsAndSecondsByVerb is RequestsByVerb and, from the same reading of the metrics, the
// seconds spent serving those requests (apiserver_request_duration_seconds), by the same keys.
func (c *Cluster) RequestsAndSecondsByVerb(ctx context.Context) (count, seconds map[string]float64, err error) {
	families, err := c.metrics(ctx)
	return sumByVerb(families, "apiserver_request_total", all, counterValue),
		sumByVerb(families, "apiserver_request_duration_seconds", all, func(m *dto.Metric) float64 { return m.GetHistogram().GetSampleSum() }), err
}

func all(string) bool { return true }

func counterValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

// sumByVerb sums a value of one of the apiserver's metric families by "VERB group/resource", over
// the verbs included.
func sumByVerb(families map[string]*dto.MetricFamily, family string, include func(verb string) bool, value func(*dto.Metric) float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range families[family].GetMetric() {
		labels := labelsOf(m)
		if include(labels["verb"]) {
			out[labels["verb"]+" "+labels["group"]+"/"+labels["resource"]] += value(m)
		}
	}
	return out
}

// WritesExcept sums the writes of every resource but those listed.
func WritesExcept(writes map[string]float64, except ...string) float64 {
	skip := map[string]bool{}
	for _, e := range except {
		skip[e] = true
	}
	var n float64
	for r, v := range writes {
		if !skip[r] {
			n += v
		}
	}
	return n
}

// DiffWrites returns after minus before, by resource, dropping zeros.
func DiffWrites(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for r, v := range after {
		if d := v - before[r]; d != 0 {
			out[r] = d
		}
	}
	return out
}

// RequestLatency reads apiserver_request_duration_seconds and returns, for one resource
// ("group/resource") and the write verbs, the sum of seconds and the count of requests.
func (c *Cluster) RequestLatency(ctx context.Context, resource string) (sum float64, count uint64, err error) {
	families, err := c.metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range families["apiserver_request_duration_seconds"].GetMetric() {
		labels := labelsOf(m)
		if WriteVerbs[labels["verb"]] && labels["group"]+"/"+labels["resource"] == resource {
			sum += m.GetHistogram().GetSampleSum()
			count += m.GetHistogram().GetSampleCount()
		}
	}
	return sum, count, nil
}
