// Package ipblock is IP block arithmetic: containment with excepts, and excepts subtracted into plain prefixes.
package ipblock

import (
	"fmt"
	"net/netip"
	"sort"
)

// Block is an IP block: a prefix minus excepted prefixes inside it.
type Block struct {
	Prefix netip.Prefix
	Except []netip.Prefix
}

// ParseBlock parses a CIDR and its excepts; every except must lie inside the CIDR.
func Parse(cidr string, except []string) (*Block, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("cidr %q: %w", cidr, err)
	}
	if p.Masked() != p {
		return nil, fmt.Errorf("cidr %q has host bits set; write %s", cidr, p.Masked())
	}
	b := &Block{Prefix: p}
	for _, e := range except {
		ep, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("except %q: %w", e, err)
		}
		if ep.Masked() != ep {
			return nil, fmt.Errorf("except %q has host bits set; write %s", e, ep.Masked())
		}
		if !Within(ep, p) || ep.Bits() == p.Bits() {
			return nil, fmt.Errorf("except %q is not inside cidr %s (it must be a strictly smaller range)", e, cidr)
		}
		b.Except = append(b.Except, ep)
	}
	return b, nil
}

// Within says whether inner lies entirely inside outer.
func Within(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// Contains says whether the block matches an address.
func (b *Block) Contains(a netip.Addr) bool {
	if !b.Prefix.Contains(a) {
		return false
	}
	for _, e := range b.Except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

// Prefixes returns disjoint prefixes whose union is exactly the block (the CIDR minus its
// excepts), sorted; forms without excepts carry these instead.
func (b *Block) Prefixes() []netip.Prefix {
	out := []netip.Prefix{b.Prefix}
	for _, e := range b.Except {
		var next []netip.Prefix
		for _, p := range out {
			next = append(next, subtract(p, e)...)
		}
		out = next
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}

// subtract returns p minus e as disjoint prefixes.
func subtract(p, e netip.Prefix) []netip.Prefix {
	if Within(p, e) {
		return nil
	}
	if !Within(e, p) {
		return []netip.Prefix{p}
	}
	// Split p into halves until e is one of them; keep the halves that do not hold e.
	var out []netip.Prefix
	cur := p
	for cur.Bits() < e.Bits() {
		lo, hi := halves(cur)
		if lo.Contains(e.Addr()) {
			out = append(out, hi)
			cur = lo
		} else {
			out = append(out, lo)
			cur = hi
		}
	}
	return out
}

func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	lo := netip.PrefixFrom(p.Addr(), bits)
	b := p.Addr().AsSlice()
	idx := (bits - 1) / 8
	b[idx] |= 1 << (7 - uint((bits-1)%8))
	a, _ := netip.AddrFromSlice(b)
	return lo, netip.PrefixFrom(a, bits)
}
