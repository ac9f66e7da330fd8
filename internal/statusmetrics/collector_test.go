package statusmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestCollectorReportsStatusAsItIs(t *testing.T) {
	s := runtime.NewScheme()
	if err := fleetv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := policyv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	ac := &fleetv1alpha1.AgentConfig{ObjectMeta: metav1.ObjectMeta{Name: "fleet"}, Status: fleetv1alpha1.AgentConfigStatus{Clusters: []fleetv1alpha1.AgentClusterStatus{
		{Cluster: "a", Phase: fleetv1alpha1.AgentClusterUpdated, Desired: 3, Updated: 3, Ready: 2, Stale: 1},
		{Cluster: "b", Phase: fleetv1alpha1.AgentClusterUpdated, Desired: 1, Updated: 1, Ready: 1},
	}}}
	gnp := &policyv1alpha1.GlobalNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny"}, Status: policyv1alpha1.GlobalNetworkPolicyStatus{Clusters: []policyv1alpha1.ClusterPolicyStatus{
		{Cluster: "a", Phase: policyv1alpha1.PhaseRealized, Enforcement: policyv1alpha1.EnforcementExact},
		{Cluster: "b", Phase: policyv1alpha1.PhaseRealized, Enforcement: policyv1alpha1.EnforcementExact},
		{Cluster: "c", Phase: policyv1alpha1.PhaseFailed, Enforcement: policyv1alpha1.EnforcementUnsupported},
	}}}
	c := &Collector{}
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("%d metrics without a reader", n)
	}
	c.SetReader(fake.NewClientBuilder().WithScheme(s).WithObjects(ac, gnp).Build())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP meridian_agentconfig_clusters Member clusters of an AgentConfig by rollout phase (Pending, Progressing, Updated, Failed, Conflict, Unreachable).
# TYPE meridian_agentconfig_clusters gauge
meridian_agentconfig_clusters{agentconfig="fleet",phase="Updated"} 2
# HELP meridian_globalnetworkpolicy_clusters Member clusters of a GlobalNetworkPolicy by phase (Realized, Pending, Failed) and enforcement (Exact, Restricted, Unsupported).
# TYPE meridian_globalnetworkpolicy_clusters gauge
meridian_globalnetworkpolicy_clusters{enforcement="Exact",phase="Realized",policy="deny"} 2
meridian_globalnetworkpolicy_clusters{enforcement="Unsupported",phase="Failed",policy="deny"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "meridian_agentconfig_clusters", "meridian_globalnetworkpolicy_clusters"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "meridian_agentconfig_agents"); n != 8 {
		t.Errorf("%d agent series, want 4 states × 2 clusters", n)
	}
}
