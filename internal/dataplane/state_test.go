package dataplane

import (
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"sort"
	"testing"
)

// simTable plays the kernel's part for the planner's tests: it applies a delta in the order
// Programmer.send puts it in a batch and refuses what the kernel would refuse (a rule naming a
// set or chain that is not there, a chain or set deleted while something refers to it, an
// element added twice) and what a correct plan never sends (creating what exists, rewriting
// or deleting what does not).
type simTable struct {
	chains map[string]*chainSpec
	sets   map[string][]AddrRange
	maps   map[string]map[[4]byte]string
}

func newSimTable(d *desired) *simTable {
	t := &simTable{chains: map[string]*chainSpec{}, sets: map[string][]AddrRange{}, maps: map[string]map[[4]byte]string{}}
	for name, c := range d.chains {
		t.chains[name] = c
	}
	for name, s := range d.sets {
		if s.isMap {
			t.maps[name] = map[[4]byte]string{}
			for _, tg := range s.targets {
				t.maps[name][tg.ip] = tg.chain
			}
		} else {
			t.sets[name] = s.ranges
		}
	}
	return t
}

func (t *simTable) refsOK(c *chainSpec) error {
	for _, r := range c.rules {
		if r.special == "dispatch" {
			if _, ok := t.maps[r.set]; !ok {
				return fmt.Errorf("chain %s: rule names map %s, which is not there", c.name, r.set)
			}
			continue
		}
		if _, ok := t.sets[r.set]; r.set != "" && !ok {
			return fmt.Errorf("chain %s: rule names set %s, which is not there", c.name, r.set)
		}
		if _, ok := t.chains[r.chain]; r.chain != "" && !ok {
			return fmt.Errorf("chain %s: rule jumps to chain %s, which is not there", c.name, r.chain)
		}
	}
	return nil
}

func (t *simTable) apply(d *delta) error {
	for _, c := range d.newChains {
		if _, ok := t.chains[c.name]; ok {
			return fmt.Errorf("new chain %s exists", c.name)
		}
		t.chains[c.name] = &chainSpec{name: c.name}
	}
	for _, s := range d.addSets {
		if _, ok := t.sets[s.name]; ok {
			return fmt.Errorf("new set %s exists", s.name)
		}
		t.sets[s.name] = s.ranges
	}
	for _, s := range d.fillSets {
		if _, ok := t.sets[s.name]; !ok {
			return fmt.Errorf("refilled set %s is not there", s.name)
		}
		t.sets[s.name] = s.ranges
	}
	for _, c := range append(slices.Clone(d.newChains), d.rewrite...) {
		if _, ok := t.chains[c.name]; !ok {
			return fmt.Errorf("rewritten chain %s is not there", c.name)
		}
		t.chains[c.name] = c
	}
	for _, c := range append(slices.Clone(d.newChains), d.rewrite...) {
		if err := t.refsOK(c); err != nil {
			return err
		}
	}
	for name, ts := range d.mapDel {
		for _, tg := range ts {
			if _, ok := t.maps[name][tg.ip]; !ok {
				return fmt.Errorf("map %s: deleted element %v is not there", name, tg.ip)
			}
			delete(t.maps[name], tg.ip)
		}
	}
	for name, ts := range d.mapAdd {
		for _, tg := range ts {
			if _, ok := t.maps[name][tg.ip]; ok {
				return fmt.Errorf("map %s: added element %v exists", name, tg.ip)
			}
			if _, ok := t.chains[tg.chain]; !ok {
				return fmt.Errorf("map %s: element jumps to chain %s, which is not there", name, tg.chain)
			}
			t.maps[name][tg.ip] = tg.chain
		}
	}
	for _, name := range d.delChains {
		if _, ok := t.chains[name]; !ok {
			return fmt.Errorf("deleted chain %s is not there", name)
		}
		delete(t.chains, name)
	}
	for _, s := range d.delSets {
		if _, ok := t.sets[s.name]; !ok {
			return fmt.Errorf("deleted set %s is not there", s.name)
		}
		delete(t.sets, s.name)
	}
	for _, c := range t.chains {
		if err := t.refsOK(c); err != nil {
			return fmt.Errorf("after the batch: %w", err)
		}
	}
	for name, m := range t.maps {
		for ip, chain := range m {
			if _, ok := t.chains[chain]; !ok {
				return fmt.Errorf("after the batch: map %s element %v jumps to chain %s, which is not there", name, ip, chain)
			}
		}
	}
	return nil
}

// equal compares the simulated kernel with the table a state describes, names included.
func (t *simTable) equal(d *desired) error {
	o := newSimTable(d)
	if len(t.chains) != len(o.chains) || len(t.sets) != len(o.sets) {
		return fmt.Errorf("kernel has %d chains and %d sets, state says %d and %d", len(t.chains), len(t.sets), len(o.chains), len(o.sets))
	}
	for name, c := range o.chains {
		if k := t.chains[name]; k == nil || !slices.Equal(k.rules, c.rules) {
			return fmt.Errorf("chain %s differs", name)
		}
	}
	for name, r := range o.sets {
		if k, ok := t.sets[name]; !ok || !slices.Equal(k, r) {
			return fmt.Errorf("set %s differs", name)
		}
	}
	for name, m := range o.maps {
		if len(m) != len(t.maps[name]) {
			return fmt.Errorf("map %s has %d elements, state says %d", name, len(t.maps[name]), len(m))
		}
		for ip, c := range m {
			if t.maps[name][ip] != c {
				return fmt.Errorf("map %s element %v differs", name, ip)
			}
		}
	}
	return nil
}

// meaning is a table with every set name replaced by the set's content: two tables with the
// same meaning treat every packet alike, whichever rules share which set.
func meaning(d *desired) map[string][]string {
	out := map[string][]string{}
	for name, c := range d.chains {
		for _, r := range c.rules {
			if r.set != "" && r.special == "" {
				r.set = rangesKey(d.sets[r.set].ranges)
			}
			out[name] = append(out[name], fmt.Sprintf("%+v", r))
		}
	}
	for name, s := range d.sets {
		if s.isMap {
			var ts []string
			for _, tg := range s.targets {
				ts = append(ts, fmt.Sprintf("%v>%s", tg.ip, tg.chain))
			}
			sort.Strings(ts)
			out["map "+name] = ts
		}
	}
	return out
}

func countTable(d *desired) (rules, sets, elems int) {
	for _, c := range d.chains {
		rules += len(c.rules)
	}
	for _, s := range d.sets {
		sets++
		elems += len(s.ranges) + len(s.targets)
	}
	return rules, sets, elems
}

// plan runs one change on s and on the simulated kernel and checks that the kernel holds what
// s says, which means what a fresh start on m means, and that s's totals are right.
func plan(t *testing.T, s *tableState, k *simTable, m *Model) *delta {
	t.Helper()
	d, err := s.update(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.apply(d); err != nil {
		t.Fatalf("the plan is not a valid batch: %v", err)
	}
	want := s.desired()
	if err := k.equal(want); err != nil {
		t.Fatalf("after the change the kernel does not hold what the state says: %v", err)
	}
	fresh := newTableState(Options{})
	if _, err := fresh.update(m); err != nil {
		t.Fatal(err)
	}
	if got, exp := meaning(want), meaning(fresh.desired()); fmt.Sprint(got) != fmt.Sprint(exp) {
		t.Fatalf("the changed table does not mean what a table built from scratch means:\n got %v\nwant %v", got, exp)
	}
	if r, n, e := countTable(want); r != s.rules || n != s.sets || e != s.elems {
		t.Fatalf("state counts %d rules, %d sets, %d elements; the table has %d, %d, %d", s.rules, s.sets, s.elems, r, n, e)
	}
	return d
}

func emptyPlan(t *testing.T) (*tableState, *simTable) {
	s := newTableState(Options{})
	if _, err := s.update(&Model{}); err != nil {
		t.Fatal(err)
	}
	return s, newSimTable(s.desired())
}

func TestPlanPeerChangeIsOneSetUpdate(t *testing.T) {
	s, k := emptyPlan(t)
	m := busyModel(100, 10)
	if d := plan(t, s, k, m); d.podsRendered != 100 || len(d.newChains) != 600 {
		t.Fatalf("the first plan rendered %d pods and %d chains, want 100 and 600", d.podsRendered, len(d.newChains))
	}
	if n := s.sets - 2; n != 20 {
		t.Errorf("10 policy rules in each direction on 100 pods made %d peer sets, want 20 (one per rule and direction)", n)
	}
	peers := benchPeers(0, 7)
	for i := range m.Pods {
		m.Pods[i].Ingress.Tiered[0].Peers = &peers
	}
	d := plan(t, s, k, m)
	if d.podsRendered != 0 || len(d.newChains)+len(d.rewrite) != 0 || len(d.fillSets) != 1 || len(d.addSets)+len(d.delSets) != 0 {
		t.Errorf("a peer change of a rule on every pod rendered %d pods, wrote %d chains, refilled %d sets, added %d, deleted %d; want one refilled set",
			d.podsRendered, len(d.newChains)+len(d.rewrite), len(d.fillSets), len(d.addSets), len(d.delSets))
	}
	if d := plan(t, s, k, m); !d.empty() || d.podsRendered != 0 {
		t.Errorf("the same model again planned %+v", d)
	}
}

func TestPlanOnePodsRulesRenderOnlyThatPod(t *testing.T) {
	s, k := emptyPlan(t)
	m := busyModel(100, 10)
	plan(t, s, k, m)
	m.Pods[7].Ingress.Tiered[0].Ports = []Port{{Protocol: UDP, Port: 53}}
	d := plan(t, s, k, m)
	if d.podsRendered != 1 || len(d.rewrite) != 1 || len(d.newChains)+len(d.fillSets)+len(d.addSets) != 0 {
		t.Errorf("a change of one rule of one pod rendered %d pods, rewrote %d chains, created %d chains, wrote %d sets; want 1 pod, 1 chain",
			d.podsRendered, len(d.rewrite), len(d.newChains), len(d.fillSets)+len(d.addSets))
	}
	// One pod's peers of a shared rule differ from the others': it gets a set of its own and
	// only its chain changes; when it agrees again, it goes back to the shared set.
	own := benchPeers(3, 500)
	m.Pods[9].Egress.Tiered[3].Peers = &own
	d = plan(t, s, k, m)
	if d.podsRendered != 1 || len(d.rewrite) != 1 || len(d.addSets) != 1 || len(d.fillSets) != 0 {
		t.Errorf("one pod leaving a shared set rendered %d pods, rewrote %d chains, added %d sets, refilled %d; want 1, 1, 1, 0",
			d.podsRendered, len(d.rewrite), len(d.addSets), len(d.fillSets))
	}
	shared := benchPeers(3, 0)
	m.Pods[9].Egress.Tiered[3].Peers = &shared
	d = plan(t, s, k, m)
	if d.podsRendered != 1 || len(d.rewrite) != 1 || len(d.delSets) != 1 {
		t.Errorf("the pod rejoining the shared set rendered %d pods, rewrote %d chains, deleted %d sets; want 1, 1, 1", d.podsRendered, len(d.rewrite), len(d.delSets))
	}
	// A pod goes: its chains, its map entries and nothing else.
	m.Pods = append(m.Pods[:50], m.Pods[51:]...)
	d = plan(t, s, k, m)
	if len(d.delChains) != 6 || d.podsRendered != 0 || len(d.rewrite)+len(d.fillSets) != 0 || len(d.mapDel) != 2 {
		t.Errorf("a pod going deleted %d chains, rendered %d pods, wrote %d chains and sets, touched %d maps; want 6, 0, 0, 2",
			len(d.delChains), d.podsRendered, len(d.rewrite)+len(d.fillSets), len(d.mapDel))
	}
}

func TestPlanSharedSetFollowsTheMajority(t *testing.T) {
	s, k := emptyPlan(t)
	pod := func(i int, peers string) Pod {
		set := MustAddrSet([]string{peers})
		return Pod{Name: fmt.Sprintf("ns/p%d", i), IP: netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}),
			Ingress: Direction{Tiered: []Rule{{Name: "gnp/r0", Action: Drop, Peers: &set}}}}
	}
	m := &Model{Pods: []Pod{pod(0, "198.18.2.0/24"), pod(1, "198.18.2.0/24"), pod(2, "198.18.3.0/24")}}
	plan(t, s, k, m)
	if n := s.sets - 2; n != 2 {
		t.Errorf("two pods with one rule's peers and a third with others made %d peer sets, want 2", n)
	}
	// The majority moves: the shared set follows it, the third pod keeps its own.
	m = &Model{Pods: []Pod{pod(0, "198.18.4.0/24"), pod(1, "198.18.4.0/24"), pod(2, "198.18.3.0/24")}}
	if d := plan(t, s, k, m); d.podsRendered != 0 || len(d.fillSets) != 1 {
		t.Errorf("the majority's peers moving rendered %d pods and refilled %d sets; want 0 and 1", d.podsRendered, len(d.fillSets))
	}
}

// TestPlanRandomChanges runs seeded random sequences of models through the planner: every plan
// must be a batch the kernel takes, leave the table the state describes, and mean what a table
// built from scratch for the same model means.
func TestPlanRandomChanges(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewSource(seed))
		s, k := emptyPlan(t)
		pool := []AddrSet{benchPeers(0, 0), benchPeers(1, 0), benchPeers(2, 0), {}}
		randPeers := func() *AddrSet {
			if r.Intn(4) == 0 {
				return nil
			}
			p := pool[r.Intn(len(pool))]
			return &p
		}
		randRules := func(base bool) []Rule {
			var rs []Rule
			for i := range r.Intn(4) {
				name := fmt.Sprintf("p/r%d", r.Intn(4))
				if r.Intn(5) == 0 {
					name = ""
				}
				a := []Action{Allow, Drop, Reject, Pass}[r.Intn(3+boolInt(!base))]
				rs = append(rs, Rule{Name: name, Action: a, Peers: randPeers(), Ports: []Port{{Protocol: TCP, Port: uint16(80 + i)}}})
			}
			return rs
		}
		randDir := func() Direction {
			d := Direction{Tiered: randRules(false), Baseline: randRules(true)}
			if r.Intn(2) == 0 {
				d.NetworkPolicy.Selected = true
				for range r.Intn(3) {
					d.NetworkPolicy.Allow = append(d.NetworkPolicy.Allow, AllowRule{Name: fmt.Sprintf("np/r%d", r.Intn(2)), Peers: randPeers()})
				}
			}
			return d
		}
		var m Model
		for step := range 60 {
			// Change a few pods: new rules, new peers only, a new IP, gone, or new.
			for range 1 + r.Intn(3) {
				i := r.Intn(12)
				name := fmt.Sprintf("ns/p%d", i)
				at := slices.IndexFunc(m.Pods, func(p Pod) bool { return p.Name == name })
				switch op := r.Intn(5); {
				case at < 0:
					m.Pods = append(m.Pods, Pod{Name: name, IP: netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}), Egress: randDir(), Ingress: randDir()})
				case op == 0:
					m.Pods = append(m.Pods[:at], m.Pods[at+1:]...)
				case op == 1:
					m.Pods[at].Ingress = randDir()
				case op == 2:
					m.Pods[at].IP = netip.AddrFrom4([4]byte{198, 18, 5, byte(i + 1 + 100*r.Intn(2))})
				default:
					p := copyPod(&m.Pods[at])
					for _, rs := range [][]Rule{p.Egress.Tiered, p.Ingress.Tiered, p.Egress.Baseline, p.Ingress.Baseline} {
						for j := range rs {
							if rs[j].Peers != nil {
								rs[j].Peers = &pool[r.Intn(len(pool))]
							}
						}
					}
					m.Pods[at] = *p
				}
			}
			// Sometimes every pod's copy of one rule moves to other peers (a selector's pods changed).
			if r.Intn(3) == 0 {
				moved := benchPeers(9, step)
				for i := range m.Pods {
					for j, rule := range m.Pods[i].Ingress.Tiered {
						if rule.Name == "p/r0" && rule.Peers != nil {
							m.Pods[i].Ingress.Tiered[j].Peers = &moved
						}
					}
				}
			}
			func() {
				defer func() {
					if t.Failed() {
						t.Logf("seed %d, step %d", seed, step)
					}
				}()
				plan(t, s, k, &m)
			}()
			if t.Failed() {
				return
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkPlan measures the planner alone (no kernel): a peer change of one rule on every pod
// of a 2,000-rule model, and a change of one pod's rule.
func BenchmarkPlan(b *testing.B) {
	for _, bc := range []struct {
		name   string
		change func(m *Model, n int)
	}{
		{"peers of a rule of every pod", func(m *Model, n int) {
			peers := benchPeers(0, n+1)
			for i := range m.Pods {
				m.Pods[i].Ingress.Tiered[0].Peers = &peers
			}
		}},
		{"rules of one pod", func(m *Model, n int) {
			m.Pods[7].Ingress.Tiered[0].Ports = []Port{{Protocol: TCP, Port: uint16(2000 + n%2)}}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newTableState(Options{})
			m := busyModel(100, 10)
			if _, err := s.update(m); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for n := range b.N {
				bc.change(m, n)
				if _, err := s.update(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
