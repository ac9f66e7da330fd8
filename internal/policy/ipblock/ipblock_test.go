package ipblock

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPrefixes(t *testing.T) {
	b, err := Parse("10.0.0.0/8", []string{"10.1.0.0/16", "10.1.2.0/24", "10.255.255.255/32"})
	if err != nil {
		t.Fatal(err)
	}
	ps := b.Prefixes()
	for _, a := range []string{"10.0.0.1", "10.1.0.1", "10.1.2.3", "10.255.255.255", "10.255.255.254", "10.128.0.0", "11.0.0.0"} {
		addr := netip.MustParseAddr(a)
		in := false
		for _, p := range ps {
			if p.Contains(addr) {
				in = true
			}
		}
		if in != b.Contains(addr) {
			t.Errorf("%s: prefixes say %v, block says %v (%v)", a, in, b.Contains(addr), ps)
		}
	}
	if _, err := Parse("10.0.0.0/8", []string{"11.0.0.0/16"}); err == nil || !strings.Contains(err.Error(), "not inside") {
		t.Errorf("except outside: %v", err)
	}
}
