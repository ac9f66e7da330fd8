package policy_test

import (
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/placement"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/translate"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/internal/policy/translate/cnp"
	"github.com/meridian-io/meridian/internal/policy/translate/member"
	"github.com/meridian-io/meridian/internal/policy/translate/netpol"
)

// form is one member form: its translator, its own evaluator, and whether it must be exact.
type form struct {
	name      string
	exact     bool
	translate func(in translate.Input, ps []translate.Policy) (translate.Result, error)
	evaluator func(v *memberView, objs []client.Object)
}

var forms = []form{
	{"Meridian", true, func(_ translate.Input, ps []translate.Policy) (translate.Result, error) {
		return member.Translate(ps), nil
	}, memberForm},
	{"Antrea", true, func(_ translate.Input, ps []translate.Policy) (translate.Result, error) { return antrea.Translate(ps) }, antreaForm},
	{"ClusterNetworkPolicy", false, func(_ translate.Input, ps []translate.Policy) (translate.Result, error) {
		return cnp.Translate(ps), nil
	}, cnpForm},
	{"NetworkPolicy", false, func(in translate.Input, ps []translate.Policy) (translate.Result, error) {
		return netpol.Translate(ps, in.Namespaces), nil
	}, netpolForm},
}

// translated is a fleet in one form: each member's view, and the reference models over the
// policies each member holds (Exact or Restricted).
type translated struct {
	views map[string]*memberView
	refs  map[string]*policy.Model
	full  *policy.Model
}

// inputs builds each member's translator input from the fleet, as the controller will from the
// hub's inventory.
func inputs(f policy.Fleet) (map[string]translate.Input, error) {
	var members []fleetv1alpha1.MemberCluster
	for _, c := range f.Clusters {
		m := fleetv1alpha1.MemberCluster{}
		m.Name, m.Labels = c.Name, c.Labels
		members = append(members, m)
	}
	placements := map[string][]string{}
	for _, g := range f.Policies {
		names, err := placement.Select(g.Spec.Placement, members)
		if err != nil {
			return nil, err
		}
		placements[g.Name] = names
	}
	var pods []translate.InventoryPod
	for _, c := range f.Clusters {
		ns := map[string]map[string]string{}
		for _, n := range c.Namespaces {
			ns[n.Name] = n.Labels
		}
		for _, p := range c.Pods {
			pods = append(pods, translate.InventoryPod{Cluster: c.Name, Namespace: p.Namespace, NamespaceLabels: ns[p.Namespace], Labels: p.Labels, IP: p.IP})
		}
	}
	out := map[string]translate.Input{}
	for _, c := range f.Clusters {
		in := translate.Input{Cluster: c.Name, Tiers: f.Tiers, Placements: placements, Pods: pods}
		for _, n := range c.Namespaces {
			in.Namespaces = append(in.Namespaces, translate.Namespace{Name: n.Name, Labels: n.Labels})
		}
		for _, g := range f.Policies {
			for _, n := range placements[g.Name] {
				if n == c.Name {
					in.Policies = append(in.Policies, g)
				}
			}
		}
		out[c.Name] = in
	}
	return out, nil
}

func translateFleet(fm form, f policy.Fleet) (*translated, error) {
	ins, err := inputs(f)
	if err != nil {
		return nil, err
	}
	t := &translated{views: map[string]*memberView{}, refs: map[string]*policy.Model{}}
	if t.full, err = policy.NewModel(f); err != nil {
		return nil, err
	}
	for _, c := range f.Clusters {
		in := ins[c.Name]
		ps, err := translate.Resolve(in)
		if err != nil {
			return nil, err
		}
		res, err := fm.translate(in, ps)
		if err != nil {
			return nil, err
		}
		held := map[string]bool{}
		for _, e := range res.Policies {
			if fm.exact && e.Enforcement != policyv1alpha1.EnforcementExact {
				return nil, fmt.Errorf("%s form: policy %s is %s in %s: %+v", fm.name, e.Policy, e.Enforcement, c.Name, e.Rules)
			}
			if e.Supported() {
				held[e.Policy] = true
			}
		}
		if len(res.Policies) != len(in.Policies) {
			return nil, fmt.Errorf("%s form reports %d of %d policies in %s", fm.name, len(res.Policies), len(in.Policies), c.Name)
		}
		sub := f
		sub.Policies = nil
		for _, g := range f.Policies {
			// A policy not placed on this member has no effect on its sides; keep it so that
			// the reference resolves the same placements.
			if held[g.Name] || !contains(in.Policies, g.Name) {
				sub.Policies = append(sub.Policies, g)
			}
		}
		if t.refs[c.Name], err = policy.NewModel(sub); err != nil {
			return nil, err
		}
		v := newView(c, res.Objects)
		fm.evaluator(v, res.Objects)
		t.views[c.Name] = v
	}
	return t, nil
}

func contains(gs []policyv1alpha1.GlobalNetworkPolicy, name string) bool {
	for _, g := range gs {
		if g.Name == name {
			return true
		}
	}
	return false
}

// formVerdict evaluates a connection the way the members of that form would: the egress side in
// the source's member, the ingress side in the destination's.
func (t *translated) formVerdict(m *policy.Model, c policy.Connection) (policy.Verdict, error) {
	src, dst, err := ends(m, c)
	if err != nil {
		return "", err
	}
	cn := conn{proto: string(c.Protocol), port: c.Port}
	eg, in := policy.Allow, policy.Allow
	if src.pod != nil {
		v := t.views[src.cluster]
		eg = v.side(v.see(src.addr), v.see(dst.addr), v.see(dst.addr), false, cn)
	}
	if dst.pod != nil {
		v := t.views[dst.cluster]
		in = v.side(v.see(dst.addr), v.see(src.addr), v.see(dst.addr), true, cn)
	}
	if eg.Denied() {
		return eg, nil
	}
	return in, nil
}

type resolved struct {
	cluster string
	pod     *policy.PodRef
	addr    netip.Addr
}

func ends(m *policy.Model, c policy.Connection) (resolved, resolved, error) {
	one := func(e policy.Endpoint) (resolved, error) {
		if e.Name != "" {
			p := m.Pod(e.Cluster, e.Namespace, e.Name)
			if p == nil {
				return resolved{}, fmt.Errorf("no pod %s", e)
			}
			return resolved{cluster: p.Cluster, pod: p, addr: p.Addr}, nil
		}
		a := netip.MustParseAddr(e.IP)
		if p := m.PodByIP(a); p != nil {
			return resolved{cluster: p.Cluster, pod: p, addr: a}, nil
		}
		return resolved{addr: a}, nil
	}
	s, err := one(c.From)
	if err != nil {
		return s, s, err
	}
	d, err := one(c.To)
	return s, d, err
}

// referenceVerdict: the exact forms against the whole policy set; the others against the
// policies each side's member holds.
func (t *translated) referenceVerdict(exact bool, c policy.Connection) (policy.Decision, error) {
	if exact {
		return t.full.Evaluate(c)
	}
	src, dst, err := ends(t.full, c)
	if err != nil {
		return policy.Decision{}, err
	}
	d := policy.Decision{Verdict: policy.Allow,
		Egress:  policy.Side{Verdict: policy.Allow, DecidedBy: policy.NoSide},
		Ingress: policy.Side{Verdict: policy.Allow, DecidedBy: policy.NoSide}}
	if src.pod != nil {
		e, err := t.refs[src.cluster].Evaluate(c)
		if err != nil {
			return d, err
		}
		d.Egress = e.Egress
	}
	if dst.pod != nil {
		e, err := t.refs[dst.cluster].Evaluate(c)
		if err != nil {
			return d, err
		}
		d.Ingress = e.Ingress
	}
	switch {
	case d.Egress.Verdict.Denied():
		d.Verdict = d.Egress.Verdict
	case d.Ingress.Verdict.Denied():
		d.Verdict = d.Ingress.Verdict
	}
	return d, nil
}

// check returns a description of the disagreement of a form with the reference on c, or "".
func check(fm form, f policy.Fleet, c policy.Connection) (string, bool, error) {
	t, err := translateFleet(fm, f)
	if err != nil {
		return "", false, err
	}
	return t.check(fm, c)
}

func (t *translated) check(fm form, c policy.Connection) (string, bool, error) {
	ref, err := t.referenceVerdict(fm.exact, c)
	if err != nil {
		return "", false, err
	}
	got, err := t.formVerdict(t.full, c)
	if err != nil {
		return "", false, err
	}
	stricter := got.Denied() && !ref.Verdict.Denied()
	switch {
	case fm.exact && got != ref.Verdict:
		return fmt.Sprintf("%s form says %s, the reference says %s", fm.name, got, ref), false, nil
	case !fm.exact && !got.Denied() && ref.Verdict.Denied():
		return fmt.Sprintf("%s form allows what the reference denies: %s", fm.name, ref), false, nil
	}
	return "", stricter, nil
}

func oracleFleets() (fleets, conns int) {
	fleets, conns = 500, 60
	if s := os.Getenv("POLICY_ORACLE_FLEETS"); s != "" {
		fleets, _ = strconv.Atoi(s)
	}
	return fleets, conns
}

// TestOracle is the differential oracle: on seeded random fleets every form agrees with the
// reference evaluator of docs/policy.md (exact forms on every case; restricted forms never allow
// what the reference denies).
func TestOracle(t *testing.T) {
	nFleets, perFleet := oracleFleets()
	for _, fm := range forms {
		t.Run(fm.name, func(t *testing.T) {
			cases, stricter, unsupported, policies := 0, 0, 0, 0
			for seed := range nFleets {
				r := rand.New(rand.NewSource(int64(seed)))
				f := genFleet(r)
				tr, err := translateFleet(fm, f)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				u, n := countUnsupported(fm, f)
				unsupported, policies = unsupported+u, policies+n
				for _, c := range genConnections(r, f, perFleet) {
					cases++
					msg, s, err := tr.check(fm, c)
					if err != nil {
						t.Fatalf("seed %d %s: %v", seed, c, err)
					}
					if s {
						stricter++
					}
					if msg != "" {
						t.Fatalf("seed %d: %s\n%s", seed, msg, reproduce(fm, f, c))
					}
				}
			}
			if cases < 10000 && os.Getenv("POLICY_ORACLE_FLEETS") == "" {
				t.Fatalf("only %d cases", cases)
			}
			t.Logf("%s: %d cases over %d fleets; denied by the form but allowed by the reference: %.2f%% (%d); (member, policy) pairs unsupported: %d of %d",
				fm.name, cases, nFleets, 100*float64(stricter)/float64(cases), stricter, unsupported, policies)
		})
	}
}

// countUnsupported counts the (member, policy) pairs a form cannot hold, and all pairs.
func countUnsupported(fm form, f policy.Fleet) (int, int) {
	ins, err := inputs(f)
	if err != nil {
		return 0, 0
	}
	n, all := 0, 0
	for _, in := range ins {
		ps, err := translate.Resolve(in)
		if err != nil {
			continue
		}
		res, err := fm.translate(in, ps)
		if err != nil {
			continue
		}
		for _, e := range res.Policies {
			all++
			if !e.Supported() {
				n++
			}
		}
	}
	return n, all
}

// FuzzOracle runs the oracle on fleets from fuzzed seeds: go test -fuzz FuzzOracle ./internal/policy/
func FuzzOracle(f *testing.F) {
	f.Add(int64(1))
	f.Add(int64(42))
	f.Fuzz(func(t *testing.T, seed int64) {
		r := rand.New(rand.NewSource(seed))
		fl := genFleet(r)
		conns := genConnections(r, fl, 40)
		for _, fm := range forms {
			tr, err := translateFleet(fm, fl)
			if err != nil {
				t.Fatalf("%s: %v", fm.name, err)
			}
			for _, c := range conns {
				msg, _, err := tr.check(fm, c)
				if err != nil {
					t.Fatal(err)
				}
				if msg != "" {
					t.Fatalf("%s\n%s", msg, reproduce(fm, fl, c))
				}
			}
		}
	})
}

// reproduce shrinks the fleet to a minimal one on which the form still disagrees and prints it.
func reproduce(fm form, f policy.Fleet, c policy.Connection) string {
	fails := func(g policy.Fleet) bool {
		msg, _, err := check(fm, g, c)
		return err == nil && msg != ""
	}
	for changed := true; changed; {
		changed = false
		for _, cand := range shrinks(f, c) {
			if fails(cand) {
				f, changed = cand, true
				break
			}
		}
	}
	msg, _, _ := check(fm, f, c)
	out, _ := yaml.Marshal(f)
	var b strings.Builder
	fmt.Fprintf(&b, "minimal reproduction (%s form):\nconnection: %s\n%s\nfleet:\n%s", fm.name, c, msg, out)
	if m, err := policy.NewModel(f); err == nil {
		if d, err := m.Evaluate(c); err == nil {
			fmt.Fprintf(&b, "reference decision:\n%s", d)
		}
	}
	return b.String()
}

// shrinks returns smaller fleets: one policy, rule, peer, port, NetworkPolicy or pod fewer.
func shrinks(f policy.Fleet, c policy.Connection) []policy.Fleet {
	var out []policy.Fleet
	clone := func() policy.Fleet {
		var g policy.Fleet
		b, _ := yaml.Marshal(f)
		_ = yaml.Unmarshal(b, &g)
		return g
	}
	for i := range f.Policies {
		g := clone()
		g.Policies = append(g.Policies[:i], g.Policies[i+1:]...)
		out = append(out, g)
	}
	for i := range f.Policies {
		for _, dir := range []int{0, 1} {
			rules := f.Policies[i].Spec.Ingress
			if dir == 1 {
				rules = f.Policies[i].Spec.Egress
			}
			for j := range rules {
				g := clone()
				rs := &g.Policies[i].Spec.Ingress
				if dir == 1 {
					rs = &g.Policies[i].Spec.Egress
				}
				*rs = append((*rs)[:j], (*rs)[j+1:]...)
				out = append(out, g)
				for k := range rules[j].Peers {
					if len(rules[j].Peers) > 1 {
						g := clone()
						rs := &g.Policies[i].Spec.Ingress
						if dir == 1 {
							rs = &g.Policies[i].Spec.Egress
						}
						(*rs)[j].Peers = append((*rs)[j].Peers[:k], (*rs)[j].Peers[k+1:]...)
						out = append(out, g)
					}
				}
				for k := range rules[j].Ports {
					g := clone()
					rs := &g.Policies[i].Spec.Ingress
					if dir == 1 {
						rs = &g.Policies[i].Spec.Egress
					}
					(*rs)[j].Ports = append((*rs)[j].Ports[:k], (*rs)[j].Ports[k+1:]...)
					out = append(out, g)
				}
			}
		}
	}
	for ci := range f.Clusters {
		for i := range f.Clusters[ci].NetworkPolicies {
			g := clone()
			g.Clusters[ci].NetworkPolicies = append(g.Clusters[ci].NetworkPolicies[:i], g.Clusters[ci].NetworkPolicies[i+1:]...)
			out = append(out, g)
		}
		for i, p := range f.Clusters[ci].Pods {
			if (c.From.Cluster == f.Clusters[ci].Name && c.From.Name == p.Name && c.From.Namespace == p.Namespace) ||
				(c.To.Cluster == f.Clusters[ci].Name && c.To.Name == p.Name && c.To.Namespace == p.Namespace) ||
				p.IP == c.From.IP || p.IP == c.To.IP {
				continue
			}
			g := clone()
			g.Clusters[ci].Pods = append(g.Clusters[ci].Pods[:i], g.Clusters[ci].Pods[i+1:]...)
			out = append(out, g)
		}
	}
	return out
}
