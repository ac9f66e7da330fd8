// Package policycrd checks the policy and member CRDs against a real apiserver.
package policycrd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

// TestCRDs installs the policy CRDs into a real apiserver (their validation rules must fit its cost
// budget) and checks that the rules refuse bad objects with messages that say what to fix.
func TestCRDs(t *testing.T) {
	root := testbed.RepoRoot()
	s := runtime.NewScheme()
	_ = policyv1alpha1.AddToScheme(s)
	_ = memberv1alpha1.AddToScheme(s)
	env := &envtest.Environment{BinaryAssetsDirectory: testbed.BinDir(), ErrorIfCRDPathMissing: true,
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases"), filepath.Join(root, "config", "crd", "member")}}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	c, _ := client.New(cfg, client.Options{Scheme: s})
	ctx := context.Background()
	p80 := intstr.FromInt32(80)
	pn := intstr.FromString("http")
	end := int32(90)
	good := func() *policyv1alpha1.GlobalNetworkPolicy {
		return &policyv1alpha1.GlobalNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Placement: fleetv1alpha1.Placement{ClusterNames: []string{"a"}},
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}},
			Ingress: []policyv1alpha1.Rule{{Name: "r", Action: policyv1alpha1.ActionDrop,
				Peers: []policyv1alpha1.Peer{{IPBlock: &policyv1alpha1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}, {PodSelector: &metav1.LabelSelector{}, Scope: policyv1alpha1.ScopeClusterSet}},
				Ports: []policyv1alpha1.Port{{Port: &p80, EndPort: &end}, {Port: &pn, Protocol: policyv1alpha1.ProtocolUDP}}}},
		}}
	}
	if err := c.Create(ctx, good()); err != nil {
		t.Fatalf("good: %v", err)
	}
	// spec.priority: unset is defaulted to 1000 by the schema; 0, the highest, is kept (a Go
	// client can send it: the field is a pointer).
	for _, tc := range []struct {
		name string
		set  *int32
		want int32
	}{{"priority-unset", nil, 1000}, {"priority-zero", ptr.To[int32](0), 0}, {"priority-ten", ptr.To[int32](10), 10}} {
		p := good()
		p.Name, p.Spec.Priority = tc.name, tc.set
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := &policyv1alpha1.GlobalNetworkPolicy{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.Priority == nil || *got.Spec.Priority != tc.want || got.Spec.PriorityValue() != tc.want {
			t.Errorf("%s: spec.priority %v read back, want %d", tc.name, got.Spec.Priority, tc.want)
		}
	}
	bad := []struct {
		name string
		mut  func(*policyv1alpha1.GlobalNetworkPolicy)
		want string
	}{
		{"empty appliedTo", func(p *policyv1alpha1.GlobalNetworkPolicy) { p.Spec.AppliedTo = policyv1alpha1.AppliedTo{} }, "appliedTo must set"},
		{"bad cidr", func(p *policyv1alpha1.GlobalNetworkPolicy) { p.Spec.Ingress[0].Peers[0].IPBlock.CIDR = "10.0.0.1/8" }, "host bits"},
		{"both", func(p *policyv1alpha1.GlobalNetworkPolicy) {
			p.Spec.Ingress[0].Peers[0].PodSelector = &metav1.LabelSelector{}
		}, "either ipBlock"},
		{"named range", func(p *policyv1alpha1.GlobalNetworkPolicy) { p.Spec.Ingress[0].Ports[1].EndPort = &end }, "named port cannot"},
		{"no rules", func(p *policyv1alpha1.GlobalNetworkPolicy) { p.Spec.Ingress = nil }, "at least one"},
	}
	for i, b := range bad {
		p := good()
		p.Name = "bad" + string(rune('a'+i))
		b.mut(p)
		err := c.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: got %v, want %q", b.name, err, b.want)
		}
	}
	if err := c.Create(ctx, &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Spec: policyv1alpha1.TierSpec{Priority: 10}}); err != nil {
		t.Fatal(err)
	}
	m := &memberv1alpha1.MemberNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "m"}, Spec: memberv1alpha1.MemberNetworkPolicySpec{Tier: "t", Policy: "p",
		AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{}},
		Ingress:   []memberv1alpha1.MemberRule{{Name: "r", Action: "Allow", Peers: []memberv1alpha1.MemberPeer{{Addresses: []string{"10.0.0.1"}}}}}}}
	if err := c.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
}
