package work

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// workPassDuration times one pass over one ClusterWork on its member's worker: read, apply,
// prune, status. The member's queue depth is controller-runtime's workqueue_depth with
// name="work-<member>".
var workPassDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "meridian_work_apply_duration_seconds",
	Help:    "Time one pass over a ClusterWork took on its member's worker (apply, prune, status), by member and result (success, error).",
	Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
}, []string{"member", "result"})

func init() {
	metrics.Registry.MustRegister(workPassDuration)
}

func observePass(member string, start time.Time, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	workPassDuration.WithLabelValues(member, result).Observe(time.Since(start).Seconds())
}

// forgetMemberMetrics drops a disconnected member's series.
func forgetMemberMetrics(member string) {
	workPassDuration.DeletePartialMatch(prometheus.Labels{"member": member})
}
