package agent

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-io/meridian/internal/dataplane"
)

// dataplaneMetrics are the dataplane's: what the table holds, the transactions that change it,
// and, read from the rules' own counters when the endpoint is scraped, what each policy denied.
type dataplaneMetrics struct {
	nftRules, policyRules, pods, sets, elements prometheus.Gauge
	transactions, failures                      prometheus.Counter
	duration                                    prometheus.Histogram
	denials                                     *denialCollector
}

func newDataplaneMetrics(source func() *dataplane.Programmer) *dataplaneMetrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	return &dataplaneMetrics{
		nftRules:    gauge("meridian_agent_dataplane_nftables_rules", "nftables rules in the node's table."),
		policyRules: gauge("meridian_agent_dataplane_policy_rules", "Policy rules (MemberNetworkPolicy and NetworkPolicy rules, per pod) the table enforces."),
		pods:        gauge("meridian_agent_dataplane_pods", "Pods of the node the table enforces policy for."),
		sets:        gauge("meridian_agent_dataplane_sets", "Named sets and verdict maps in the node's table."),
		elements:    gauge("meridian_agent_dataplane_set_elements", "Entries of the table's sets: address ranges in the peer sets, pods in the verdict maps."),
		transactions: prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_agent_dataplane_transactions_total",
			Help: "nftables transactions (one netlink batch each) the kernel committed."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_agent_dataplane_transaction_failures_total",
			Help: "Changes of the table that failed (the kernel refused the batch, or it could not be sent); the table keeps what it held."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meridian_agent_dataplane_transaction_duration_seconds",
			Help:    "Time to change the table: comparing the model with the table, rendering what changed and the netlink batch; committed and failed transactions.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		denials: newDenialCollector(source),
	}
}

func (m *dataplaneMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.nftRules, m.policyRules, m.pods, m.sets, m.elements, m.transactions, m.failures, m.duration, m.denials}
}

// observe records one attempt to change the table.
func (m *dataplaneMetrics) observe(st dataplane.Stats, took time.Duration, err error) {
	switch {
	case err != nil:
		m.failures.Inc()
		m.duration.Observe(took.Seconds())
	case st.Messages > 0:
		m.transactions.Inc()
		m.duration.Observe(took.Seconds())
	}
	if err == nil {
		m.nftRules.Set(float64(st.Rules))
		m.sets.Set(float64(st.Sets))
		m.elements.Set(float64(st.Elements))
	}
}

var (
	deniedPacketsDesc = prometheus.NewDesc("meridian_agent_dataplane_denied_packets_total",
		"Packets the table dropped or refused, by the policy whose rule decided (new connections: the first packet, and the retries of a connection that is never answered).",
		[]string{"policy", "direction", "action"}, nil)
	deniedBytesDesc = prometheus.NewDesc("meridian_agent_dataplane_denied_bytes_total",
		"Bytes of the packets counted by meridian_agent_dataplane_denied_packets_total.",
		[]string{"policy", "direction", "action"}, nil)
	auditPacketsDesc = prometheus.NewDesc("meridian_agent_dataplane_audit_would_deny_packets_total",
		"In Audit mode: packets a policy's rule would have dropped or refused, and let through.",
		[]string{"policy", "direction", "action"}, nil)
	auditBytesDesc = prometheus.NewDesc("meridian_agent_dataplane_audit_would_deny_bytes_total",
		"Bytes of the packets counted by meridian_agent_dataplane_audit_would_deny_packets_total.",
		[]string{"policy", "direction", "action"}, nil)
	counterReadsFailedDesc = prometheus.NewDesc("meridian_agent_dataplane_counter_read_failures_total",
		"Scrapes at which the rules' counters could not be read from the kernel (the denial counters then stay where they were).", nil, nil)
)

type denialKey struct {
	audit                     bool
	policy, direction, action string
}

type denialTotal struct{ packets, bytes uint64 }

// ruleID is one nftables rule: the kernel's handle and the rule's comment key (a handle reused
// after the table was deleted and made again is another rule).
type ruleID struct {
	handle uint64
	key    string
}

// denialCollector turns the per-rule counters of the kernel into Prometheus counters per policy.
// The kernel's counters belong to rules, which a change rewrites (a rewritten rule counts from
// zero under a new handle), so the collector keeps the last value of each rule and adds what
// each rule counted since; what a rule counted between the last scrape and its rewrite is lost.
// It reads the kernel only when scraped: nothing is written per packet or per scrape.
type denialCollector struct {
	source func() *dataplane.Programmer

	mu         sync.Mutex
	last       map[ruleID]denialTotal
	totals     map[denialKey]denialTotal
	readErrors uint64
}

func newDenialCollector(source func() *dataplane.Programmer) *denialCollector {
	return &denialCollector{source: source, last: map[ruleID]denialTotal{}, totals: map[denialKey]denialTotal{}}
}

func (c *denialCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{deniedPacketsDesc, deniedBytesDesc, auditPacketsDesc, auditBytesDesc, counterReadsFailedDesc} {
		ch <- d
	}
}

func (c *denialCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.update()
	for k, t := range c.totals {
		pd, bd := deniedPacketsDesc, deniedBytesDesc
		if k.audit {
			pd, bd = auditPacketsDesc, auditBytesDesc
		}
		ch <- prometheus.MustNewConstMetric(pd, prometheus.CounterValue, float64(t.packets), k.policy, k.direction, k.action)
		ch <- prometheus.MustNewConstMetric(bd, prometheus.CounterValue, float64(t.bytes), k.policy, k.direction, k.action)
	}
	ch <- prometheus.MustNewConstMetric(counterReadsFailedDesc, prometheus.CounterValue, float64(c.readErrors))
}

// update adds what each denying rule counted since the last read.
func (c *denialCollector) update() {
	prog := c.source()
	if prog == nil {
		return
	}
	rcs, err := prog.RuleCounters()
	if err != nil {
		c.readErrors++
		return
	}
	c.add(rcs, prog.Mode())
}

// add folds one read of the rules' counters into the totals.
func (c *denialCollector) add(rcs []dataplane.RuleCounter, mode dataplane.Mode) {
	seen := make(map[ruleID]denialTotal, len(c.last))
	for _, rc := range rcs {
		if rc.Pod == "-" || (rc.Action != dataplane.Drop && rc.Action != dataplane.Reject) {
			continue
		}
		id := ruleID{rc.Handle, rc.Key()}
		now := denialTotal{rc.Packets, rc.Bytes}
		seen[id] = now
		prev := c.last[id]
		if now.packets < prev.packets || now.bytes < prev.bytes {
			prev = denialTotal{} // not the rule read last time
		}
		if now == prev {
			continue
		}
		k := denialKey{audit: mode == dataplane.Audit, policy: policyOf(rc), direction: rc.Direction, action: string(rc.Action)}
		t := c.totals[k]
		t.packets += now.packets - prev.packets
		t.bytes += now.bytes - prev.bytes
		c.totals[k] = t
	}
	c.last = seen
}

// policyOf names the policy a denying rule belongs to, from the names internal/agent/enforce
// gives rules (memberv1alpha1.AgentRuleName): "<tier>/<MemberNetworkPolicy>/<direction>/<index>[/<port>]" becomes
// "<tier>/<MemberNetworkPolicy>"; the NetworkPolicy stage's own deny (a pod that NetworkPolicies
// isolate, no rule of which allows) becomes "networkpolicy/<namespace>".
func policyOf(rc dataplane.RuleCounter) string {
	if rc.Stage == "networkpolicy" {
		ns, _, _ := strings.Cut(rc.Pod, "/")
		return "networkpolicy/" + ns
	}
	parts := strings.SplitN(rc.Name, "/", 3)
	if len(parts) < 3 {
		return rc.Name
	}
	return parts[0] + "/" + parts[1]
}
