package v1alpha1

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

func valid() *policyv1alpha1.GlobalNetworkPolicy {
	p80 := intstr.FromInt32(80)
	g := &policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Tier:      "securityops",
		Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
		AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Ingress: []policyv1alpha1.Rule{{Name: "from-lb", Action: policyv1alpha1.ActionAllow,
			Peers: []policyv1alpha1.Peer{{IPBlock: &policyv1alpha1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}},
			Ports: []policyv1alpha1.Port{{Port: &p80}}}},
		Egress: []policyv1alpha1.Rule{{Name: "to-db", Action: policyv1alpha1.ActionDrop,
			Peers: []policyv1alpha1.Peer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "db"}}, Scope: policyv1alpha1.ScopeClusterSet}}}},
	}}
	g.Name = "web"
	return g
}

func TestValidateGlobalNetworkPolicy(t *testing.T) {
	name := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }
	end := func(n int32) *int32 { return &n }
	cases := []struct {
		name   string
		mutate func(*policyv1alpha1.GlobalNetworkPolicy)
		want   string // substring of the errors; empty for valid
	}{
		{"valid", func(*policyv1alpha1.GlobalNetworkPolicy) {}, ""},
		{"except outside cidr", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Ingress[0].Peers[0].IPBlock.Except = []string{"11.0.0.0/16"}
		}, `except "11.0.0.0/16" is not inside cidr 10.0.0.0/8`},
		{"cidr with host bits", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Ingress[0].Peers[0].IPBlock = &policyv1alpha1.IPBlock{CIDR: "10.0.0.1/8"}
		}, "write 10.0.0.0/8"},
		{"port out of range", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.Ingress[0].Ports[0].Port = num(70000) }, "from 1 to 65535"},
		{"range backwards", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.Ingress[0].Ports[0].EndPort = end(79) }, "must be at least port (80)"},
		{"named port with a range", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Ingress[0].Ports[0] = policyv1alpha1.Port{Port: name("http"), EndPort: end(90)}
		}, "a named port cannot start a range"},
		{"bad port name", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.Ingress[0].Ports[0].Port = name("Not_A_Name") }, "container port name"},
		{"named port to an ipBlock on egress", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Egress[0].Peers = append(g.Spec.Egress[0].Peers, policyv1alpha1.Peer{IPBlock: &policyv1alpha1.IPBlock{CIDR: "192.0.2.0/24"}})
			g.Spec.Egress[0].Ports = []policyv1alpha1.Port{{Port: name("http")}}
		}, "never on an ipBlock destination"},
		{"empty appliedTo", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.AppliedTo = policyv1alpha1.AppliedTo{} }, "write podSelector: {}"},
		{"appliedTo selects everything by accident", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.AppliedTo.PodSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}}}}
		}, "add a positive requirement"},
		{"every pod on purpose", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.AppliedTo.PodSelector = &metav1.LabelSelector{} }, ""},
		{"peer with ipBlock and selectors", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Ingress[0].Peers[0].PodSelector = &metav1.LabelSelector{}
		}, "split it into two peers"},
		{"no peers", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.Ingress[0].Peers = nil }, "0.0.0.0/0"},
		{"no rules", func(g *policyv1alpha1.GlobalNetworkPolicy) { g.Spec.Ingress, g.Spec.Egress = nil, nil }, "at least one ingress or egress rule"},
		{"duplicate rule names", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Ingress = append(g.Spec.Ingress, g.Spec.Ingress[0])
		}, "Duplicate value"},
		{"more rules than a member form carries", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			for i := range policyv1alpha1.MaxRulesPerDirection {
				r := g.Spec.Egress[0]
				r.Name = fmt.Sprintf("r%d", i)
				g.Spec.Egress = append(g.Spec.Egress, r)
			}
		}, "must have at most 100 items"},
		{"excepts expand past what members carry", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			b := &policyv1alpha1.IPBlock{CIDR: "10.0.0.0/8"}
			for i := range 25 {
				b.Except = append(b.Except, fmt.Sprintf("10.%d.0.1/32", i*10))
			}
			var peers []policyv1alpha1.Peer
			for range 3 {
				peers = append(peers, policyv1alpha1.Peer{IPBlock: b})
			}
			g.Spec.Ingress[0].Peers = peers
		}, "use fewer or wider excepts"},
		{"bad placement name", func(g *policyv1alpha1.GlobalNetworkPolicy) {
			g.Spec.Placement = fleetv1alpha1.Placement{ClusterNames: []string{"Member_1"}}
		}, "spec.placement.clusterNames[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := valid()
			tc.mutate(g)
			errs, _ := ValidateGlobalNetworkPolicy(g)
			got := errs.ToAggregate()
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("want valid, got %v", got)
			case tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, got)
			}
		})
	}
}

func hub(t *testing.T, objs ...client.Object) client.Client {
	s := runtime.NewScheme()
	if err := policyv1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

func tier(name string, prio int32) *policyv1alpha1.Tier {
	t := &policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: prio}}
	t.Name = name
	return t
}

func TestUnknownTier(t *testing.T) {
	v := GlobalNetworkPolicyValidator{HubReader: hub(t, tier("securityops", 100), tier("application", 250))}
	if _, err := v.ValidateCreate(context.Background(), valid()); err != nil {
		t.Fatalf("known tier: %v", err)
	}
	g := valid()
	g.Spec.Tier = "securty"
	_, err := v.ValidateCreate(context.Background(), g)
	if err == nil || !strings.Contains(err.Error(), "securty: create the Tier first, or use one of: application, securityops") {
		t.Fatalf("got %v", err)
	}
}

func TestNoTierYet(t *testing.T) {
	v := GlobalNetworkPolicyValidator{HubReader: hub(t)}
	_, err := v.ValidateCreate(context.Background(), valid())
	if err == nil || !strings.Contains(err.Error(), "no Tier exists yet: the manager creates the default tiers when it starts") {
		t.Fatalf("got %v", err)
	}
}

func TestPassInBaselineWarns(t *testing.T) {
	v := GlobalNetworkPolicyValidator{HubReader: hub(t, tier("baseline", 253))}
	g := valid()
	g.Spec.Tier = "baseline"
	g.Spec.Egress[0].Action = policyv1alpha1.ActionPass
	w, err := v.ValidateCreate(context.Background(), g)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "Pass in the baseline tier allows") {
		t.Fatalf("got %v, %v", w, err)
	}
}

func TestTierInUseCannotBeDeleted(t *testing.T) {
	g1, g2 := valid(), valid()
	g2.Name = "api"
	other := valid()
	other.Name, other.Spec.Tier = "other", "application"
	v := TierValidator{HubReader: hub(t, g1, g2, other)}
	_, err := v.ValidateDelete(context.Background(), tier("securityops", 100))
	if err == nil || !strings.Contains(err.Error(), "in use by GlobalNetworkPolicies api, web") {
		t.Fatalf("got %v", err)
	}
	if _, err := v.ValidateDelete(context.Background(), tier("emergency", 50)); err != nil {
		t.Fatalf("unused tier: %v", err)
	}
}

func TestValidateTier(t *testing.T) {
	if _, err := (TierValidator{}).ValidateCreate(context.Background(), tier("Team_A", 0)); err == nil ||
		!strings.Contains(err.Error(), "DNS label") || !strings.Contains(err.Error(), "from 1 to 255") {
		t.Fatalf("got %v", err)
	}
}
