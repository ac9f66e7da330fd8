package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

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

// setSpec is one named set as it should be: an interval set of addresses, or a verdict map
// from pod address to the pod's chain.
type setSpec struct {
	name    string
	isMap   bool
	ranges  []AddrRange // interval set
	targets []podTarget // verdict map
}

type podTarget struct {
	ip    [4]byte
	chain string
}

// elements renders the set's content: each range is a start element and an end element one
// past its last address (none when the range ends at 255.255.255.255).
func (s *setSpec) elements() []nftables.SetElement {
	var es []nftables.SetElement
	for _, t := range s.targets {
		es = append(es, nftables.SetElement{Key: t.ip[:], VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: t.chain}})
	}
	for _, r := range s.ranges {
		es = append(es, nftables.SetElement{Key: r.First.AsSlice()})
		if last := u32(r.Last); last != ^uint32(0) {
			es = append(es, nftables.SetElement{Key: addr4(last + 1).AsSlice(), IntervalEnd: true})
		}
	}
	return es
}

// ruleSpec is one nftables rule as it should be. It is a comparable value that describes the
// rule completely; the expressions are made from it only when the rule is written.
type ruleSpec struct {
	special string // a fixed rule of the table's own: "ct", "dispatch", "log", "reject-tcp", "reject-icmpx"
	off     uint32 // "dispatch": offset of the pod's address; else, with set: of the peer's
	set     string // peer set or pod map
	hasPort bool
	port    Port
	logRate uint32
	prefix  string
	counter bool
	hasVerd bool
	verdict expr.VerdictKind
	chain   string
	comment string
}

func (r ruleSpec) exprs() []expr.Any {
	var es []expr.Any
	addrLoad := func(off uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}
	}
	l4 := func(proto byte) []expr.Any {
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}}}
	}
	switch r.special {
	case "ct":
		es = append(es, &expr.Ct{Register: reg, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(0)})
	case "dispatch":
		es = append(es, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.NFPROTO_IPV4}},
			addrLoad(r.off), &expr.Lookup{SourceRegister: reg, SetName: r.set, DestRegister: 0, IsDestRegSet: true})
		return es
	case "log":
		es = append(es, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(r.logRate), Unit: expr.LimitTimeSecond, Burst: r.logRate},
			&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(r.prefix)})
		return es
	case "reject-tcp":
		es = append(es, l4(unix.IPPROTO_TCP)...)
		es = append(es, &expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
		return es
	case "reject-icmpx":
		return []expr.Any{&expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}
	}
	if r.set != "" {
		es = append(es, addrLoad(r.off), &expr.Lookup{SourceRegister: reg, SetName: r.set})
	}
	if r.hasPort {
		proto, _ := r.port.Protocol.number()
		es = append(es, l4(proto)...)
		if r.port.Port != 0 {
			es = append(es, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			if r.port.last() == r.port.Port {
				es = append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.BigEndian.PutUint16(r.port.Port)})
			} else {
				es = append(es, &expr.Range{Op: expr.CmpOpEq, Register: reg,
					FromData: binaryutil.BigEndian.PutUint16(r.port.Port), ToData: binaryutil.BigEndian.PutUint16(r.port.last())})
			}
		}
	}
	if r.counter {
		es = append(es, &expr.Counter{})
	}
	if r.hasVerd {
		es = append(es, &expr.Verdict{Kind: r.verdict, Chain: r.chain})
	}
	return es
}

type chainSpec struct {
	name  string
	base  bool
	rules []ruleSpec
}

// desired is the whole table as it should be.
type desired struct {
	sets   map[string]*setSpec
	chains map[string]*chainSpec
	order  []string // chain names in creation order
}

func (d *desired) addChain(c *chainSpec) {
	d.chains[c.name] = c
	d.order = append(d.order, c.name)
}

// ruleComment names a rule for counters: direction, stage, index, pod and the rule's name.
// parseComment reads it back.
func ruleComment(dir, stage string, index int, pod, name string) string {
	c := dir + " " + stage + " " + strconv.Itoa(index) + " " + pod + " " + name
	if len(c) > 200 {
		c = c[:200]
	}
	return c
}

func verdictRule(kind expr.VerdictKind, chain, comment string, counter bool) ruleSpec {
	return ruleSpec{counter: counter, hasVerd: true, verdict: kind, chain: chain, comment: comment}
}

// forwardChain is the base chain: established and related connections pass, new ones are
// dispatched to the chains of their source pod (egress) and destination pod (ingress).
func forwardChain() *chainSpec {
	fwd := &chainSpec{name: chainForward, base: true}
	fwd.rules = append(fwd.rules, ruleSpec{special: "ct", counter: true, hasVerd: true, verdict: expr.VerdictAccept,
		comment: ruleComment("both", "conntrack", 0, "-", "established and related")})
	for _, di := range []dirInfo{egress, ingress} {
		fwd.rules = append(fwd.rules, ruleSpec{special: "dispatch", off: di.podOff, set: di.podMap,
			comment: ruleComment(di.long, "dispatch", 0, "-", "pods of this node")})
	}
	return fwd
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
		c.rules = append(c.rules, ruleSpec{special: "log", logRate: o.LogRate, prefix: prefix,
			comment: ruleComment(di.long, what+"-log", 0, "-", "rate limited log")})
	}
	switch {
	case audit:
		c.rules = append(c.rules, verdictRule(expr.VerdictReturn, "", ruleComment(di.long, what+"-audit", 0, "-", "would "+what), true))
	case reject:
		c.rules = append(c.rules,
			ruleSpec{special: "reject-tcp", comment: ruleComment(di.long, what, 0, "-", "tcp reset")},
			ruleSpec{special: "reject-icmpx", comment: ruleComment(di.long, what, 1, "-", "icmp admin prohibited")})
	default:
		c.rules = append(c.rules, verdictRule(expr.VerdictDrop, "", ruleComment(di.long, what, 0, "-", "drop"), true))
	}
	return c
}

// renderDirection renders one side of one pod into its three chains, in the order they are
// created in (a chain before the chains that jump to it): baseline, NetworkPolicy, tiered. set
// names the set that holds the peers of a rule that has peers.
func renderDirection(di dirInfo, id, pod string, dir *Direction, set func(stage byte, index int) string) []*chainSpec {
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
	matchRules := func(stage byte, index int, peers *AddrSet, ports []Port, comment string, kind expr.VerdictKind, chain string) []ruleSpec {
		r := verdictRule(kind, chain, comment, true)
		if peers != nil {
			r.set = set(stage, index)
			r.off = di.peerOff
		}
		if len(ports) == 0 {
			return []ruleSpec{r}
		}
		rs := make([]ruleSpec, 0, len(ports))
		for _, p := range ports {
			r.hasPort, r.port = true, p
			rs = append(rs, r)
		}
		return rs
	}

	tiered := &chainSpec{name: base}
	for i, r := range dir.Tiered {
		kind, chain := target(r.Action)
		tiered.rules = append(tiered.rules, matchRules('t', i, r.Peers, r.Ports,
			ruleComment(di.long, "tiered", i, pod, r.Name), kind, chain)...)
	}
	tiered.rules = append(tiered.rules, verdictRule(expr.VerdictGoto, npChain, ruleComment(di.long, "tiered", -1, pod, "no tiered rule decided"), false))

	np := &chainSpec{name: npChain}
	if dir.NetworkPolicy.Selected {
		for i, r := range dir.NetworkPolicy.Allow {
			np.rules = append(np.rules, matchRules('n', i, r.Peers, r.Ports,
				ruleComment(di.long, "networkpolicy", i, pod, r.Name), expr.VerdictReturn, "")...)
		}
		np.rules = append(np.rules, verdictRule(expr.VerdictGoto, di.dropName,
			ruleComment(di.long, "networkpolicy", -1, pod, "selected by a NetworkPolicy, no rule allows"), true))
	} else {
		np.rules = append(np.rules, verdictRule(expr.VerdictGoto, blChain,
			ruleComment(di.long, "networkpolicy", -2, pod, "not selected by any NetworkPolicy"), false))
	}

	bl := &chainSpec{name: blChain}
	for i, r := range dir.Baseline {
		kind, chain := target(r.Action)
		bl.rules = append(bl.rules, matchRules('b', i, r.Peers, r.Ports,
			ruleComment(di.long, "baseline", i, pod, r.Name), kind, chain)...)
	}
	bl.rules = append(bl.rules, verdictRule(expr.VerdictReturn, "", ruleComment(di.long, "default", -1, pod, "nothing matched: allow"), true))

	return []*chainSpec{bl, np, tiered}
}
