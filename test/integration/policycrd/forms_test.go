package policycrd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/internal/policy/translate/cnp"
	"github.com/meridian-io/meridian/internal/policy/translate/member"
	"github.com/meridian-io/meridian/internal/policy/translate/netpol"
	"github.com/meridian-io/meridian/test/testbed"
)

// TestMembersAcceptEveryForm writes each form's translation of a policy set that uses every
// feature (every action, tiers, excepts, ClusterSet addresses, named ports, ranges, a policy split
// past 25 rules) into a real apiserver that serves Meridian's member CRD, the Antrea CRD schema of
// internal/policy/translate/antrea and network-policy-api v0.3.0's standard CRD: a member must
// accept what the translators write, every field known to its schema (strict field validation).
func TestMembersAcceptEveryForm(t *testing.T) {
	dir, err := testbed.ModuleDir("sigs.k8s.io/network-policy-api")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "antrea.yaml"), antrea.CRDs, 0o600); err != nil {
		t.Fatal(err)
	}
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, memberv1alpha1.AddToScheme, npav1beta1.Install, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: testbed.BinDir(), ErrorIfCRDPathMissing: true, Scheme: s,
		CRDDirectoryPaths: []string{
			filepath.Join(testbed.RepoRoot(), "config", "crd", "member"),
			filepath.Join(dir, "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml"),
			filepath.Join(tmp, "antrea.yaml"),
		}}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ns := range []string{"shop", "pay"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": ns}}}); err != nil {
			t.Fatal(err)
		}
	}

	in := everyFeature()
	ps, err := translate.Resolve(in)
	if err != nil {
		t.Fatal(err)
	}
	antreaRes, err := antrea.Translate(ps)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		res  translate.Result
	}{
		{"Meridian", member.Translate(ps)},
		{"Antrea", antreaRes},
		{"ClusterNetworkPolicy", cnp.Translate(ps)},
		{"NetworkPolicy", netpol.Translate(ps, in.Namespaces)},
	} {
		if len(f.res.Objects) == 0 {
			t.Errorf("%s: nothing to write", f.name)
		}
		for _, o := range f.res.Objects {
			if err := c.Create(ctx, o, client.FieldValidation("Strict")); err != nil {
				b, _ := yaml.Marshal(o)
				t.Errorf("%s: the member refuses %s: %v\n%s", f.name, o.GetName(), err, b)
			}
		}
		t.Logf("%s: %d objects accepted", f.name, len(f.res.Objects))
	}
}

func everyFeature() translate.Input {
	in := translate.Input{Cluster: "a", Placements: map[string][]string{}}
	for _, t := range policyv1alpha1.DefaultTiers {
		tier := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: t.Priority}}
		tier.Name = t.Name
		in.Tiers = append(in.Tiers, tier)
	}
	team := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: 120}}
	team.Name = "team"
	in.Tiers = append(in.Tiers, team)
	for _, ns := range []string{"shop", "pay"} {
		in.Namespaces = append(in.Namespaces, translate.Namespace{Name: ns, Labels: map[string]string{"team": ns}})
	}
	for i := range 3 {
		in.Pods = append(in.Pods, translate.InventoryPod{Cluster: "b", Namespace: "shop", NamespaceLabels: map[string]string{"team": "shop"}, Labels: map[string]string{"app": "db"}, IP: fmt.Sprintf("10.1.0.%d", i+1)})
	}
	http, p80, p8000 := intstr.FromString("http"), intstr.FromInt32(80), intstr.FromInt32(8000)
	end := int32(8080)
	ports := []policyv1alpha1.Port{{Port: &p80}, {Port: &p8000, EndPort: &end, Protocol: "UDP"}, {Protocol: "SCTP"}}
	peers := []policyv1alpha1.Peer{
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Scope: policyv1alpha1.ScopeClusterSet},
		{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}}},
		{IPBlock: &policyv1alpha1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25", "192.0.2.7/32"}}},
	}
	add := func(name, tier string, ingress, egress []policyv1alpha1.Rule) {
		g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Tier: tier, Priority: ptr.To[int32](10), Placement: fleetv1alpha1.Placement{ClusterNames: []string{"a", "b"}},
			AppliedTo: policyv1alpha1.AppliedTo{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}},
			Ingress:   ingress, Egress: egress,
		}}
		g.Name = name
		in.Policies = append(in.Policies, g)
		in.Placements[name] = []string{"a", "b"}
	}
	var actions []policyv1alpha1.Rule
	for i, a := range []policyv1alpha1.RuleAction{"Reject", "Drop", "Pass", "Allow"} {
		actions = append(actions, policyv1alpha1.Rule{Name: fmt.Sprintf("r%d", i), Action: a, Peers: peers, Ports: ports})
	}
	named := []policyv1alpha1.Rule{{Name: "named", Action: "Allow", Peers: peers[:2], Ports: []policyv1alpha1.Port{{Port: &http}}}}
	var long []policyv1alpha1.Rule
	for i := range 30 {
		long = append(long, policyv1alpha1.Rule{Name: fmt.Sprintf("l%d", i), Action: "Drop", Peers: peers, Ports: ports})
	}
	add("every-action", "securityops", nil, actions)
	add("allow-only", "team", append(named, actions[3]), append(named, actions[3]))
	add("long", "application", nil, long)
	add("base", "baseline", nil, actions)
	return in
}
