package membercache

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	memberReachable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_member_reachable",
		Help: "1 when the last probe of the member cluster succeeded, else 0.",
	}, []string{"member"})
	memberReadyNodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_member_nodes_ready",
		Help: "Ready nodes of the member cluster at its last successful probe.",
	}, []string{"member"})
	probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "meridian_member_probe_duration_seconds",
		Help:    "Time a probe of a member cluster took, by result reason.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"member", "reason"})
)

func init() {
	metrics.Registry.MustRegister(memberReachable, memberReadyNodes, probeDuration)
}

func observeProbe(member string, h Health) {
	probeDuration.WithLabelValues(member, h.Reason).Observe(h.Duration.Seconds())
	if h.Reachable {
		memberReachable.WithLabelValues(member).Set(1)
		memberReadyNodes.WithLabelValues(member).Set(float64(h.NodesReady))
		return
	}
	memberReachable.WithLabelValues(member).Set(0)
}

func forgetMember(member string) {
	memberReachable.DeleteLabelValues(member)
	memberReadyNodes.DeleteLabelValues(member)
	probeDuration.DeletePartialMatch(prometheus.Labels{"member": member})
}
