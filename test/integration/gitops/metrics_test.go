package gitops_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

// metricsAddr is where the suite's manager serves /metrics, as the manager binary does.
var metricsAddr string

// freeLoopbackAddr finds a free port on loopback for the metrics server.
func freeLoopbackAddr() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	return l.Addr().String()
}

var _ = Describe("The manager's metrics endpoint and Events", func() {
	It("serves Meridian's metrics with their labels: members, work passes, queues, agents, policies", func(ctx SpecContext) {
		By("making a Work pass, an AgentConfig and policies to report on")
		ensureUnreachableMember(ctx)
		create(ctx, memberCluster("metrics-unreachable", "unreachable-kubeconfig"))
		create(ctx, work("metrics", configMap("default", "gitops-metrics")))
		create(ctx, agentConfig("metrics-agents", "metrics-unreachable"))
		create(ctx, allowPolicy("metrics-policy", "application", "metrics-unreachable"))
		// member-1 enforces it as a NetworkPolicy, which is Realized once applied.
		create(ctx, allowPolicy("metrics-realized", "application", memberName))

		Eventually(func(g Gomega) {
			families := scrape(g)
			// Member cache: reachability, ready nodes and probe time, per member.
			g.Expect(sample(g, families, "meridian_member_reachable", map[string]string{"member": memberName})).To(Equal(1.0))
			g.Expect(sample(g, families, "meridian_member_reachable", map[string]string{"member": unreachableMember})).To(Equal(0.0))
			g.Expect(sample(g, families, "meridian_member_nodes_ready", map[string]string{"member": liveMember})).To(Equal(1.0))
			g.Expect(sample(g, families, "meridian_member_probe_duration_seconds", map[string]string{"member": memberName, "reason": "ProbeSucceeded"})).To(BeNumerically(">", 0))
			// Work engine: passes per member and result; the member's own queues, of its
			// ClusterWorks and of its status writes.
			g.Expect(sample(g, families, "meridian_work_apply_duration_seconds", map[string]string{"member": memberName, "result": "success"})).To(BeNumerically(">", 0))
			for _, queue := range []string{"work", "status"} {
				labels := map[string]string{"member": memberName, "queue": queue}
				g.Expect(sample(g, families, "meridian_member_queue_depth", labels)).To(BeNumerically(">=", 0))
				_ = sample(g, families, "meridian_member_queue_retries_total", labels)
				_ = sample(g, families, "meridian_member_queue_longest_running_seconds", labels)
			}
			workQueue := map[string]string{"member": memberName, "queue": "work"}
			g.Expect(sample(g, families, "meridian_member_queue_adds_total", workQueue)).To(BeNumerically(">", 0))
			g.Expect(sample(g, families, "meridian_member_queue_wait_duration_seconds", workQueue)).To(BeNumerically(">", 0))
			// Policies: each member's realization of a generation, timed once.
			g.Expect(sample(g, families, "meridian_policy_realization_seconds", map[string]string{"cluster": memberName, "form": "NetworkPolicy"})).To(BeNumerically(">", 0))
			// Status: agents per AgentConfig and cluster, clusters per policy phase.
			for _, state := range []string{"desired", "updated", "ready", "stale"} {
				_ = sample(g, families, "meridian_agentconfig_agents", map[string]string{"agentconfig": "metrics-agents", "cluster": "metrics-unreachable", "state": state})
			}
			g.Expect(sample(g, families, "meridian_agentconfig_clusters", map[string]string{"agentconfig": "metrics-agents", "phase": "Unreachable"})).To(Equal(1.0))
			g.Expect(sample(g, families, "meridian_globalnetworkpolicy_clusters", map[string]string{"policy": "metrics-policy", "phase": "Pending", "enforcement": "Exact"})).To(Equal(1.0))
			// controller-runtime's own, its workqueue_* for its controllers' queues only: a
			// member's series are all Meridian's (and go with it).
			g.Expect(families).To(HaveKey("controller_runtime_reconcile_total"))
			g.Expect(families).To(HaveKey("workqueue_depth"))
			g.Expect(seriesOf(families, memberName)).To(HaveEach(HavePrefix("meridian_")))
		}, timeout, poll).Should(Succeed())
	}, SpecTimeout(3*time.Minute))

	It("drops a removed member's series", func(ctx SpecContext) {
		const gone = "metrics-gone"
		create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: gone + "-kubeconfig"},
			Data:       map[string][]byte{testbed.KubeconfigSecretKey: bed.Member(memberName).Kubeconfig},
		})
		create(ctx, memberCluster(gone, gone+"-kubeconfig"))
		Eventually(func(g Gomega) {
			families := scrape(g)
			g.Expect(sample(g, families, "meridian_member_reachable", map[string]string{"member": gone})).To(Equal(1.0))
			g.Expect(sample(g, families, "meridian_member_queue_depth", map[string]string{"member": gone, "queue": "work"})).To(BeNumerically(">=", 0))
		}, timeout, poll).Should(Succeed())

		Expect(bed.Hub.Client.Delete(ctx, &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: gone}})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(seriesOf(scrape(g), gone)).To(BeEmpty())
		}, timeout, poll).Should(Succeed())
	}, SpecTimeout(3*time.Minute))

	It("records Events when a Work is applied or stalls and when a member becomes unreachable", func(ctx SpecContext) {
		w := create(ctx, work("events-applied", configMap("default", "gitops-events")))
		Expect(bed.Member(memberName).Client.Create(ctx, configMap("default", "gitops-events-theirs"))).To(Succeed())
		stalled := create(ctx, work("events-conflict", configMap("default", "gitops-events-theirs")))
		ensureUnreachableMember(ctx)
		Eventually(func(g Gomega) {
			g.Expect(eventsAbout(g, "ClusterWork", w.GetName())).To(ContainElement(HaveField("Reason", "Applied")))
			g.Expect(eventsAbout(g, "ClusterWork", stalled.GetName())).To(ContainElement(SatisfyAll(
				HaveField("Reason", "Conflict"), HaveField("Type", corev1.EventTypeWarning))))
			g.Expect(eventsAbout(g, "MemberCluster", unreachableMember)).To(ContainElement(SatisfyAll(
				HaveField("Reason", "MemberUnreachable"), HaveField("Type", corev1.EventTypeWarning))))
			g.Expect(eventsAbout(g, "MemberCluster", memberName)).To(ContainElement(HaveField("Reason", "MemberReachable")))
		}, timeout, poll).Should(Succeed())
	}, SpecTimeout(3*time.Minute))
})

func scrape(g Gomega) map[string]*dto.MetricFamily {
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", metricsAddr))
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return families
}

// sample is the value of the series of a family with exactly these labels: a gauge's value, a
// histogram's count.
func sample(g Gomega, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := families[name]
	g.Expect(ok).To(BeTrue(), "no metric %s", name)
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		g.Expect(got).To(HaveLen(len(labels)), "%s has labels %v, want exactly %v", name, got, labels)
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	g.Expect(false).To(BeTrue(), "no %s series with labels %v", name, labels)
	return 0
}

// seriesOf names the series that carry the member in any label.
func seriesOf(families map[string]*dto.MetricFamily, member string) []string {
	var out []string
	for name, f := range families {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), member) {
					out = append(out, fmt.Sprintf("%s{%s=%q}", name, l.GetName(), l.GetValue()))
				}
			}
		}
	}
	return out
}

func eventsAbout(g Gomega, kind, name string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	g.Expect(bed.Hub.Client.List(context.Background(), list)).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}
