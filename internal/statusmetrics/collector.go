// Package statusmetrics exports what the hub's status says about agents and policies as Prometheus
// metrics, read from the manager's cache at scrape time: no controller keeps a second copy, and a
// deleted object's series go with it.
package statusmetrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

var (
	agentsDesc = prometheus.NewDesc("meridian_agentconfig_agents",
		"Node agents of an AgentConfig in a member cluster, as its status reports them, by state: desired, updated (wanted version and config), ready, stale (Lease not renewed).",
		[]string{"agentconfig", "cluster", "state"}, nil)
	rolloutDesc = prometheus.NewDesc("meridian_agentconfig_clusters",
		"Member clusters of an AgentConfig by rollout phase (Pending, Progressing, Updated, Failed, Conflict, Unreachable).",
		[]string{"agentconfig", "phase"}, nil)
	policyDesc = prometheus.NewDesc("meridian_globalnetworkpolicy_clusters",
		"Member clusters of a GlobalNetworkPolicy by phase (Realized, Pending, Failed) and enforcement (Exact, Restricted, Unsupported).",
		[]string{"policy", "phase", "enforcement"}, nil)
)

// Collector reports the metrics above from a reader of the hub (the manager's cache).
type Collector struct {
	reader atomic.Pointer[client.Reader]
}

// Default is registered with controller-runtime's registry once; each manager points it at its
// own cache (SetReader), so that a process that starts managers one after another (the tests)
// reads the live one.
var Default = &Collector{}

func init() {
	metrics.Registry.MustRegister(Default)
}

// SetReader makes the collector read from r.
func (c *Collector) SetReader(r client.Reader) { c.reader.Store(&r) }

// Describe sends the metrics' descriptions.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- agentsDesc
	ch <- rolloutDesc
	ch <- policyDesc
}

// Collect lists AgentConfigs and GlobalNetworkPolicies and sends their counts.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.reader.Load()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	acs := &fleetv1alpha1.AgentConfigList{}
	if err := (*p).List(ctx, acs); err == nil {
		for _, m := range agentMetrics(acs.Items) {
			ch <- m
		}
	}
	gnps := &policyv1alpha1.GlobalNetworkPolicyList{}
	if err := (*p).List(ctx, gnps); err == nil {
		for _, m := range policyMetrics(gnps.Items) {
			ch <- m
		}
	}
}

func agentMetrics(acs []fleetv1alpha1.AgentConfig) []prometheus.Metric {
	var out []prometheus.Metric
	for _, ac := range acs {
		phases := map[fleetv1alpha1.AgentClusterPhase]int{}
		for _, c := range ac.Status.Clusters {
			phases[c.Phase]++
			for state, n := range map[string]int32{"desired": c.Desired, "updated": c.Updated, "ready": c.Ready, "stale": c.Stale} {
				out = append(out, prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(n), ac.Name, c.Cluster, state))
			}
		}
		for phase, n := range phases {
			out = append(out, prometheus.MustNewConstMetric(rolloutDesc, prometheus.GaugeValue, float64(n), ac.Name, string(phase)))
		}
	}
	return out
}

func policyMetrics(gnps []policyv1alpha1.GlobalNetworkPolicy) []prometheus.Metric {
	var out []prometheus.Metric
	type key struct {
		phase policyv1alpha1.Phase
		enf   policyv1alpha1.Enforcement
	}
	for _, g := range gnps {
		counts := map[key]int{}
		for _, c := range g.Status.Clusters {
			counts[key{c.Phase, c.Enforcement}]++
		}
		for k, n := range counts {
			out = append(out, prometheus.MustNewConstMetric(policyDesc, prometheus.GaugeValue, float64(n), g.Name, string(k.phase), string(k.enf)))
		}
	}
	return out
}
