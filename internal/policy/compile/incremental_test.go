package compile

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	policymodel "github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/policytest"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

var allForms = []policyv1alpha1.Form{policyv1alpha1.FormMeridian, policyv1alpha1.FormAntrea, policyv1alpha1.FormClusterNetworkPolicy, policyv1alpha1.FormNetworkPolicy}

// One policy's change translates that policy alone, in every form, and names it alone.
func TestCacheTranslatesOnlyTheChangedPolicy(t *testing.T) {
	for _, form := range allForms {
		in := benchInput()
		c := &Cache{}
		first, _, err := c.Compile(form, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(first.Translated) != len(in.Policies) {
			t.Fatalf("%s: the first compilation translated %d of %d policies", form, len(first.Translated), len(in.Policies))
		}
		for i, g := range []int{0, 1, 2, 50, 99} { // every rule kind of benchInput, each tier
			in.Policies[g].Spec = *in.Policies[g].Spec.DeepCopy()
			rules := &in.Policies[g].Spec.Egress
			if len(*rules) == 0 {
				rules = &in.Policies[g].Spec.Ingress
			}
			(*rules)[0].Ports = []policyv1alpha1.Port{{Port: new(intstr.FromInt32(int32(20000 + i)))}}
			in.Policies[g].ResourceVersion = fmt.Sprint(2 + i)
			m, changed, err := c.Compile(form, in)
			if err != nil {
				t.Fatal(err)
			}
			name := in.Policies[g].Name
			if !slices.Equal(m.Translated, []string{name}) {
				t.Errorf("%s: %s's port changed: translated %v, want [%s]", form, name, m.Translated, name)
			}
			// A policy the form cannot hold (a Drop in NetworkPolicy) has no Work to change.
			want := []string{name}
			if !m.Enforcement[name].Supported() {
				want = nil
			}
			if !slices.Equal(changed, want) {
				t.Errorf("%s: %s's port changed: changed %v, want %v", form, name, changed, want)
			}
		}
		last, _, _ := c.Compile(form, in)
		if again, changed, _ := c.Compile(form, in); again != last || len(changed) != 0 {
			t.Errorf("%s: the same input was compiled again (translated %v), changed %v", form, again.Translated, changed)
		}
	}
}

// The Antrea form numbers priorities within a tier from 1, densely: a policy inserted at the
// front of its tier renumbers every policy of the tier and no other; the tier's first policy
// taking a tier of its own (a Meridian tier) changes the shared Work too.
func TestCacheRenumbersWhatANumberingShiftMoves(t *testing.T) {
	in := benchInput()
	c := &Cache{}
	first, _, err := c.Compile(policyv1alpha1.FormAntrea, in)
	if err != nil {
		t.Fatal(err)
	}
	var securityops []string
	for _, g := range in.Policies {
		if g.Spec.Tier == "securityops" {
			securityops = append(securityops, g.Name)
		}
	}
	front := in.Policies[0] // pol-000: securityops, priority 0
	front.Name, front.UID, front.Spec.Priority = "aaa-front", "front", ptr.To[int32](0)
	in.Policies = append(in.Policies, front)
	m, changed, err := c.Compile(policyv1alpha1.FormAntrea, in)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"aaa-front"}, securityops...)
	if !slices.Equal(m.Translated, want) || !slices.Equal(changed, want) {
		t.Errorf("a policy first in securityops: translated %v, changed %v, want the %d policies of securityops", m.Translated, changed, len(want))
	}
	if m.Shared != first.Shared {
		t.Error("the shared Work was rebuilt though no tier changed")
	}

	// The hub's securityops tier moves to a priority Antrea has no static tier for: its policies
	// go to a Meridian tier, which the shared Work gains.
	in.Tiers = slices.Clone(in.Tiers)
	for i := range in.Tiers {
		if in.Tiers[i].Name == "securityops" {
			in.Tiers[i].Spec.Priority = 110
		}
	}
	m, changed, err = c.Compile(policyv1alpha1.FormAntrea, in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Translated, want) || !slices.Equal(changed, want) {
		t.Errorf("securityops moved to 110: translated %v, changed %v, want the %d policies of securityops", m.Translated, changed, len(want))
	}
	if m.Shared == nil || sameWork(m.Shared, first.Shared) {
		t.Error("the shared Work did not gain the Meridian tier")
	}
}

// Over seeded random fleets and random changes of every kind (a policy's priority, tier, rules
// or placement; a policy added or deleted; a tier's priority; pods; namespaces), the cache's
// compilation equals a from-scratch Compile of the same input, byte for byte, in every form;
// it names exactly the policies whose Work or enforcement changed, and it translates nothing
// beyond those and the policies whose own input changed.
func TestCacheEqualsACompilationFromScratch(t *testing.T) {
	o := policytest.Options{
		Members: 3, MinPods: 2, MaxPods: 6, MaxPolicies: 12,
		IP:        func(c, i int) string { return fmt.Sprintf("10.%d.0.%d", c, i+1) },
		Ports:     []int32{53, 80, 443},
		Protocols: []policyv1alpha1.Protocol{"TCP", "UDP"},
		Blocks:    []policyv1alpha1.IPBlock{{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}, {CIDR: "192.0.2.0/24"}},

		ProdPlacementOneIn: 3,
		LongPolicyOneIn:    6,
	}
	seeds, steps := 20, 10
	if testing.Short() {
		seeds = 5
	}
	translated, total := 0, 0
	for seed := range seeds {
		r := rand.New(rand.NewSource(int64(seed)))
		f := policytest.Fleet(r, o)
		extra := policytest.Fleet(rand.New(rand.NewSource(int64(seed+1000))), o).Policies // policies to add
		for _, form := range allForms {
			fl := copyFleet(f)
			c := &Cache{}
			last, lastGot, inputs := map[string]*Member{}, map[string]*Member{}, map[string]translate.Input{}
			for step := range steps + 1 {
				what := "the fleet"
				if step > 0 {
					what = mutate(r, &fl, extra, step)
				}
				for _, in := range memberInputs(fl) {
					got, changed, err := c.Compile(form, in)
					if err != nil {
						t.Fatalf("seed %d %s step %d (%s): %v", seed, form, step, what, err)
					}
					want, err := Compile(form, in)
					if err != nil {
						t.Fatal(err)
					}
					where := fmt.Sprintf("seed %d, %s, member %s, step %d (%s)", seed, form, in.Cluster, step, what)
					sameMember(t, where, got, want)
					prev := last[in.Cluster]
					if wantChanged := Changed(prev, want); !slices.Equal(changed, wantChanged) {
						t.Errorf("%s: changed %v, want %v", where, changed, wantChanged)
					}
					if prev != nil {
						own := ownInputChanged(form, inputs[in.Cluster], in)
						wantChanged := Changed(prev, want)
						var again []string // nothing when the cache returned its last compilation
						if got != lastGot[in.Cluster] {
							again = got.Translated
						}
						for _, p := range again {
							if !slices.Contains(wantChanged, p) && !own[p] {
								t.Errorf("%s: %s translated again though neither its input nor its output changed", where, p)
							}
						}
						translated += len(again)
						total += len(got.Enforcement)
					}
					last[in.Cluster], lastGot[in.Cluster], inputs[in.Cluster] = want, got, in
				}
			}
		}
	}
	t.Logf("incremental compilations translated %d of %d policies (%.0f%%)", translated, total, 100*float64(translated)/float64(max(total, 1)))
}

func sameMember(t *testing.T, where string, got, want *Member) {
	t.Helper()
	if got.Form != want.Form {
		t.Errorf("%s: form %s, want %s", where, got.Form, want.Form)
	}
	if !equality.Semantic.DeepEqual(got.Enforcement, want.Enforcement) {
		t.Errorf("%s: enforcement %+v, want %+v", where, got.Enforcement, want.Enforcement)
	}
	if len(got.Works) != len(want.Works) {
		t.Errorf("%s: %d Works, want %d", where, len(got.Works), len(want.Works))
	}
	for p, w := range want.Works {
		if !sameWork(got.Works[p], w) {
			t.Errorf("%s: the Work of %s differs from a compilation from scratch:\n%s\nwant\n%s", where, p, objects(got.Works[p]), objects(w))
		}
	}
	if !sameWork(got.Shared, want.Shared) {
		t.Errorf("%s: the shared Work differs from a compilation from scratch:\n%s\nwant\n%s", where, objects(got.Shared), objects(want.Shared))
	}
}

func objects(w *fleetv1alpha1.ClusterWork) string {
	if w == nil {
		return "(none)"
	}
	var s string
	for _, o := range w.Spec.Objects {
		s += string(o.Raw) + "\n"
	}
	return s
}

// ownInputChanged names the policies of b whose own input differs from a's: their resolution
// (spec, tier, peers' addresses) and, for the NetworkPolicy form, the namespaces.
func ownInputChanged(form policyv1alpha1.Form, a, b translate.Input) map[string]bool {
	resolve := func(in translate.Input) map[string]translate.Policy {
		ps, err := translate.Resolve(in)
		if err != nil {
			panic(err)
		}
		out := map[string]translate.Policy{}
		for _, p := range ps {
			out[p.GNP.Name] = p
		}
		return out
	}
	ra, rb := resolve(a), resolve(b)
	nsChanged := form == policyv1alpha1.FormNetworkPolicy && !equality.Semantic.DeepEqual(a.Namespaces, b.Namespaces)
	out := map[string]bool{}
	for name, p := range rb {
		q, ok := ra[name]
		if !ok || nsChanged || !reflect.DeepEqual(p, q) {
			out[name] = true
		}
	}
	return out
}

// memberInputs builds each member's input from the fleet, as the controller does from the hub
// and the inventory.
func memberInputs(f policymodel.Fleet) []translate.Input {
	var members []fleetv1alpha1.MemberCluster
	var pods []translate.InventoryPod
	for _, c := range f.Clusters {
		members = append(members, memberCluster(c.Name, c.Labels))
		nsLabels := map[string]map[string]string{}
		for _, n := range c.Namespaces {
			nsLabels[n.Name] = n.Labels
		}
		for _, p := range c.Pods {
			pods = append(pods, translate.InventoryPod{Cluster: c.Name, Namespace: p.Namespace, NamespaceLabels: nsLabels[p.Namespace], Labels: p.Labels, IP: p.IP})
		}
	}
	var out []translate.Input
	for _, c := range f.Clusters {
		in := MemberInput(c.Name, f.Tiers, members, f.Policies)
		for _, n := range c.Namespaces {
			in.Namespaces = append(in.Namespaces, translate.Namespace{Name: n.Name, Labels: n.Labels})
		}
		in.Pods = pods
		out = append(out, in)
	}
	return out
}

// copyFleet copies what mutate changes, so that each form starts from the same fleet.
func copyFleet(f policymodel.Fleet) policymodel.Fleet {
	out := policymodel.Fleet{Tiers: slices.Clone(f.Tiers)}
	for _, g := range f.Policies {
		out.Policies = append(out.Policies, *g.DeepCopy())
	}
	for _, c := range f.Clusters {
		c.Pods = slices.Clone(c.Pods)
		c.Namespaces = slices.Clone(c.Namespaces)
		out.Clusters = append(out.Clusters, c)
	}
	return out
}

// mutate changes the fleet as a hub or a member can, and says how. It changes copies, never
// what an earlier input shares.
func mutate(r *rand.Rand, f *policymodel.Fleet, extra []policyv1alpha1.GlobalNetworkPolicy, step int) string {
	pickPolicy := func() *policyv1alpha1.GlobalNetworkPolicy {
		if len(f.Policies) == 0 {
			return nil
		}
		g := &f.Policies[r.Intn(len(f.Policies))]
		*g = *g.DeepCopy()
		g.Generation++ // as the apiserver does on a spec change
		return g
	}
	switch r.Intn(9) {
	case 0:
		if g := pickPolicy(); g != nil {
			g.Spec.Priority = ptr.To(int32(r.Intn(4)))
			return fmt.Sprintf("%s's priority to %d", g.Name, *g.Spec.Priority)
		}
	case 1:
		if g := pickPolicy(); g != nil {
			g.Spec.Tier = f.Tiers[r.Intn(len(f.Tiers))].Name
			return fmt.Sprintf("%s's tier to %s", g.Name, g.Spec.Tier)
		}
	case 2:
		if g := pickPolicy(); g != nil {
			rules := &g.Spec.Ingress
			if len(*rules) == 0 {
				rules = &g.Spec.Egress
			}
			if len(*rules) > 0 {
				(*rules)[0].Action = []policyv1alpha1.RuleAction{"Allow", "Drop", "Reject", "Pass"}[r.Intn(4)]
				return fmt.Sprintf("%s's first rule to %s", g.Name, (*rules)[0].Action)
			}
		}
	case 3:
		g := *extra[r.Intn(len(extra))].DeepCopy()
		g.Name = fmt.Sprintf("%s-added-%d", g.Name, step)
		f.Policies = append(slices.Clone(f.Policies), g)
		return "added " + g.Name
	case 4:
		if len(f.Policies) > 1 {
			i := r.Intn(len(f.Policies))
			name := f.Policies[i].Name
			f.Policies = slices.Delete(slices.Clone(f.Policies), i, i+1)
			return "deleted " + name
		}
	case 5:
		// Antrea's static priorities among them: a tier that takes one conflicts.
		f.Tiers = slices.Clone(f.Tiers)
		t := &f.Tiers[r.Intn(len(f.Tiers))]
		t.Spec.Priority = []int32{50, 100, 110, 120, 150, 200, 251, 300}[r.Intn(8)]
		return fmt.Sprintf("tier %s's priority to %d", t.Name, t.Spec.Priority)
	case 6:
		c := &f.Clusters[r.Intn(len(f.Clusters))]
		c.Pods = slices.Clone(c.Pods)
		if len(c.Pods) > 0 {
			i := r.Intn(len(c.Pods))
			if r.Intn(2) == 0 {
				c.Pods = slices.Delete(c.Pods, i, i+1)
				return "a pod gone in " + c.Name
			}
			c.Pods[i].Labels = map[string]string{"app": policytest.Apps[r.Intn(len(policytest.Apps))]}
			return "a pod's labels in " + c.Name
		}
	case 7:
		c := &f.Clusters[r.Intn(len(f.Clusters))]
		c.Namespaces = slices.Clone(c.Namespaces)
		n := &c.Namespaces[r.Intn(len(c.Namespaces))]
		n.Labels = map[string]string{"team": policytest.Teams[r.Intn(len(policytest.Teams))]}
		return fmt.Sprintf("namespace %s's labels in %s", n.Name, c.Name)
	case 8:
		if g := pickPolicy(); g != nil {
			g.Spec.Placement = fleetv1alpha1.Placement{ClusterNames: []string{f.Clusters[r.Intn(len(f.Clusters))].Name, f.Clusters[r.Intn(len(f.Clusters))].Name}}
			return fmt.Sprintf("%s's placement to %v", g.Name, g.Spec.Placement.ClusterNames)
		}
	}
	return "nothing"
}
