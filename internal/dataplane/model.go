// Package dataplane enforces Meridian's policy semantics (docs/policy.md) on one node with
// nftables: a Model says, for every pod on the node and for each direction, the ordered stages
// that decide a new connection, and a Programmer renders it into one nftables table of its own,
// every change one atomic transaction. The node agent fills the Model from the member-side
// policies and the member's NetworkPolicies; this package knows nothing of Kubernetes objects.
//
// The Model is resolved: peers are address sets (CIDRs with their excepts already cut out,
// selectors already turned into pod addresses) and named ports are resolved to numbers by the
// caller, per destination pod, before they reach the Model. Only IPv4 is enforced.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// Action is what a tiered or baseline rule does with a connection it matches.
type Action string

const (
	// Allow accepts the connection on this side; nothing later on this side is consulted.
	Allow Action = "Allow"
	// Drop discards the connection's packets silently.
	Drop Action = "Drop"
	// Reject refuses the connection: a TCP reset for TCP, ICMP administratively prohibited
	// otherwise.
	Reject Action = "Reject"
	// Pass skips the remaining tiered rules and hands the decision to the namespace
	// NetworkPolicy stage.
	Pass Action = "Pass"
)

// Protocol is a transport protocol a port applies to.
type Protocol string

const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

func (p Protocol) number() (byte, bool) {
	switch p {
	case TCP:
		return 6, true
	case UDP:
		return 17, true
	case SCTP:
		return 132, true
	}
	return 0, false
}

// Port matches a protocol and, when Port is not zero, a destination port or the range
// Port..EndPort. Named ports are resolved to numbers before they reach the Model.
type Port struct {
	Protocol Protocol
	// Port is the first destination port; zero means every port of Protocol.
	Port uint16
	// EndPort, when not zero, makes the match the range Port..EndPort.
	EndPort uint16
}

func (p Port) last() uint16 {
	if p.EndPort != 0 {
		return p.EndPort
	}
	return p.Port
}

// Matches reports whether a connection with this protocol and destination port matches p.
func (p Port) Matches(proto Protocol, port uint16) bool {
	if proto != p.Protocol {
		return false
	}
	return p.Port == 0 || (port >= p.Port && port <= p.last())
}

// AddrRange is the inclusive range First..Last of IPv4 addresses.
type AddrRange struct {
	First, Last netip.Addr
}

// AddrSet is a set of IPv4 addresses kept as sorted, disjoint, non-adjacent ranges: the form of
// an nftables interval set. Build one with NewAddrSet.
type AddrSet struct {
	ranges []AddrRange
}

// NewAddrSet returns the addresses of cidrs minus the addresses of excepts. Every prefix must
// be IPv4.
func NewAddrSet(cidrs, excepts []netip.Prefix) (AddrSet, error) {
	var in, out []AddrRange
	for _, p := range cidrs {
		r, err := prefixRange(p)
		if err != nil {
			return AddrSet{}, err
		}
		in = append(in, r)
	}
	for _, p := range excepts {
		r, err := prefixRange(p)
		if err != nil {
			return AddrSet{}, err
		}
		out = append(out, r)
	}
	return AddrSet{ranges: subtract(normalize(in), normalize(out))}, nil
}

// MustAddrSet is NewAddrSet for literals in tests and examples; it panics on a bad prefix.
func MustAddrSet(cidrs []string, excepts ...string) AddrSet {
	parse := func(ss []string) []netip.Prefix {
		var ps []netip.Prefix
		for _, s := range ss {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		return ps
	}
	s, err := NewAddrSet(parse(cidrs), parse(excepts))
	if err != nil {
		panic(err)
	}
	return s
}

// AddrSetOf returns the set of the given single addresses (pods that a selector picked).
func AddrSetOf(addrs ...netip.Addr) (AddrSet, error) {
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return NewAddrSet(ps, nil)
}

// Ranges returns the set's ranges, sorted and disjoint.
func (s AddrSet) Ranges() []AddrRange { return append([]AddrRange(nil), s.ranges...) }

// Contains reports whether a is in the set.
func (s AddrSet) Contains(a netip.Addr) bool {
	i := sort.Search(len(s.ranges), func(i int) bool { return s.ranges[i].Last.Compare(a) >= 0 })
	return i < len(s.ranges) && s.ranges[i].First.Compare(a) <= 0
}

// Equal reports whether two sets hold the same addresses.
func (s AddrSet) Equal(o AddrSet) bool {
	if len(s.ranges) != len(o.ranges) {
		return false
	}
	for i := range s.ranges {
		if s.ranges[i] != o.ranges[i] {
			return false
		}
	}
	return true
}

func prefixRange(p netip.Prefix) (AddrRange, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return AddrRange{}, fmt.Errorf("prefix %q: only IPv4 prefixes are enforced", p)
	}
	p = p.Masked()
	first := p.Addr()
	last := first.As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	if p.Bits() == 0 {
		host = ^uint32(0)
	}
	v := be32(last) | host
	return AddrRange{First: first, Last: addr4(v)}, nil
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}
func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
func u32(a netip.Addr) uint32 { return be32(a.As4()) }

// normalize sorts ranges and merges those that overlap or touch.
func normalize(rs []AddrRange) []AddrRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].First.Less(rs[j].First) })
	var out []AddrRange
	for _, r := range rs {
		if n := len(out); n > 0 && (u32(r.First) <= u32(out[n-1].Last) || u32(r.First) == u32(out[n-1].Last)+1) {
			if r.Last.Compare(out[n-1].Last) > 0 {
				out[n-1].Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract removes the (normalized) ranges out from the (normalized) ranges in.
func subtract(in, out []AddrRange) []AddrRange {
	var res []AddrRange
	for _, r := range in {
		first, last := uint64(u32(r.First)), uint64(u32(r.Last))
		for _, o := range out {
			of, ol := uint64(u32(o.First)), uint64(u32(o.Last))
			if ol < first || of > last {
				continue
			}
			if of > first {
				res = append(res, AddrRange{addr4(uint32(first)), addr4(uint32(of - 1))})
			}
			first = ol + 1
			if first > last {
				break
			}
		}
		if first <= last {
			res = append(res, AddrRange{addr4(uint32(first)), addr4(uint32(last))})
		}
	}
	return res
}

// Rule is one tiered or baseline rule: it matches when the peer is in Peers (nil: any peer) and
// the connection matches one of Ports (none: any protocol and port).
type Rule struct {
	// Name identifies the rule in counters and logs, e.g. "securityops/deny-db/ingress/0".
	Name   string
	Action Action
	// Peers is the set of peer addresses: destinations for egress, sources for ingress.
	// Nil means every address.
	Peers *AddrSet
	Ports []Port
}

// Matches reports whether a connection with this peer, protocol and port matches the rule.
func (r Rule) Matches(peer netip.Addr, proto Protocol, port uint16) bool {
	return peersMatch(r.Peers, peer) && portsMatch(r.Ports, proto, port)
}

func peersMatch(s *AddrSet, peer netip.Addr) bool { return s == nil || s.Contains(peer) }

func portsMatch(ports []Port, proto Protocol, port uint16) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Matches(proto, port) {
			return true
		}
	}
	return false
}

// AllowRule is one allow rule of the namespace NetworkPolicies: peers and ports as in Rule.
type AllowRule struct {
	Name  string
	Peers *AddrSet
	Ports []Port
}

// NetworkPolicyStage is the namespace NetworkPolicy stage for one pod and direction.
type NetworkPolicyStage struct {
	// Selected is true when at least one NetworkPolicy selects the pod for this direction: then
	// only what Allow allows passes, and the baseline tier is not consulted.
	Selected bool
	// Allow is the union of the allow rules of every NetworkPolicy that selects the pod.
	Allow []AllowRule
}

// Direction holds the ordered stages that decide a new connection on one side of a pod.
type Direction struct {
	// Tiered holds the non-baseline tiers' rules in final evaluation order (tier priority,
	// policy priority and name, rule order).
	Tiered        []Rule
	NetworkPolicy NetworkPolicyStage
	// Baseline holds the baseline tier's rules in evaluation order. Pass is not allowed here.
	Baseline []Rule
}

// Pod is one pod on the node.
type Pod struct {
	// Name identifies the pod ("namespace/name"); it names the pod's chains and sets, so it
	// must be stable for the life of the pod.
	Name    string
	IP      netip.Addr
	Ingress Direction
	Egress  Direction
}

// Model is everything the node enforces.
type Model struct {
	Pods []Pod
}

// Validate reports, in one error, what is wrong with the model.
func (m *Model) Validate() error {
	return m.validate(func(int) bool { return true })
}

// validate checks the pods' names and addresses, and the rules of the pods for which check
// says so (a Programmer checks again only the pods that changed).
func (m *Model) validate(check func(i int) bool) error {
	var errs []error
	names := make(map[string]bool, len(m.Pods))
	ips := make(map[netip.Addr]string, len(m.Pods))
	for i, p := range m.Pods {
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("pod with IP %s: name is empty", p.IP))
		}
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("pod %q: listed twice", p.Name))
		}
		names[p.Name] = true
		if !p.IP.Is4() {
			errs = append(errs, fmt.Errorf("pod %q: IP %q is not IPv4; only IPv4 is enforced", p.Name, p.IP))
		} else if other, ok := ips[p.IP]; ok {
			errs = append(errs, fmt.Errorf("pod %q: IP %s is also pod %q's", p.Name, p.IP, other))
		}
		ips[p.IP] = p.Name
		if check(i) {
			errs = append(errs, p.validateRules()...)
		}
	}
	return errors.Join(errs...)
}

func (p *Pod) validateRules() []error {
	var errs []error
	for _, d := range []struct {
		name string
		dir  *Direction
	}{{"ingress", &p.Ingress}, {"egress", &p.Egress}} {
		where := func(stage string, i int, name string) string {
			return fmt.Sprintf("pod %q %s %s rule %d (%s)", p.Name, d.name, stage, i, name)
		}
		for i, r := range d.dir.Tiered {
			errs = append(errs, validateRule(func() string { return where("tiered", i, r.Name) }, r, true)...)
		}
		for i, r := range d.dir.NetworkPolicy.Allow {
			errs = append(errs, validatePorts(func() string { return where("NetworkPolicy", i, r.Name) }, r.Ports)...)
		}
		for i, r := range d.dir.Baseline {
			errs = append(errs, validateRule(func() string { return where("baseline", i, r.Name) }, r, false)...)
		}
	}
	return errs
}

// validateRule and validatePorts name the rule (where) only when it is wrong: building the
// message for every rule would cost more than the checks.
func validateRule(where func() string, r Rule, passOK bool) []error {
	var errs []error
	switch r.Action {
	case Allow, Drop, Reject:
	case Pass:
		if !passOK {
			errs = append(errs, fmt.Errorf("%s: Pass is not allowed in the baseline tier (nothing follows it); use Allow, Drop or Reject", where()))
		}
	default:
		errs = append(errs, fmt.Errorf("%s: action %q is not one of Allow, Drop, Reject, Pass", where(), r.Action))
	}
	return append(errs, validatePorts(where, r.Ports)...)
}

func validatePorts(where func() string, ports []Port) []error {
	var errs []error
	for _, p := range ports {
		if _, ok := p.Protocol.number(); !ok {
			errs = append(errs, fmt.Errorf("%s: protocol %q is not one of TCP, UDP, SCTP", where(), p.Protocol))
		}
		if p.EndPort != 0 && (p.Port == 0 || p.EndPort < p.Port) {
			errs = append(errs, fmt.Errorf("%s: port range %d-%d is empty or open; set port <= endPort", where(), p.Port, p.EndPort))
		}
	}
	return errs
}
