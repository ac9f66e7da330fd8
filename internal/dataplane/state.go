package dataplane

import (
	"maps"
	"slices"
	"sort"
	"strconv"
)

// tableState is the table as a Programmer last programmed it, kept per pod, so that a change
// is planned from what it touches: a pod whose model is unchanged is compared and left alone,
// a pod whose peers alone changed costs set updates, and only a pod whose rules changed is
// rendered again.
type tableState struct {
	fixed  []*chainSpec // the verdict chains; the forward chain is rendered last
	pods   map[string]*podState
	groups map[groupKey]*group // shared peer sets, by direction and rule name
	buf    []peerRule          // scratch for peerRules
	// Running totals of the table: nftables rules, named sets and maps, and their entries
	// (address ranges of the sets, pods of the maps).
	rules, sets, elems int
}

// podState is one pod as programmed.
type podState struct {
	pod    Pod                    // a copy of the model's pod
	id     string                 // podID(pod.Name)
	binds  map[ruleRef]string     // the set of each rule that has peers
	own    map[string][]AddrRange // the sets of the pod's own, by name
	chains []*chainSpec           // egress baseline, NetworkPolicy, tiered; ingress the same
	rules  int
}

// ruleRef names a rule within one pod: direction ('e', 'i'), stage ('t' tiered, 'n'
// NetworkPolicy, 'b' baseline) and index.
type ruleRef struct {
	dir, stage byte
	index      int
}

// group is the shared set of one rule name in one direction. Its content is the peers most of
// its members have; a member with other peers has a set of its own.
type group struct {
	set     string
	members map[memberKey][]AddrRange
	canon   []AddrRange
	in      bool // the set is in the table with canon
}

type memberKey struct {
	pod string
	ref ruleRef
}

func newTableState(o Options) *tableState {
	s := &tableState{pods: map[string]*podState{}, groups: map[groupKey]*group{}, sets: 2}
	for _, di := range []dirInfo{egress, ingress} {
		s.fixed = append(s.fixed, verdictChain(di, o, false), verdictChain(di, o, true))
	}
	for _, c := range s.fixed {
		s.rules += len(c.rules)
	}
	s.rules += len(forwardChain().rules)
	return s
}

// delta is what one change sends to the kernel, in one batch.
type delta struct {
	newChains, rewrite []*chainSpec
	delChains          []string
	addSets, fillSets  []*setSpec
	delSets            []*setSpec
	mapDel, mapAdd     map[string][]podTarget // verdict map elements, by map
	podsRendered       int
}

func (d *delta) empty() bool {
	return len(d.newChains)+len(d.rewrite)+len(d.delChains)+len(d.addSets)+len(d.fillSets)+len(d.delSets)+
		len(d.mapDel)+len(d.mapAdd) == 0
}

type changeKind int

const (
	unchanged changeKind = iota
	added
	reshaped     // rules, actions, ports or which rules have peers changed
	peersChanged // only the peers' addresses (or the pod's IP) changed
)

// update brings s to m and returns what the kernel must be sent. m is validated first (the
// rules only of the pods that are new or changed shape); on a validation error s is unchanged.
// If the batch of the delta fails, s no longer says what the kernel holds: the caller drops it.
func (s *tableState) update(m *Model) (*delta, error) {
	kinds := make([]changeKind, len(m.Pods))
	inModel := make(map[string]bool, len(m.Pods))
	for i := range m.Pods {
		p := &m.Pods[i]
		inModel[p.Name] = true
		old := s.pods[p.Name]
		switch {
		case old == nil:
			kinds[i] = added
		case !sameShape(&old.pod, p):
			kinds[i] = reshaped
		case old.pod.IP != p.IP || !samePeers(&old.pod, p):
			kinds[i] = peersChanged
		}
	}
	if err := m.validate(func(i int) bool { return kinds[i] == added || kinds[i] == reshaped }); err != nil {
		return nil, err
	}

	d := &delta{mapDel: map[string][]podTarget{}, mapAdd: map[string][]podTarget{}}
	touched := map[groupKey]bool{} // groups whose members changed
	dirty := map[string]*Pod{}     // pods to bind (and render, when needed) again
	for name, ps := range s.pods {
		if !inModel[name] {
			s.removePod(ps, d, touched)
		}
	}
	for i, k := range kinds {
		if k == unchanged {
			continue
		}
		if old := s.pods[m.Pods[i].Name]; k == peersChanged {
			// The pod's copy takes the new addresses in place: nothing is allocated for it.
			s.repeer(old, &m.Pods[i], touched, d)
			dirty[old.pod.Name] = &old.pod
			continue
		} else if old != nil {
			s.leave(&old.pod, touched)
		}
		p := copyPod(&m.Pods[i])
		s.join(p, touched)
		dirty[p.Name] = p
	}
	keys := make([]groupKey, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].dir < keys[j].dir || (keys[i].dir == keys[j].dir && keys[i].name < keys[j].name)
	})
	for _, key := range keys {
		for _, name := range s.settle(key, d) {
			if dirty[name] == nil {
				dirty[name] = &s.pods[name].pod
			}
		}
	}
	for _, name := range sortedKeys(dirty) {
		s.bind(dirty[name], d)
	}
	for _, key := range keys {
		if g := s.groups[key]; g != nil && len(g.members) == 0 {
			d.delSets = append(d.delSets, &setSpec{name: g.set})
			s.sets--
			s.elems -= len(g.canon)
			delete(s.groups, key)
		}
	}
	return d, nil
}

func (s *tableState) removePod(ps *podState, d *delta, touched map[groupKey]bool) {
	s.leave(&ps.pod, touched)
	for _, c := range ps.chains {
		d.delChains = append(d.delChains, c.name)
	}
	for _, name := range sortedKeys(ps.own) {
		d.delSets = append(d.delSets, &setSpec{name: name})
		s.sets--
		s.elems -= len(ps.own[name])
	}
	for _, di := range []dirInfo{egress, ingress} {
		d.mapDel[di.podMap] = append(d.mapDel[di.podMap], podTarget{ip: ps.pod.IP.As4()})
	}
	s.elems -= 2
	s.rules -= ps.rules
	delete(s.pods, ps.pod.Name)
}

// peerRule is a rule that has peers, as the sets see it.
type peerRule struct {
	ref   ruleRef
	name  string // the rule's name: rules of one direction with the same name may share a set
	peers []AddrRange
}

// peerRules appends p's rules that have peers to out.
func peerRules(out []peerRule, p *Pod) []peerRule {
	for _, x := range []struct {
		dir byte
		d   *Direction
	}{{'e', &p.Egress}, {'i', &p.Ingress}} {
		for i, r := range x.d.Tiered {
			if r.Peers != nil {
				out = append(out, peerRule{ruleRef{x.dir, 't', i}, r.Name, r.Peers.ranges})
			}
		}
		for i, r := range x.d.NetworkPolicy.Allow {
			if r.Peers != nil {
				out = append(out, peerRule{ruleRef{x.dir, 'n', i}, r.Name, r.Peers.ranges})
			}
		}
		for i, r := range x.d.Baseline {
			if r.Peers != nil {
				out = append(out, peerRule{ruleRef{x.dir, 'b', i}, r.Name, r.Peers.ranges})
			}
		}
	}
	return out
}

type groupKey struct {
	dir  byte
	name string
}

func (s *tableState) join(p *Pod, touched map[groupKey]bool) {
	s.buf = peerRules(s.buf[:0], p)
	for _, pr := range s.buf {
		s.joinRule(p.Name, pr, touched)
	}
}

func (s *tableState) joinRule(pod string, pr peerRule, touched map[groupKey]bool) {
	if pr.name == "" {
		return
	}
	key := groupKey{pr.ref.dir, pr.name}
	g := s.groups[key]
	if g == nil {
		g = &group{set: string(pr.ref.dir) + "-r" + podID(pr.name), members: map[memberKey][]AddrRange{}}
		s.groups[key] = g
	}
	g.members[memberKey{pod, pr.ref}] = pr.peers
	touched[key] = true
}

func (s *tableState) leave(p *Pod, touched map[groupKey]bool) {
	s.buf = peerRules(s.buf[:0], p)
	for _, pr := range s.buf {
		if pr.name == "" {
			continue
		}
		key := groupKey{pr.ref.dir, pr.name}
		delete(s.groups[key].members, memberKey{p.Name, pr.ref})
		touched[key] = true
	}
}

// repeer moves the members of the rules whose peers changed and writes the new peers and IP
// into the pod's copy; p has the copy's shape.
func (s *tableState) repeer(old *podState, p *Pod, touched map[groupKey]bool, d *delta) {
	if old.pod.IP != p.IP {
		for _, di := range []dirInfo{egress, ingress} {
			d.mapDel[di.podMap] = append(d.mapDel[di.podMap], podTarget{ip: old.pod.IP.As4()})
			d.mapAdd[di.podMap] = append(d.mapAdd[di.podMap], podTarget{ip: p.IP.As4(), chain: di.short + "-" + old.id})
		}
		old.pod.IP = p.IP
	}
	for _, x := range []struct {
		dir       byte
		have, now *Direction
	}{{'e', &old.pod.Egress, &p.Egress}, {'i', &old.pod.Ingress, &p.Ingress}} {
		move := func(stage byte, i int, name string, have, now *AddrSet) {
			if now == nil || sameRanges(have.ranges, now.ranges) {
				return
			}
			*have = *now
			s.joinRule(old.pod.Name, peerRule{ruleRef{x.dir, stage, i}, name, now.ranges}, touched)
		}
		for i, r := range x.now.Tiered {
			move('t', i, r.Name, x.have.Tiered[i].Peers, r.Peers)
		}
		for i, r := range x.now.NetworkPolicy.Allow {
			move('n', i, r.Name, x.have.NetworkPolicy.Allow[i].Peers, r.Peers)
		}
		for i, r := range x.now.Baseline {
			move('b', i, r.Name, x.have.Baseline[i].Peers, r.Peers)
		}
	}
}

// settle gives a group whose members changed the content most of them hold (on a tie, the one
// it has, so that the table changes least), updates its set and returns the pods whose use of
// it flips (from the shared set to their own or back), which must be bound again.
func (s *tableState) settle(key groupKey, d *delta) []string {
	g := s.groups[key]
	if len(g.members) == 0 {
		return nil // deleted once the pods no longer use it
	}
	// Tally the members' contents; a group's members mostly agree, so the list stays short.
	type tally struct {
		ranges []AddrRange
		n      int
	}
	var tallies []tally
	for _, r := range g.members {
		i := slices.IndexFunc(tallies, func(t tally) bool { return sameRanges(t.ranges, r) })
		if i < 0 {
			tallies = append(tallies, tally{ranges: r})
			i = len(tallies) - 1
		}
		tallies[i].n++
	}
	// The most held content; on a tie the one the set has, else the least by address.
	best := -1
	for i, t := range tallies {
		if best < 0 || t.n > tallies[best].n {
			best = i
			continue
		}
		if t.n < tallies[best].n || (g.in && sameRanges(tallies[best].ranges, g.canon)) {
			continue
		}
		if (g.in && sameRanges(t.ranges, g.canon)) || rangesKey(t.ranges) < rangesKey(tallies[best].ranges) {
			best = i
		}
	}
	canon := tallies[best].ranges
	if g.in && sameRanges(canon, g.canon) {
		return nil
	}
	var flips []string
	for mk, r := range g.members {
		if (g.in && sameRanges(r, g.canon)) != sameRanges(r, canon) {
			flips = append(flips, mk.pod)
		}
	}
	spec := &setSpec{name: g.set, ranges: canon}
	if g.in {
		d.fillSets = append(d.fillSets, spec)
		s.elems += len(canon) - len(g.canon)
	} else {
		d.addSets = append(d.addSets, spec)
		s.sets++
		s.elems += len(canon)
	}
	g.canon, g.in = canon, true
	return flips
}

// bind picks the set of each of p's rules with peers, updates the pod's own sets and renders
// its chains again when they changed. p is the pod's new model (or, for a pod only some of whose
// rules flip between shared and own sets, its current one).
func (s *tableState) bind(p *Pod, d *delta) {
	old := s.pods[p.Name]
	s.buf = peerRules(s.buf[:0], p)
	prs := s.buf
	// A pod of unchanged shape is bound from its programmed copy (update passes &old.pod, whose
	// address and peers repeer has already taken), so only its sets can need refilling here.
	if old != nil && sameShape(&old.pod, p) && s.rebindInPlace(old, prs, d) {
		return
	}
	ps := &podState{pod: *p, id: podID(p.Name), binds: map[ruleRef]string{}, own: map[string][]AddrRange{}}
	for _, pr := range prs {
		name, shared := s.sharedSet(pr)
		if !shared {
			name = string(pr.ref.dir) + "-" + ps.id + "-" + string(pr.ref.stage) + strconv.Itoa(pr.ref.index)
			ps.own[name] = pr.peers
		}
		ps.binds[pr.ref] = name
	}

	// The pod's own sets.
	var oldOwn map[string][]AddrRange
	if old != nil {
		oldOwn = old.own
	}
	for _, name := range sortedKeys(ps.own) {
		r := ps.own[name]
		prev, had := oldOwn[name]
		switch {
		case !had:
			d.addSets = append(d.addSets, &setSpec{name: name, ranges: r})
			s.sets++
			s.elems += len(r)
		case !slices.Equal(prev, r):
			d.fillSets = append(d.fillSets, &setSpec{name: name, ranges: r})
			s.elems += len(r) - len(prev)
		}
	}
	for _, name := range sortedKeys(oldOwn) {
		if _, keep := ps.own[name]; !keep {
			d.delSets = append(d.delSets, &setSpec{name: name})
			s.sets--
			s.elems -= len(oldOwn[name])
		}
	}

	// The chains: the same shape bound to the same sets renders the same chains.
	if old != nil && sameShape(&old.pod, p) && maps.Equal(old.binds, ps.binds) {
		ps.chains, ps.rules = old.chains, old.rules
	} else {
		d.podsRendered++
		for _, x := range []struct {
			di  dirInfo
			dir *Direction
		}{{egress, &p.Egress}, {ingress, &p.Ingress}} {
			set := func(stage byte, index int) string { return ps.binds[ruleRef{x.di.short[0], stage, index}] }
			ps.chains = append(ps.chains, renderDirection(x.di, ps.id, p.Name, x.dir, set)...)
		}
		for i, c := range ps.chains {
			ps.rules += len(c.rules)
			switch {
			case old == nil:
				d.newChains = append(d.newChains, c)
			case !slices.Equal(old.chains[i].rules, c.rules):
				d.rewrite = append(d.rewrite, c)
			}
		}
	}

	// The verdict maps.
	if old == nil || old.pod.IP != p.IP {
		for _, di := range []dirInfo{egress, ingress} {
			if old != nil {
				d.mapDel[di.podMap] = append(d.mapDel[di.podMap], podTarget{ip: old.pod.IP.As4()})
			}
			d.mapAdd[di.podMap] = append(d.mapAdd[di.podMap], podTarget{ip: p.IP.As4(), chain: di.short + "-" + ps.id})
		}
		if old == nil {
			s.elems += 2
		}
	}
	if old != nil {
		s.rules -= old.rules
	}
	s.rules += ps.rules
	s.pods[p.Name] = ps
}

// sharedSet returns the shared set a rule uses, if its peers are the set's.
func (s *tableState) sharedSet(pr peerRule) (string, bool) {
	if pr.name == "" {
		return "", false
	}
	if g := s.groups[groupKey{pr.ref.dir, pr.name}]; g != nil && g.in && sameRanges(g.canon, pr.peers) {
		return g.set, true
	}
	return "", false
}

// rebindInPlace handles a pod of unchanged shape each of whose rules stays with the set it
// has (shared or its own): its chains stay as they are and its own sets are refilled where
// their peers changed. It allocates nothing when nothing changed, and reports false, changing
// nothing, when some rule moves between a shared set and one of its own.
func (s *tableState) rebindInPlace(old *podState, prs []peerRule, d *delta) bool {
	for _, pr := range prs {
		cur := old.binds[pr.ref]
		_, own := old.own[cur]
		if name, shared := s.sharedSet(pr); shared == own || (shared && name != cur) {
			return false
		}
	}
	for _, pr := range prs {
		name := old.binds[pr.ref]
		if prev, own := old.own[name]; own && !sameRanges(prev, pr.peers) {
			d.fillSets = append(d.fillSets, &setSpec{name: name, ranges: pr.peers})
			s.elems += len(pr.peers) - len(prev)
			old.own[name] = pr.peers
		}
	}
	return true
}

// desired is the whole table s describes, for a start or a take-over.
func (s *tableState) desired() *desired {
	d := &desired{sets: map[string]*setSpec{}, chains: map[string]*chainSpec{}}
	for _, c := range s.fixed {
		d.addChain(c)
	}
	vmaps := map[string]*setSpec{mapEgress: {name: mapEgress, isMap: true}, mapIngress: {name: mapIngress, isMap: true}}
	for _, name := range sortedKeys(s.pods) {
		ps := s.pods[name]
		for _, c := range ps.chains {
			d.addChain(c)
		}
		for set, r := range ps.own {
			d.sets[set] = &setSpec{name: set, ranges: r}
		}
		for _, di := range []dirInfo{egress, ingress} {
			vmaps[di.podMap].targets = append(vmaps[di.podMap].targets, podTarget{ip: ps.pod.IP.As4(), chain: di.short + "-" + ps.id})
		}
	}
	for _, g := range s.groups {
		if g.in {
			d.sets[g.set] = &setSpec{name: g.set, ranges: g.canon}
		}
	}
	maps.Copy(d.sets, vmaps)
	d.addChain(forwardChain())
	return d
}

// copyPod copies what the caller may change in place: the rule lists and their ports and set
// headers (the sets' ranges are never changed in place), in a few allocations.
func copyPod(p *Pod) *Pod {
	c := *p
	n, np := 0, 0
	for _, x := range []*Direction{&c.Egress, &c.Ingress} {
		n += len(x.Tiered) + len(x.Baseline) + len(x.NetworkPolicy.Allow)
		for _, rs := range [][]Rule{x.Tiered, x.Baseline} {
			for _, r := range rs {
				np += len(r.Ports)
			}
		}
		for _, r := range x.NetworkPolicy.Allow {
			np += len(r.Ports)
		}
	}
	sets := make([]AddrSet, 0, n)
	ports := make([]Port, 0, np)
	peers := func(s *AddrSet) *AddrSet {
		if s == nil {
			return nil
		}
		sets = append(sets, *s)
		return &sets[len(sets)-1]
	}
	portsOf := func(ps []Port) []Port {
		if ps == nil {
			return nil
		}
		start := len(ports)
		ports = append(ports, ps...)
		return ports[start:len(ports):len(ports)]
	}
	for _, x := range []*Direction{&c.Egress, &c.Ingress} {
		for _, rs := range []*[]Rule{&x.Tiered, &x.Baseline} {
			*rs = slices.Clone(*rs)
			for i := range *rs {
				r := &(*rs)[i]
				r.Ports, r.Peers = portsOf(r.Ports), peers(r.Peers)
			}
		}
		x.NetworkPolicy.Allow = slices.Clone(x.NetworkPolicy.Allow)
		for i := range x.NetworkPolicy.Allow {
			r := &x.NetworkPolicy.Allow[i]
			r.Ports, r.Peers = portsOf(r.Ports), peers(r.Peers)
		}
	}
	return &c
}

// sameShape reports whether two models of a pod render the same chains when their rules are
// bound to the same sets: everything but the peers' addresses and the pod's IP.
func sameShape(a, b *Pod) bool {
	return a.Name == b.Name && sameDirShape(&a.Egress, &b.Egress) && sameDirShape(&a.Ingress, &b.Ingress)
}

func sameDirShape(a, b *Direction) bool {
	ruleShape := func(x, y Rule) bool {
		return x.Name == y.Name && x.Action == y.Action && (x.Peers == nil) == (y.Peers == nil) && slices.Equal(x.Ports, y.Ports)
	}
	allowShape := func(x, y AllowRule) bool {
		return x.Name == y.Name && (x.Peers == nil) == (y.Peers == nil) && slices.Equal(x.Ports, y.Ports)
	}
	return a.NetworkPolicy.Selected == b.NetworkPolicy.Selected &&
		slices.EqualFunc(a.Tiered, b.Tiered, ruleShape) && slices.EqualFunc(a.Baseline, b.Baseline, ruleShape) &&
		slices.EqualFunc(a.NetworkPolicy.Allow, b.NetworkPolicy.Allow, allowShape)
}

// samePeers reports whether two pods of the same shape have the same peers everywhere. It
// allocates nothing: it runs on every pod of every change.
func samePeers(a, b *Pod) bool {
	return sameDirPeers(&a.Egress, &b.Egress) && sameDirPeers(&a.Ingress, &b.Ingress)
}

func sameDirPeers(a, b *Direction) bool {
	for i := range a.Tiered {
		if !samePeerSet(a.Tiered[i].Peers, b.Tiered[i].Peers) {
			return false
		}
	}
	for i := range a.NetworkPolicy.Allow {
		if !samePeerSet(a.NetworkPolicy.Allow[i].Peers, b.NetworkPolicy.Allow[i].Peers) {
			return false
		}
	}
	for i := range a.Baseline {
		if !samePeerSet(a.Baseline[i].Peers, b.Baseline[i].Peers) {
			return false
		}
	}
	return true
}

func samePeerSet(x, y *AddrSet) bool {
	if x == nil || y == nil {
		return x == y
	}
	return sameRanges(x.ranges, y.ranges)
}

// sameRanges compares two sets' ranges; copies of one set share their array, which settles it
// at once.
func sameRanges(x, y []AddrRange) bool {
	if len(x) != len(y) {
		return false
	}
	if len(x) == 0 || &x[0] == &y[0] {
		return true
	}
	return slices.Equal(x, y)
}

func rangesKey(rs []AddrRange) string {
	b := make([]byte, 0, 8*len(rs))
	for _, r := range rs {
		b = append(b, r.First.AsSlice()...)
		b = append(b, r.Last.AsSlice()...)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
