package dataplane

import (
	"fmt"
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
// ones or the new ones. A Programmer is safe for concurrent use; it serializes its calls.
type Programmer struct {
	mu    sync.Mutex
	opts  Options
	conn  *nftables.Conn
	table *nftables.Table
	cur   *desired // what the kernel holds, as last programmed by this Programmer
}

// Stats say what one change did.
type Stats struct {
	// Rules is the number of nftables rules in the table after the change.
	Rules int
	// ChainsWritten counts chains created or rewritten; SetsWritten counts sets created or
	// whose elements were replaced; ChainsDeleted and SetsDeleted count removals.
	ChainsWritten, SetsWritten, ChainsDeleted, SetsDeleted int
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
	return &Programmer{opts: o, conn: conn, table: &nftables.Table{Name: o.Table, Family: nftables.TableFamilyINet}}, nil
}

// bigBuffers lets one batch carry a whole table of tens of thousands of rules and the kernel's
// acknowledgements of them.
func bigBuffers(c *netlink.Conn) error {
	if err := c.SetWriteBuffer(64 << 20); err != nil {
		return err
	}
	return c.SetReadBuffer(64 << 20)
}

// Close closes the netlink socket. The table stays in force.
func (p *Programmer) Close() error { return p.conn.CloseLasting() }

// Start builds the whole table for m in one transaction. A table of the same name left by an
// earlier run (an agent restart) is taken over in that same transaction: its chains are
// emptied and refilled, its sets refilled, what m does not need deleted. The base chain stays
// hooked throughout, so no packet ever meets an empty table. (Deleting and
// re-creating the table, even in one transaction, would not do: for a moment the old and the
// new base chains are both hooked and a packet can pass the new one before the switch and the
// old one after it, through neither's rules.)
func (p *Programmer) Start(m *Model) (Stats, error) {
	if err := m.Validate(); err != nil {
		return Stats{}, fmt.Errorf("invalid dataplane model: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked(render(m, p.opts))
}

func (p *Programmer) startLocked(want *desired) (Stats, error) {
	existing, err := p.readExisting()
	if err != nil {
		return Stats{}, err
	}
	if existing != nil {
		return p.applyLocked(existing, want)
	}
	b := newBatch(p.conn, p.table)
	p.conn.AddTable(p.table)
	b.msgs++
	st := Stats{Rules: want.rules}
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
	p.cur = want
	return st, nil
}

// readExisting returns the names of the chains and sets of the table as the kernel holds it,
// or nil when there is no such table.
func (p *Programmer) readExisting() (*desired, error) {
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
	d := &desired{sets: map[string]*setSpec{}, chains: map[string]*chainSpec{}}
	chains, err := p.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name == p.opts.Table {
			d.addChain(&chainSpec{name: c.Name, base: c.Hooknum != nil, unknown: true})
		}
	}
	sets, err := p.conn.GetSets(p.table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		d.sets[s.Name] = &setSpec{name: s.Name, isMap: s.IsMap, unknown: true}
	}
	return d, nil
}

// Apply brings the table to m in one transaction, touching only what differs: a changed peer
// set is a set update, a changed rule list rewrites that pod's chain only. Apply before Start
// is Start.
func (p *Programmer) Apply(m *Model) (Stats, error) {
	if err := m.Validate(); err != nil {
		return Stats{}, fmt.Errorf("invalid dataplane model: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return p.startLocked(render(m, p.opts))
	}
	return p.applyLocked(p.cur, render(m, p.opts))
}

func (p *Programmer) applyLocked(cur, want *desired) (Stats, error) {
	b := newBatch(p.conn, p.table)
	st := Stats{Rules: want.rules}

	var newChains, changedChains, goneChains []*chainSpec
	for _, name := range want.order {
		w, c := want.chains[name], cur.chains[name]
		switch {
		case c == nil:
			newChains = append(newChains, w)
		case !c.equal(w):
			changedChains = append(changedChains, w)
		}
	}
	for _, name := range cur.order {
		if want.chains[name] == nil {
			goneChains = append(goneChains, cur.chains[name])
		}
	}
	// 1. New chains (empty) and sets, so that rules can refer to them.
	for _, c := range newChains {
		b.addChain(c)
	}
	for name, s := range want.sets {
		c := cur.sets[name]
		switch {
		case c == nil:
			if err := b.addSet(s); err != nil {
				return Stats{}, err
			}
		case !c.equal(s):
			if err := b.replaceElements(s); err != nil {
				return Stats{}, err
			}
		default:
			continue
		}
		st.SetsWritten++
	}
	// 2. Rules of new and changed chains.
	for _, c := range changedChains {
		b.flushChain(c.name)
	}
	for _, c := range append(newChains, changedChains...) {
		b.addRules(c)
	}
	st.ChainsWritten = len(newChains) + len(changedChains)
	// 3. Chains and sets nothing refers to any more.
	for _, c := range goneChains {
		b.flushChain(c.name)
	}
	for _, c := range goneChains {
		b.delChain(c.name)
	}
	st.ChainsDeleted = len(goneChains)
	for name, s := range cur.sets {
		if want.sets[name] == nil {
			b.delSet(s)
			st.SetsDeleted++
		}
	}
	st.Messages = b.msgs
	if b.msgs == 0 {
		p.cur = want
		return st, nil
	}
	if err := p.conn.Flush(); err != nil {
		// The kernel applied nothing; what it holds is still cur.
		return Stats{}, fmt.Errorf("update table inet %s: %w", p.opts.Table, err)
	}
	p.cur = want
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
	p.cur = nil
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
	Pod     string
	Name    string
	Packets uint64
	Bytes   uint64
}

// Key is "direction stage index pod".
func (c RuleCounter) Key() string {
	return fmt.Sprintf("%s %s %d %s", c.Direction, c.Stage, c.Index, c.Pod)
}

// Counters reads every rule's counter back from the kernel, in table order.
func (p *Programmer) Counters() ([]RuleCounter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	chains, err := p.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []RuleCounter
	index := map[string]int{}
	for _, ch := range chains {
		if ch.Table.Name != p.opts.Table {
			continue
		}
		rules, err := p.conn.GetRules(p.table, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		for _, r := range rules {
			comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			rc, ok := parseComment(comment)
			if !ok {
				continue
			}
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					rc.Packets, rc.Bytes = c.Packets, c.Bytes
				}
			}
			if i, ok := index[rc.Key()]; ok {
				out[i].Packets += rc.Packets
				out[i].Bytes += rc.Bytes
				continue
			}
			index[rc.Key()] = len(out)
			out = append(out, rc)
		}
	}
	return out, nil
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

func (b *batch) delSet(s *setSpec) {
	b.conn.DelSet(b.set(s))
	b.msgs++
}
