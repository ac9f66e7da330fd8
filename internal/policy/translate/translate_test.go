package translate_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
	"github.com/meridian-io/meridian/internal/policy/translate/member"
)

func tier(name string, prio int32) policyv1alpha1.Tier {
	t := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: prio}}
	t.Name = name
	return t
}

func gnp(name, tier string, prio int32, peer policyv1alpha1.Peer) policyv1alpha1.GlobalNetworkPolicy {
	g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Tier: tier, Priority: ptr.To(prio), AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}},
		Ingress: []policyv1alpha1.Rule{{Name: "r", Action: policyv1alpha1.ActionAllow, Peers: []policyv1alpha1.Peer{peer}}},
	}}
	g.Name = name
	return g
}

// ClusterSet peers become the member's own selectors plus the addresses of matching pods in the
// other members of the placement; policies come in evaluation order, the baseline tier last.
func TestResolveAndMemberForm(t *testing.T) {
	db := policyv1alpha1.Peer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Scope: policyv1alpha1.ScopeClusterSet}
	in := translate.Input{
		Cluster: "a",
		Tiers:   []policyv1alpha1.Tier{tier("securityops", 100), tier("application", 250), tier("baseline", 10)},
		Policies: []policyv1alpha1.GlobalNetworkPolicy{
			gnp("z-base", "baseline", 0, db),
			gnp("b-app", "application", 1, db),
			gnp("a-app", "application", 1, db),
			gnp("sec", "securityops", 5, db),
		},
		Placements: map[string][]string{"z-base": {"a", "b"}, "b-app": {"a", "b"}, "a-app": {"a"}, "sec": {"a", "b", "c"}},
		Pods: []translate.InventoryPod{
			{Cluster: "a", Labels: map[string]string{"app": "db"}, IP: "10.0.0.1"},
			{Cluster: "b", Labels: map[string]string{"app": "db"}, IP: "10.1.0.2"},
			{Cluster: "b", Labels: map[string]string{"app": "web"}, IP: "10.1.0.3"},
			{Cluster: "c", Labels: map[string]string{"app": "db"}, IP: "10.2.0.1"},
		},
	}
	ps, err := translate.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	addrs := map[string]int{}
	for _, p := range ps {
		order = append(order, p.GNP.Name)
		addrs[p.GNP.Name] = len(p.Ingress[0].Addresses)
	}
	if want := []string{"sec", "a-app", "b-app", "z-base"}; len(order) != 4 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] || order[3] != want[3] {
		t.Errorf("order %v, want %v", order, want)
	}
	if addrs["sec"] != 2 || addrs["b-app"] != 1 || addrs["a-app"] != 0 {
		t.Errorf("addresses per policy: %v (sec: b and c; b-app: b; a-app: none)", addrs)
	}
	res := member.Translate(ps)
	m := res.Objects[0].(*memberv1alpha1.MemberNetworkPolicy)
	peers := m.Spec.Ingress[0].Peers
	if m.Name != "sec" || len(peers) != 2 || peers[0].PodSelector == nil || len(peers[1].Addresses) != 2 || peers[1].Addresses[0] != "10.1.0.2" {
		t.Errorf("member form: %s %+v", m.Name, peers)
	}
	if last := res.Objects[3].(*memberv1alpha1.MemberNetworkPolicy); !last.Spec.Baseline {
		t.Errorf("baseline policy not marked: %+v", last.Spec)
	}
	in.Policies[0].Spec.Tier = "missing"
	if _, err := translate.Resolve(in); err == nil {
		t.Error("want an error for a missing tier")
	}
}
