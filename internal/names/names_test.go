package names

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestJoinKeepsUnambiguousNamesPlain(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		parts  []string
		want   string
	}{
		{"mcs-", []string{"shop", "web"}, "mcs-shop-web"},
		{"mcs-", []string{"shop", "web-api"}, "mcs-shop-web-api"},
		{"gns-", []string{"team-a"}, "gns-team-a"},
		{"meridian-", []string{"web-api"}, "meridian-web-api"},
	} {
		if got := Join(DNSSubdomain, tc.prefix, tc.parts...); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.prefix, tc.parts, got, tc.want)
		}
	}
}

func TestJoinNeverCollides(t *testing.T) {
	pairs := [][2][]string{
		{{"a-b", "c"}, {"a", "b-c"}},
		{{"a-b", "c-d"}, {"a", "b-c-d"}},
		{{"a-b-c", "d"}, {"a-b", "c-d"}},
		// A plain name that looks hashed is hashed too, so it cannot meet a hashed one.
		{{"a", strings.TrimPrefix(Join(DNSSubdomain, "mcs-", "a-b", "c"), "mcs-a-")}, {"a-b", "c"}},
		{{strings.Repeat("x", 63), strings.Repeat("y", 63)}, {strings.Repeat("x", 63), strings.Repeat("y", 62) + "z"}},
	}
	for _, p := range pairs {
		a, b := Join(DNSSubdomain, "mcs-", p[0]...), Join(DNSSubdomain, "mcs-", p[1]...)
		if a == b {
			t.Errorf("%q and %q share the name %q", p[0], p[1], a)
		}
	}
	// The colliding pair of issue 16: the unambiguous one keeps its old name.
	if got := Join(DNSSubdomain, "mcs-", "a", "b-c"); got != "mcs-a-b-c" {
		t.Errorf("Join(a, b-c) = %q, want the plain mcs-a-b-c", got)
	}
	if got := Join(DNSSubdomain, "mcs-", "a-b", "c"); !strings.HasPrefix(got, "mcs-a-b-c-") || len(got) != len("mcs-a-b-c-")+hashLen {
		t.Errorf("Join(a-b, c) = %q, want mcs-a-b-c-<hash>", got)
	}
}

func TestJoinFitsAndIsValid(t *testing.T) {
	long := strings.Repeat("a", 253)
	dotted := strings.Repeat("abcdefghi.", 25) + "abc" // 253 characters, a subdomain
	for _, tc := range []struct {
		max    int
		prefix string
		parts  []string
	}{
		{DNSSubdomain, "mcs-", []string{strings.Repeat("n", 63), strings.Repeat("s", 63)}},
		{DNSSubdomain, "meridian-web-", []string{"ipv4", long}},
		{DNSSubdomain, "meridian-web-", []string{"ipv4", dotted}},
		{DNSSubdomain, "gns-", []string{long}},
		{DNSLabel, "meridian-", []string{strings.Repeat("s", 63)}},
		{DNSLabel, "meridian-", []string{strings.Repeat("s-", 31) + "s"}},
	} {
		got := Join(tc.max, tc.prefix, tc.parts...)
		if len(got) > tc.max {
			t.Errorf("Join(%d, %q, ...) = %q: %d characters", tc.max, tc.prefix, got, len(got))
		}
		check := validation.IsDNS1123Subdomain
		if tc.max == DNSLabel {
			check = validation.IsDNS1123Label
		}
		if errs := check(got); len(errs) > 0 {
			t.Errorf("Join(%d, %q, ...) = %q is not a valid name: %v", tc.max, tc.prefix, got, errs)
		}
		if !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("Join(%d, %q, ...) = %q lost its prefix", tc.max, tc.prefix, got)
		}
		if again := Join(tc.max, tc.prefix, tc.parts...); again != got {
			t.Errorf("Join is not deterministic: %q then %q", got, again)
		}
	}
	// Two long names that differ only past the cut still differ.
	a := Join(DNSSubdomain, "meridian-web-", "ipv4", long)
	b := Join(DNSSubdomain, "meridian-web-", "ipv4", long[:252]+"b")
	if a == b {
		t.Errorf("names differing past the cut collide: %q", a)
	}
}
