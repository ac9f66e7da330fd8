package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Mode says whether the table enforces verdicts or only counts them.
type Mode string

const (
	// Enforce drops and rejects what the policy denies.
	Enforce Mode = "Enforce"
	// Audit counts (and, with drop logging, logs) what the policy would drop or reject, and
	// lets it pass.
	Audit Mode = "Audit"
)

// Options configure the table.
type Options struct {
	// Table is the name of the inet table; default "meridian".
	Table string
	// Mode is Enforce (default) or Audit.
	Mode Mode
	// LogDrops logs denied connections to the kernel log, at most LogRate a second per verdict
	// chain (drop/reject × ingress/egress). Logs from a network namespace other than the
	// initial one reach the kernel log only with net.netfilter.nf_log_all_netns=1.
	LogDrops bool
	// LogRate is the log rate limit per second; default 10.
	LogRate uint32
	// NetNSFd, when not zero, is an open file descriptor of the network namespace to program;
	// zero means the caller's namespace.
	NetNSFd int
}

func (o Options) withDefaults() (Options, error) {
	if o.Table == "" {
		o.Table = "meridian"
	}
	if o.Mode == "" {
		o.Mode = Enforce
	}
	if o.Mode != Enforce && o.Mode != Audit {
		return o, fmt.Errorf("mode %q is not one of Enforce, Audit", o.Mode)
	}
	if o.LogRate == 0 {
		o.LogRate = 10
	}
	return o, nil
}

// Chain and set names. Pod chains and sets are named from a hash of the pod's name so that
// they stay put while the pod lives and fit nftables' name limits.
const (
	chainForward = "forward"
	mapEgress    = "egress-pods"
	mapIngress   = "ingress-pods"
	reg          = 1 // NFT_REG_1
)

type dirInfo struct {
	short    string // chain prefix
	long     string // "egress" or "ingress"
	peerOff  uint32 // offset of the peer's address in the IPv4 header
	podOff   uint32 // offset of the pod's own address
	podMap   string
	dropName string
	rejName  string
}

var (
	egress  = dirInfo{"e", "egress", 16, 12, mapEgress, "drop-egress", "reject-egress"}
	ingress = dirInfo{"i", "ingress", 12, 16, mapIngress, "drop-ingress", "reject-ingress"}
)

func podID(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:5])
}

// setSpec is one named set as it should be.
type setSpec struct {
	name  string
	isMap bool
	elems []nftables.SetElement
	sig   string
}

// ruleSpec is one nftables rule as it should be; sig describes it completely, so two rules
// with the same sig are the same rule.
type ruleSpec struct {
	exprs   []expr.Any
	comment string
	sig     string
}

type chainSpec struct {
	name  string
	base  bool
	rules []ruleSpec
}

func (c *chainSpec) sig() string {
	var b strings.Builder
	for _, r := range c.rules {
		b.WriteString(r.sig)
		b.WriteString("\n")
	}
	return b.String()
}

// desired is the whole table as it should be.
type desired struct {
	sets   map[string]*setSpec
	chains map[string]*chainSpec
	order  []string // chain names in creation order
	rules  int      // nftables rules in the table
}

func (d *desired) addChain(c *chainSpec) {
	d.chains[c.name] = c
	d.order = append(d.order, c.name)
	d.rules += len(c.rules)
}

// ruleBuilder accumulates a rule's expressions and their description.
type ruleBuilder struct {
	exprs []expr.Any
	desc  []string
}

func (b *ruleBuilder) add(desc string, es ...expr.Any) *ruleBuilder {
	b.exprs = append(b.exprs, es...)
	b.desc = append(b.desc, desc)
	return b
}

func (b *ruleBuilder) addr(off uint32, set string) *ruleBuilder {
	return b.add(fmt.Sprintf("addr@%d in @%s", off, set),
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Lookup{SourceRegister: reg, SetName: set})
}

func (b *ruleBuilder) port(p Port) *ruleBuilder {
	proto, _ := p.Protocol.number()
	b.add(fmt.Sprintf("l4proto %d", proto),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}})
	if p.Port == 0 {
		return b
	}
	load := &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	if p.last() == p.Port {
		return b.add(fmt.Sprintf("dport %d", p.Port), load,
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.BigEndian.PutUint16(p.Port)})
	}
	return b.add(fmt.Sprintf("dport %d-%d", p.Port, p.last()), load,
		&expr.Range{Op: expr.CmpOpEq, Register: reg,
			FromData: binaryutil.BigEndian.PutUint16(p.Port), ToData: binaryutil.BigEndian.PutUint16(p.last())})
}

func (b *ruleBuilder) counter() *ruleBuilder { return b.add("counter", &expr.Counter{}) }

func (b *ruleBuilder) verdict(kind expr.VerdictKind, chain string) *ruleBuilder {
	return b.add(fmt.Sprintf("verdict %d %s", kind, chain), &expr.Verdict{Kind: kind, Chain: chain})
}

func (b *ruleBuilder) build(comment string) ruleSpec {
	return ruleSpec{exprs: b.exprs, comment: comment, sig: strings.Join(b.desc, "; ") + " # " + comment}
}

// ruleComment names a rule for counters: direction, stage, index, pod and the rule's name.
// ParseComment reads it back.
func ruleComment(dir, stage string, index int, pod, name string) string {
	c := fmt.Sprintf("%s %s %d %s %s", dir, stage, index, pod, name)
	if len(c) > 200 {
		c = c[:200]
	}
	return c
}

// render turns a validated model into the table it needs.
func render(m *Model, o Options) *desired {
	d := &desired{sets: map[string]*setSpec{}, chains: map[string]*chainSpec{}}
	for _, di := range []dirInfo{egress, ingress} {
		d.addChain(verdictChain(di, o, false))
		d.addChain(verdictChain(di, o, true))
	}
	pods := append([]Pod(nil), m.Pods...)
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	egressMap := &setSpec{name: mapEgress, isMap: true}
	ingressMap := &setSpec{name: mapIngress, isMap: true}
	for _, p := range pods {
		id := podID(p.Name)
		for _, x := range []struct {
			di  dirInfo
			dir Direction
			vm  *setSpec
		}{{egress, p.Egress, egressMap}, {ingress, p.Ingress, ingressMap}} {
			renderDirection(d, x.di, id, p.Name, x.dir)
			x.vm.elems = append(x.vm.elems, nftables.SetElement{
				Key:         p.IP.AsSlice(),
				VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: x.di.short + "-" + id},
			})
			x.vm.sig += fmt.Sprintf("%s>%s-%s,", p.IP, x.di.short, id)
		}
	}
	d.sets[mapEgress] = egressMap
	d.sets[mapIngress] = ingressMap

	fwd := &chainSpec{name: chainForward, base: true}
	var b ruleBuilder
	fwd.rules = append(fwd.rules, b.add("ct state established,related",
		&expr.Ct{Register: reg, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(0)}).
		counter().verdict(expr.VerdictAccept, "").build("conntrack established 0 - replies and related"))
	for _, di := range []dirInfo{egress, ingress} {
		var b ruleBuilder
		fwd.rules = append(fwd.rules, b.add("nfproto ipv4",
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.NFPROTO_IPV4}}).
			add(fmt.Sprintf("addr@%d vmap @%s", di.podOff, di.podMap),
				&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: di.podOff, Len: 4},
				&expr.Lookup{SourceRegister: reg, SetName: di.podMap, DestRegister: 0, IsDestRegSet: true}).
			build(ruleComment(di.long, "dispatch", 0, "-", "pods of this node")))
	}
	d.addChain(fwd)
	return d
}

// verdictChain is where Drop (reject=false) and Reject (reject=true) rules of one direction go:
// log (rate limited, when on), count, and then enforce, or in Audit mode return so that the
// connection goes on.
func verdictChain(di dirInfo, o Options, reject bool) *chainSpec {
	name, what := di.dropName, "drop"
	if reject {
		name, what = di.rejName, "reject"
	}
	c := &chainSpec{name: name}
	audit := o.Mode == Audit
	if o.LogDrops {
		prefix := fmt.Sprintf("meridian %s %s: ", what, di.long)
		if audit {
			prefix = fmt.Sprintf("meridian audit %s %s: ", what, di.long)
		}
		var b ruleBuilder
		c.rules = append(c.rules, b.add(fmt.Sprintf("limit %d/s", o.LogRate),
			&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(o.LogRate), Unit: expr.LimitTimeSecond, Burst: o.LogRate}).
			add("log "+prefix, &expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(prefix)}).
			build(ruleComment(di.long, what+"-log", 0, "-", "rate limited log")))
	}
	var b ruleBuilder
	switch {
	case audit:
		c.rules = append(c.rules, b.counter().verdict(expr.VerdictReturn, "").
			build(ruleComment(di.long, what+"-audit", 0, "-", "would "+what)))
	case reject:
		c.rules = append(c.rules, b.add("l4proto tcp",
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_TCP}}).
			counter().add("reject tcp reset", &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}).
			build(ruleComment(di.long, what, 0, "-", "tcp reset")))
		var b2 ruleBuilder
		c.rules = append(c.rules, b2.counter().add("reject icmpx admin-prohibited",
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}).
			build(ruleComment(di.long, what, 1, "-", "icmp admin prohibited")))
	default:
		c.rules = append(c.rules, b.counter().verdict(expr.VerdictDrop, "").
			build(ruleComment(di.long, what, 0, "-", "drop")))
	}
	return c
}

func renderDirection(d *desired, di dirInfo, id, pod string, dir Direction) {
	base := di.short + "-" + id
	npChain, blChain := base+"-np", base+"-bl"
	target := func(a Action) (expr.VerdictKind, string) {
		switch a {
		case Allow:
			return expr.VerdictReturn, ""
		case Drop:
			return expr.VerdictGoto, di.dropName
		case Reject:
			return expr.VerdictGoto, di.rejName
		default: // Pass
			return expr.VerdictGoto, npChain
		}
	}
	// matchRules renders one model rule as one nftables rule per port (or one for any port).
	matchRules := func(setName string, peers *AddrSet, ports []Port, comment string, kind expr.VerdictKind, chain string) []ruleSpec {
		if peers != nil {
			d.sets[setName] = intervalSet(setName, *peers)
		}
		one := func(p *Port) ruleSpec {
			var b ruleBuilder
			if peers != nil {
				b.addr(di.peerOff, setName)
			}
			if p != nil {
				b.port(*p)
			}
			return b.counter().verdict(kind, chain).build(comment)
		}
		if len(ports) == 0 {
			return []ruleSpec{one(nil)}
		}
		var rs []ruleSpec
		for i := range ports {
			rs = append(rs, one(&ports[i]))
		}
		return rs
	}

	tiered := &chainSpec{name: base}
	for i, r := range dir.Tiered {
		kind, chain := target(r.Action)
		tiered.rules = append(tiered.rules, matchRules(fmt.Sprintf("%s-t%d", base, i), r.Peers, r.Ports,
			ruleComment(di.long, "tiered", i, pod, r.Name), kind, chain)...)
	}
	var b ruleBuilder
	tiered.rules = append(tiered.rules, b.verdict(expr.VerdictGoto, npChain).build(ruleComment(di.long, "tiered", -1, pod, "no tiered rule decided")))

	np := &chainSpec{name: npChain}
	if dir.NetworkPolicy.Selected {
		for i, r := range dir.NetworkPolicy.Allow {
			np.rules = append(np.rules, matchRules(fmt.Sprintf("%s-n%d", base, i), r.Peers, r.Ports,
				ruleComment(di.long, "networkpolicy", i, pod, r.Name), expr.VerdictReturn, "")...)
		}
		var b ruleBuilder
		np.rules = append(np.rules, b.counter().verdict(expr.VerdictGoto, di.dropName).
			build(ruleComment(di.long, "networkpolicy", -1, pod, "selected by a NetworkPolicy, no rule allows")))
	} else {
		var b ruleBuilder
		np.rules = append(np.rules, b.verdict(expr.VerdictGoto, blChain).
			build(ruleComment(di.long, "networkpolicy", -2, pod, "not selected by any NetworkPolicy")))
	}

	bl := &chainSpec{name: blChain}
	for i, r := range dir.Baseline {
		kind, chain := target(r.Action)
		bl.rules = append(bl.rules, matchRules(fmt.Sprintf("%s-b%d", base, i), r.Peers, r.Ports,
			ruleComment(di.long, "baseline", i, pod, r.Name), kind, chain)...)
	}
	var b2 ruleBuilder
	bl.rules = append(bl.rules, b2.counter().verdict(expr.VerdictReturn, "").
		build(ruleComment(di.long, "default", -1, pod, "nothing matched: allow")))

	// Created before the chains that jump to them.
	d.addChain(bl)
	d.addChain(np)
	d.addChain(tiered)
}

// intervalSet renders an address set as the elements of an nftables interval set: each range
// is a start element and an end element one past its last address (none when the range ends
// at 255.255.255.255).
func intervalSet(name string, s AddrSet) *setSpec {
	spec := &setSpec{name: name}
	var sig strings.Builder
	for _, r := range s.ranges {
		spec.elems = append(spec.elems, nftables.SetElement{Key: r.First.AsSlice()})
		if last := u32(r.Last); last != ^uint32(0) {
			spec.elems = append(spec.elems, nftables.SetElement{Key: addr4(last + 1).AsSlice(), IntervalEnd: true})
		}
		fmt.Fprintf(&sig, "%s-%s,", r.First, r.Last)
	}
	spec.sig = sig.String()
	return spec
}
