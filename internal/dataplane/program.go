package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
)

// Programmer keeps one nftables table in step with a Model. Every call that changes the table
// sends one netlink batch, which nftables commits atomically: a packet's rules are the old
// ones or the new ones. A Programmer is safe for concurrent use: its changes are serialized,
// and its reads of counters go through a socket of their own, so that a read never waits for a
// change or holds one up.
type Programmer struct {
	mu    sync.Mutex
	opts  Options
	conn  *nftables.Conn
	table *nftables.Table
	// reader is the socket of the counter reads, serialized by readMu: a dump's replies must not
	// mix with a transaction's acknowledgements on conn.
	readMu sync.Mutex
	reader *nftables.Conn
	// st is the table as this Programmer last programmed it; nil before Start and after a
	// failed change, when what the kernel holds is not known (the next change takes the
	// table over again, as Start does).
	st *tableState
}

// Stats say what one change did.
type Stats struct {
	// Rules is the number of nftables rules in the table after the change.
	Rules int
	// ChainsWritten counts chains created or rewritten; SetsWritten counts sets created or
	// whose elements were replaced; ChainsDeleted and SetsDeleted count removals.
	ChainsWritten, SetsWritten, ChainsDeleted, SetsDeleted int
	// PodsRendered counts the pods whose chains were rendered again: new pods, pods whose rules
	// changed, and pods whose rules moved between a shared peer set and one of their own.
	PodsRendered int
	// Sets is the number of named sets and verdict maps in the table after the change; Elements
	// the entries in them (address ranges in the peer sets, pods in the maps).
	Sets, Elements int
	// Messages is the number of netlink messages in the transaction; zero when nothing changed.
	Messages int
}

// New returns a Programmer for the namespace and table named in opts. It changes nothing
// until Start.
func New(opts Options) (*Programmer, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	connOpts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if o.NetNSFd != 0 {
		connOpts = append(connOpts, nftables.WithNetNSFd(o.NetNSFd))
	}
	conn, err := nftables.New(connOpts...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	reader, err := nftables.New(connOpts...)
	if err != nil {
		_ = conn.CloseLasting()
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	return &Programmer{opts: o, conn: conn, reader: reader, table: &nftables.Table{Name: o.Table, Family: nftables.TableFamilyINet}}, nil
}

// Mode is the mode the Programmer programs (Options.Mode, defaulted).
func (p *Programmer) Mode() Mode { return p.opts.Mode }

// bigBuffers lets one batch carry a whole table of tens of thousands of rules and the kernel's
// acknowledgements of them.
func bigBuffers(c *netlink.Conn) error {
	if err := c.SetWriteBuffer(64 << 20); err != nil {
		return err
	}
	return c.SetReadBuffer(64 << 20)
}

// Close closes the netlink sockets. The table stays in force.
func (p *Programmer) Close() error {
	return errors.Join(p.conn.CloseLasting(), p.reader.CloseLasting())
}

// Start builds the whole table for m in one transaction. A table of the same name left by an
// earlier run (an agent restart) is taken over in that same transaction: its chains are
// emptied and refilled, its sets refilled, what m does not need deleted. The base chain stays
// hooked throughout, so no packet ever meets an empty table. (Deleting and
// re-creating the table, even in one transaction, would not do: for a moment the old and the
// new base chains are both hooked and a packet can pass the new one before the switch and the
// old one after it, through neither's rules.)
func (p *Programmer) Start(m *Model) (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked(m)
}

func (p *Programmer) startLocked(m *Model) (Stats, error) {
	st := newTableState(p.opts)
	d, err := st.update(m)
	if err != nil {
		return Stats{}, fmt.Errorf("invalid dataplane model: %w", err)
	}
	want := st.desired()
	existing, err := p.readExisting()
	if err != nil {
		return Stats{}, err
	}
	var stats Stats
	if existing != nil {
		stats, err = p.takeOver(existing, want)
	} else {
		stats, err = p.create(want)
	}
	if err != nil {
		return Stats{}, err
	}
	p.st = st
	stats.PodsRendered = d.podsRendered
	stats.Rules, stats.Sets, stats.Elements = st.rules, st.sets, st.elems
	return stats, nil
}

// create programs want into a namespace that has no such table.
func (p *Programmer) create(want *desired) (Stats, error) {
	b := newBatch(p.conn, p.table)
	p.conn.AddTable(p.table)
	b.msgs++
	var st Stats
	for _, name := range want.order {
		b.addChain(want.chains[name])
		st.ChainsWritten++
	}
	for _, s := range want.sets {
		if err := b.addSet(s); err != nil {
			return Stats{}, err
		}
		st.SetsWritten++
	}
	for _, name := range want.order {
		b.addRules(want.chains[name])
	}
	st.Messages = b.msgs
	if err := p.conn.Flush(); err != nil {
		return Stats{}, fmt.Errorf("program table inet %s: %w", p.opts.Table, err)
	}
	return st, nil
}

// existing names the chains (in the kernel's order) and sets of a table left by an earlier run.
// Their content is not read: a take-over rewrites all of them.
type existing struct {
	chains []string
	sets   []string
}

// readExisting returns the chains and sets of the table as the kernel holds it, or nil when
// there is no such table.
func (p *Programmer) readExisting() (*existing, error) {
	tables, err := p.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == p.opts.Table
	}
	if !found {
		return nil, nil
	}
	e := &existing{}
	chains, err := p.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name == p.opts.Table {
			e.chains = append(e.chains, c.Name)
		}
	}
	sets, err := p.conn.GetSets(p.table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		e.sets = append(e.sets, s.Name)
	}
	return e, nil
}

// Apply brings the table to m in one transaction, touching only what differs. It compares m
// with what it last programmed pod by pod: a pod whose model is unchanged costs the comparison,
// a peer change is a set update (one set for a rule that many pods share), and only a pod whose
// rules changed has its chains rendered again and, where they differ, rewritten. Apply before
// Start, or after a failed Apply, is Start.
func (p *Programmer) Apply(m *Model) (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil {
		return p.startLocked(m)
	}
	d, err := p.st.update(m)
	if err != nil {
		return Stats{}, fmt.Errorf("invalid dataplane model: %w", err)
	}
	st, err := p.send(d)
	if err != nil {
		// The kernel applied nothing, but the state already holds the change: forget it, and
		// take the table over on the next call.
		p.st = nil
		return Stats{}, err
	}
	st.Rules, st.Sets, st.Elements = p.st.rules, p.st.sets, p.st.elems
	return st, nil
}

// send sends a delta as one batch.
func (p *Programmer) send(d *delta) (Stats, error) {
	st := Stats{PodsRendered: d.podsRendered}
	if d.empty() {
		return st, nil
	}
	b := newBatch(p.conn, p.table)
	// 1. New chains (empty) and sets, so that rules can refer to them; new set contents.
	for _, c := range d.newChains {
		b.addChain(c)
	}
	for _, s := range d.addSets {
		if err := b.addSet(s); err != nil {
			return Stats{}, err
		}
	}
	for _, s := range d.fillSets {
		if err := b.replaceElements(s); err != nil {
			return Stats{}, err
		}
	}
	// 2. Rules of new and changed chains.
	for _, c := range d.rewrite {
		b.flushChain(c.name)
	}
	for _, c := range d.newChains {
		b.addRules(c)
	}
	for _, c := range d.rewrite {
		b.addRules(c)
	}
	// 3. The verdict maps: pods that went or moved out, then pods that came or moved in.
	for _, name := range sortedKeys(d.mapDel) {
		if err := b.mapElements(name, d.mapDel[name], false); err != nil {
			return Stats{}, err
		}
	}
	for _, name := range sortedKeys(d.mapAdd) {
		if err := b.mapElements(name, d.mapAdd[name], true); err != nil {
			return Stats{}, err
		}
	}
	// 4. Chains and sets nothing refers to any more.
	for _, name := range d.delChains {
		b.flushChain(name)
	}
	for _, name := range d.delChains {
		b.delChain(name)
	}
	for _, s := range d.delSets {
		b.delSet(s)
	}
	maps := map[string]bool{}
	for name := range d.mapDel {
		maps[name] = true
	}
	for name := range d.mapAdd {
		maps[name] = true
	}
	st.ChainsWritten = len(d.newChains) + len(d.rewrite)
	st.SetsWritten = len(d.addSets) + len(d.fillSets) + len(maps)
	st.ChainsDeleted, st.SetsDeleted = len(d.delChains), len(d.delSets)
	st.Messages = b.msgs
	if err := p.conn.Flush(); err != nil {
		return Stats{}, fmt.Errorf("update table inet %s: %w", p.opts.Table, err)
	}
	return st, nil
}

// takeOver brings a table left by an earlier run to want in one transaction. What the kernel
// holds in it is not known (an older agent, or someone, may have changed it), so every chain it
// keeps is emptied and refilled and every set it keeps refilled, even where the new content
// is empty; the rest is deleted. The base chain stays hooked throughout.
func (p *Programmer) takeOver(cur *existing, want *desired) (Stats, error) {
	b := newBatch(p.conn, p.table)
	var st Stats
	had := func(names []string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	curChains, curSets := had(cur.chains), had(cur.sets)

	var newChains, keptChains []*chainSpec
	for _, name := range want.order {
		if curChains[name] {
			keptChains = append(keptChains, want.chains[name])
		} else {
			newChains = append(newChains, want.chains[name])
		}
	}
	// 1. New chains (empty) and sets, so that rules can refer to them; kept sets refilled.
	for _, c := range newChains {
		b.addChain(c)
	}
	for _, name := range sortedKeys(want.sets) {
		s := want.sets[name]
		if curSets[name] {
			if err := b.replaceElements(s); err != nil {
				return Stats{}, err
			}
		} else if err := b.addSet(s); err != nil {
			return Stats{}, err
		}
		st.SetsWritten++
	}
	// 2. Rules of new and kept chains.
	for _, c := range keptChains {
		b.flushChain(c.name)
	}
	for _, c := range append(newChains, keptChains...) {
		b.addRules(c)
	}
	st.ChainsWritten = len(newChains) + len(keptChains)
	// 3. Chains and sets nothing refers to any more.
	var gone []string
	for _, name := range cur.chains {
		if want.chains[name] == nil {
			gone = append(gone, name)
		}
	}
	for _, name := range gone {
		b.flushChain(name)
	}
	for _, name := range gone {
		b.delChain(name)
	}
	st.ChainsDeleted = len(gone)
	for _, name := range cur.sets {
		if want.sets[name] == nil {
			b.delSet(&setSpec{name: name})
			st.SetsDeleted++
		}
	}
	st.Messages = b.msgs
	if err := p.conn.Flush(); err != nil {
		return Stats{}, fmt.Errorf("take over table inet %s: %w", p.opts.Table, err)
	}
	return st, nil
}

// Cleanup deletes the table: enforcement ends. An agent calls it only when told to clean up.
func (p *Programmer) Cleanup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conn.AddTable(p.table)
	p.conn.DelTable(p.table)
	if err := p.conn.Flush(); err != nil {
		return fmt.Errorf("delete table inet %s: %w", p.opts.Table, err)
	}
	p.st = nil
	return nil
}

// RuleCounter is the counter of one rule of the model (summed over the nftables rules it was
// rendered into) or of one of the table's own rules.
type RuleCounter struct {
	// Direction is "egress" or "ingress".
	Direction string
	// Stage is "tiered", "networkpolicy", "baseline", "default" for a pod's rules; "drop",
	// "reject", "drop-audit", "reject-audit" for the verdict chains; "conntrack" and "dispatch"
	// for the forward chain.
	Stage string
	// Index is the rule's index in its stage; -1 for the stage's closing rule.
	Index int
	// Pod is the pod's name, "-" for rules not of one pod.
	Pod  string
	Name string
	// Action is what a pod's rule does with what it matches: Allow, Drop, Reject or Pass
	// (in Audit mode Drop and Reject are counted and let through); empty for the NetworkPolicy
	// stage's hand-over to the baseline and for the table's own rules.
	Action  Action
	Packets uint64
	Bytes   uint64
	// Handle is the kernel's handle of the nftables rule (RuleCounters only). A rule rewritten
	// by a change gets a new handle and starts counting from zero.
	Handle uint64
}

// Key is "direction stage index pod".
func (c RuleCounter) Key() string {
	return fmt.Sprintf("%s %s %d %s", c.Direction, c.Stage, c.Index, c.Pod)
}

// Counters reads every rule's counter back from the kernel, in table order, summed per rule of
// the model.
func (p *Programmer) Counters() ([]RuleCounter, error) {
	rcs, err := p.RuleCounters()
	if err != nil {
		return nil, err
	}
	return sumPerRule(rcs), nil
}

// PodCounters reads the counters of one pod's rules, summed per rule of the model, in evaluation
// order: egress then ingress, each tiered, NetworkPolicy, baseline (and default). It reads only
// the pod's six chains (named from the pod's name) and none when the pod has no chains: an
// empty answer means the table holds no rule of that pod. It does not wait for a change of the
// table in progress, nor holds one up.
func (p *Programmer) PodCounters(pod string) ([]RuleCounter, error) {
	id := podID(pod)
	var chains []string
	for _, di := range []dirInfo{egress, ingress} {
		base := di.short + "-" + id
		chains = append(chains, base, base+"-np", base+"-bl")
	}
	rcs, err := p.readRules(chains)
	if err != nil {
		return nil, err
	}
	// Another pod's name could share the hash; its rules name their pod.
	rcs = slices.DeleteFunc(rcs, func(rc RuleCounter) bool { return rc.Pod != pod })
	return sumPerRule(rcs), nil
}

// sumPerRule sums the counters of the nftables rules of one model rule (one per port), keeping
// the order of their first rule.
func sumPerRule(rcs []RuleCounter) []RuleCounter {
	var out []RuleCounter
	index := map[string]int{}
	for _, rc := range rcs {
		rc.Handle = 0
		if i, ok := index[rc.Key()]; ok {
			out[i].Packets += rc.Packets
			out[i].Bytes += rc.Bytes
			continue
		}
		index[rc.Key()] = len(out)
		out = append(out, rc)
	}
	return out
}

// RuleCounters reads the counter of every nftables rule of the table, in table order. It is
// one netlink dump per chain and changes nothing.
func (p *Programmer) RuleCounters() ([]RuleCounter, error) {
	p.readMu.Lock()
	chains, err := p.reader.ListChainsOfTableFamily(nftables.TableFamilyINet)
	p.readMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var names []string
	for _, ch := range chains {
		if ch.Table.Name == p.opts.Table {
			names = append(names, ch.Name)
		}
	}
	return p.readRules(names)
}

// readRules dumps the rules of the named chains with their counters. A chain that is not there
// (deleted since it was listed, or a pod's chain of a pod the table does not hold) has no rules.
func (p *Programmer) readRules(chains []string) ([]RuleCounter, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	var out []RuleCounter
	for _, name := range chains {
		rules, err := p.reader.GetRules(p.table, &nftables.Chain{Name: name, Table: p.table})
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", name, err)
		}
		for _, r := range rules {
			comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			rc, ok := parseComment(comment)
			if !ok {
				continue
			}
			rc.Handle = r.Handle
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Counter:
					rc.Packets, rc.Bytes = e.Packets, e.Bytes
				case *expr.Verdict:
					if rc.Pod != "-" {
						rc.Action = actionOf(e)
					}
				}
			}
			out = append(out, rc)
		}
	}
	return out, nil
}

// Decide says which rule of the table decides one side of a new connection of a pod of the
// node: the reference evaluation (Direction.Decide) of the pod's model as the table was last
// programmed. ok is false when the table holds no such pod (or its state is not known: before
// Start, after a failed change). Decision.Stage and Index name the rule's counter
// (RuleCounter.Stage and Index of the same direction).
func (p *Programmer) Decide(pod string, ingress bool, peer netip.Addr, proto Protocol, port uint16) (d Decision, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil {
		return Decision{}, false
	}
	ps := p.st.pods[pod]
	if ps == nil {
		return Decision{}, false
	}
	dir := &ps.pod.Egress
	if ingress {
		dir = &ps.pod.Ingress
	}
	return dir.Decide(peer, proto, port), true
}

// actionOf reads a pod rule's action back from its verdict (see renderDirection).
func actionOf(v *expr.Verdict) Action {
	switch {
	case v.Kind == expr.VerdictReturn:
		return Allow
	case v.Kind != expr.VerdictGoto:
		return ""
	case strings.HasPrefix(v.Chain, "drop-"):
		return Drop
	case strings.HasPrefix(v.Chain, "reject-"):
		return Reject
	case strings.HasSuffix(v.Chain, "-np"):
		return Pass
	}
	return ""
}

func parseComment(s string) (RuleCounter, bool) {
	f := strings.SplitN(s, " ", 5)
	if len(f) < 4 {
		return RuleCounter{}, false
	}
	i, err := strconv.Atoi(f[2])
	if err != nil {
		return RuleCounter{}, false
	}
	rc := RuleCounter{Direction: f[0], Stage: f[1], Index: i, Pod: f[3]}
	if len(f) == 5 {
		rc.Name = f[4]
	}
	return rc, true
}

// setIDs numbers the sets this process creates; the kernel uses the id to find a set made
// earlier in the same batch.
var setIDs atomic.Uint32

// batch queues the messages of one transaction and counts them.
type batch struct {
	conn  *nftables.Conn
	table *nftables.Table
	msgs  int
}

func newBatch(c *nftables.Conn, t *nftables.Table) *batch { return &batch{conn: c, table: t} }

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: b.table}
}

func (b *batch) addChain(c *chainSpec) {
	ch := b.chain(c.name)
	if c.base {
		accept := nftables.ChainPolicyAccept
		ch.Type = nftables.ChainTypeFilter
		ch.Hooknum = nftables.ChainHookForward
		ch.Priority = nftables.ChainPriorityFilter
		ch.Policy = &accept
	}
	b.conn.AddChain(ch)
	b.msgs++
}

func (b *batch) addRules(c *chainSpec) {
	ch := b.chain(c.name)
	for _, r := range c.rules {
		b.conn.AddRule(&nftables.Rule{Table: b.table, Chain: ch, Exprs: r.exprs(),
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment)})
		b.msgs++
	}
}

func (b *batch) flushChain(name string) {
	b.conn.FlushChain(b.chain(name))
	b.msgs++
}

func (b *batch) delChain(name string) {
	b.conn.DelChain(b.chain(name))
	b.msgs++
}

func (b *batch) set(s *setSpec) *nftables.Set {
	set := &nftables.Set{Table: b.table, Name: s.name, ID: setIDs.Add(1), KeyType: nftables.TypeIPAddr}
	if s.isMap {
		set.IsMap = true
		set.DataType = nftables.TypeVerdict
	} else {
		set.Interval = true
	}
	return set
}

func (b *batch) addSet(s *setSpec) error {
	if err := b.conn.AddSet(b.set(s), s.elements()); err != nil {
		return fmt.Errorf("set %s: %w", s.name, err)
	}
	b.msgs++
	return nil
}

func (b *batch) replaceElements(s *setSpec) error {
	set := b.set(s)
	b.conn.FlushSet(set)
	b.msgs++
	elems := s.elements()
	if len(elems) == 0 {
		return nil
	}
	if err := b.conn.SetAddElements(set, elems); err != nil {
		return fmt.Errorf("set %s: %w", s.name, err)
	}
	b.msgs++
	return nil
}

// mapElements adds (add) or deletes pods' entries of a verdict map.
func (b *batch) mapElements(name string, targets []podTarget, add bool) error {
	set := b.set(&setSpec{name: name, isMap: true})
	es := make([]nftables.SetElement, 0, len(targets))
	for _, t := range targets {
		e := nftables.SetElement{Key: append([]byte(nil), t.ip[:]...)}
		if add {
			e.VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: t.chain}
		}
		es = append(es, e)
	}
	var err error
	if add {
		err = b.conn.SetAddElements(set, es)
	} else {
		err = b.conn.SetDeleteElements(set, es)
	}
	if err != nil {
		return fmt.Errorf("map %s: %w", name, err)
	}
	b.msgs++
	return nil
}

func (b *batch) delSet(s *setSpec) {
	b.conn.DelSet(b.set(s))
	b.msgs++
}
