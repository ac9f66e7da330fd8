package agent

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
)

func TestRealization(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	lease := func(node string, renewed time.Duration) coordinationv1.Lease {
		l := coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To[int32](40),
			RenewTime: &metav1.MicroTime{Time: now.Add(-renewed)}}}
		l.Name = memberv1alpha1.AgentLeasePrefix + node
		return l
	}
	info := func(node string, policies ...memberv1alpha1.RealizedPolicy) memberv1alpha1.NodeAgentInfo {
		i := memberv1alpha1.NodeAgentInfo{Policies: policies}
		i.Name = node
		return i
	}
	policy := func(name string, gen int64) memberv1alpha1.MemberNetworkPolicy {
		p := memberv1alpha1.MemberNetworkPolicy{}
		p.Name, p.Generation = name, gen
		return p
	}
	policies := []memberv1alpha1.MemberNetworkPolicy{policy("a", 2), policy("b", 1)}
	infos := []memberv1alpha1.NodeAgentInfo{
		info("n1", memberv1alpha1.RealizedPolicy{Name: "a", Generation: 2}, memberv1alpha1.RealizedPolicy{Name: "b", Generation: 1}),
		info("n2", memberv1alpha1.RealizedPolicy{Name: "a", Generation: 1}, memberv1alpha1.RealizedPolicy{Name: "b", Generation: 1}),
		// n3's agent stopped renewing its Lease: not desired, whatever it reports.
		info("n3", memberv1alpha1.RealizedPolicy{Name: "a", Generation: 1}),
	}
	leases := []coordinationv1.Lease{lease("n1", time.Second), lease("n2", 39*time.Second), lease("n3", 41*time.Second)}
	leases = append(leases, coordinationv1.Lease{}) // not an agent's Lease (the election Lease, say)
	leases[3].Name = memberv1alpha1.RealizationLeaseName

	got := Realization(policies, infos, leases, now)
	a, b := got["a"], got["b"]
	if a.ObservedGeneration != 2 || a.NodesRealized != 1 || a.NodesDesired != 2 {
		t.Errorf("a: %+v, want generation 2, 1 of 2 nodes", a)
	}
	c := meta.FindStatusCondition(a.Conditions, memberv1alpha1.PolicyReadyCondition)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != memberv1alpha1.PolicyRealizingReason || !strings.Contains(c.Message, "waiting for n2.") {
		t.Errorf("a's Ready: %+v", c)
	}
	if b.NodesRealized != 2 || b.NodesDesired != 2 || !meta.IsStatusConditionTrue(b.Conditions, memberv1alpha1.PolicyReadyCondition) {
		t.Errorf("b: %+v, want 2 of 2, Ready", b)
	}

	// Fed its own output, it returns the same status: nothing to write in a steady state.
	for i := range policies {
		policies[i].Status = got[policies[i].Name]
	}
	if again := Realization(policies, infos, leases, now); !equality.Semantic.DeepEqual(again, got) {
		t.Errorf("a second pass over the same reports changed the status:\n%+v\n%+v", got, again)
	}

	// No live agent: nothing enforces.
	none := Realization(policies[:1], infos, nil, now)["a"]
	if c := meta.FindStatusCondition(none.Conditions, memberv1alpha1.PolicyReadyCondition); none.NodesDesired != 0 || c.Reason != memberv1alpha1.PolicyNoAgentsReason {
		t.Errorf("no agents: %+v", none)
	}
}
