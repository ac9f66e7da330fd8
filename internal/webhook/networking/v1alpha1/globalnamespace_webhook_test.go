package v1alpha1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

func TestValidateGlobalNamespace(t *testing.T) {
	valid := func() *netv1alpha1.GlobalNamespace {
		return &netv1alpha1.GlobalNamespace{
			ObjectMeta: metav1.ObjectMeta{Name: "payments"},
			Spec: netv1alpha1.GlobalNamespaceSpec{
				Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
				Labels:    map[string]string{"team": "payments"},
			},
		}
	}
	cases := []struct {
		name   string
		mutate func(*netv1alpha1.GlobalNamespace)
		want   string // substring of the error; empty for valid
	}{
		{"valid", func(*netv1alpha1.GlobalNamespace) {}, ""},
		{"names only", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Placement = fleetv1alpha1.Placement{ClusterNames: []string{"member-1"}}
		}, ""},
		{"empty selector selects all", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Placement = fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}}
		}, ""},
		{"no placement", func(g *netv1alpha1.GlobalNamespace) { g.Spec.Placement = fleetv1alpha1.Placement{} }, "set placement.clusterSelector"},
		{"bad selector operator", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Placement.ClusterSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}}
		}, "spec.placement.clusterSelector.matchExpressions[0].operator"},
		{"name not a DNS label without namespaceName", func(g *netv1alpha1.GlobalNamespace) { g.Name = "Payments.Prod" }, "metadata.name"},
		{"name not a DNS label with namespaceName", func(g *netv1alpha1.GlobalNamespace) {
			g.Name = "payments.prod"
			g.Spec.NamespaceName = "payments"
		}, ""},
		{"bad override namespace", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Overrides = []netv1alpha1.NamespaceOverride{{Cluster: "member-1", NamespaceName: "Pay_ments"}}
		}, "spec.overrides[0].namespaceName"},
		{"bad cluster name", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Placement.ClusterNames = []string{strings.Repeat("a", 48)}
		}, "spec.placement.clusterNames[0]"},
		{"bad label value", func(g *netv1alpha1.GlobalNamespace) { g.Spec.Labels["team"] = "not a value" }, "spec.labels"},
		{"reserved label", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Labels[netv1alpha1.GlobalNamespaceLabel] = "other"
		}, "set by Meridian itself"},
		{"reserved annotation", func(g *netv1alpha1.GlobalNamespace) {
			g.Spec.Annotations = map[string]string{"fleet.meridian.io/work": "x"}
		}, "set by Meridian itself"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := valid()
			tc.mutate(g)
			err := toError(g, ValidateGlobalNamespace(g))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("want an error containing %q, got none", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}
