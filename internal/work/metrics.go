package work

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// workPassDuration times one pass over one ClusterWork on its member's worker: read, apply,
// prune, status.
var workPassDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "meridian_work_apply_duration_seconds",
	Help:    "Time one pass over a ClusterWork took on its member's worker (apply, prune, status), by member and result (success, error).",
	Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
}, []string{"member", "result"})

// The member's queues (queue "work": its ClusterWorks; "status": its status writes) report
// here rather than through controller-runtime's workqueue_* metrics, which register every named
// queue under the global provider and never delete a series: a removed member's queue would stay
// on the endpoint with its last depth, and a member of the same name added later would count
// from it.
var (
	queueLabels = []string{"member", "queue"}
	queueDepth  = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_member_queue_depth",
		Help: "Items waiting in a member's queue (work: its ClusterWorks; status: its status writes).",
	}, queueLabels)
	queueAdds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_member_queue_adds_total",
		Help: "Items added to a member's queue.",
	}, queueLabels)
	queueRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_member_queue_retries_total",
		Help: "Items a member's queue took back with a delay (a retry with backoff, or a pass that asked to come back later).",
	}, queueLabels)
	queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "meridian_member_queue_wait_duration_seconds",
		Help:    "Time an item waited in a member's queue before a worker took it.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, queueLabels)
	queueLongestRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_member_queue_longest_running_seconds",
		Help: "How long the longest-running worker of a member's queue has been on its current item (a stuck worker grows it).",
	}, queueLabels)
)

func init() {
	metrics.Registry.MustRegister(workPassDuration, queueDepth, queueAdds, queueRetries, queueWait, queueLongestRunning)
}

// passMetrics are one member syncer's series of workPassDuration, taken when it is made so that
// a pass that ends after the member went reports nowhere instead of bringing its series back.
type passMetrics struct{ success, failure prometheus.Observer }

func newPassMetrics(member string) passMetrics {
	return passMetrics{workPassDuration.WithLabelValues(member, "success"), workPassDuration.WithLabelValues(member, "error")}
}

func (p passMetrics) observe(start time.Time, err error) {
	o := p.success
	if err != nil {
		o = p.failure
	}
	o.Observe(time.Since(start).Seconds())
}

// forgetMemberMetrics drops a disconnected member's series. Its syncer's workers and queues,
// which may still be ending, hold series no longer registered: what they report goes nowhere,
// and the member's next syncer starts from zero.
func forgetMemberMetrics(member string) {
	match := prometheus.Labels{"member": member}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{workPassDuration, queueDepth, queueAdds, queueRetries, queueWait, queueLongestRunning} {
		v.DeletePartialMatch(match)
	}
}

// newMemberQueue makes one of a member's queues, reporting to the meridian_member_queue_* metrics.
func newMemberQueue[T comparable](member, queue string) workqueue.TypedRateLimitingInterface[T] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[T](),
		workqueue.TypedRateLimitingQueueConfig[T]{Name: queue + "-" + member, MetricsProvider: queueMetrics{member, queue}})
}

// queueMetrics is the workqueue.MetricsProvider of one member's queue. The queue asks for its
// metrics once, when it is made, and keeps them.
type queueMetrics struct{ member, queue string }

func (p queueMetrics) NewDepthMetric(string) workqueue.GaugeMetric {
	return queueDepth.WithLabelValues(p.member, p.queue)
}

func (p queueMetrics) NewAddsMetric(string) workqueue.CounterMetric {
	return queueAdds.WithLabelValues(p.member, p.queue)
}

func (p queueMetrics) NewLatencyMetric(string) workqueue.HistogramMetric {
	return queueWait.WithLabelValues(p.member, p.queue)
}

// NewWorkDurationMetric discards: a pass of the work queue is meridian_work_apply_duration_seconds.
func (p queueMetrics) NewWorkDurationMetric(string) workqueue.HistogramMetric { return discard{} }

// NewUnfinishedWorkSecondsMetric discards: the longest-running worker shows a stuck one.
func (p queueMetrics) NewUnfinishedWorkSecondsMetric(string) workqueue.SettableGaugeMetric {
	return discard{}
}

func (p queueMetrics) NewLongestRunningProcessorSecondsMetric(string) workqueue.SettableGaugeMetric {
	return queueLongestRunning.WithLabelValues(p.member, p.queue)
}

func (p queueMetrics) NewRetriesMetric(string) workqueue.CounterMetric {
	return queueRetries.WithLabelValues(p.member, p.queue)
}

type discard struct{}

func (discard) Observe(float64) {}
func (discard) Set(float64)     {}
