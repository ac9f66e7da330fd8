package dataplane

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAddrSetCutsExceptsAndMerges(t *testing.T) {
	cases := []struct {
		name    string
		cidrs   []string
		excepts []string
		want    string
		in, out []string
	}{
		{"single", []string{"10.0.0.0/24"}, nil, "10.0.0.0-10.0.0.255", []string{"10.0.0.0", "10.0.0.255"}, []string{"10.0.1.0", "9.255.255.255"}},
		{"except in the middle", []string{"10.0.0.0/24"}, []string{"10.0.0.128/25", "10.0.0.7/32"},
			"10.0.0.0-10.0.0.6,10.0.0.8-10.0.0.127", []string{"10.0.0.6", "10.0.0.8"}, []string{"10.0.0.7", "10.0.0.200"}},
		{"adjacent merge", []string{"10.0.0.0/25", "10.0.0.128/25", "10.0.0.64/26"}, nil, "10.0.0.0-10.0.0.255", nil, nil},
		{"everything", []string{"0.0.0.0/0"}, []string{"198.18.0.0/15"}, "0.0.0.0-198.17.255.255,198.20.0.0-255.255.255.255",
			[]string{"255.255.255.255", "0.0.0.0"}, []string{"198.19.0.1"}},
		{"except covers all", []string{"10.0.0.0/24"}, []string{"10.0.0.0/16"}, "", nil, []string{"10.0.0.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := MustAddrSet(tc.cidrs, tc.excepts...)
			if got := describePeers(&s); got != "{"+tc.want+"}" {
				t.Errorf("set = %s, want {%s}", got, tc.want)
			}
			for _, a := range tc.in {
				if !s.Contains(netip.MustParseAddr(a)) {
					t.Errorf("%s not in set", a)
				}
			}
			for _, a := range tc.out {
				if s.Contains(netip.MustParseAddr(a)) {
					t.Errorf("%s in set", a)
				}
			}
		})
	}
	if _, err := NewAddrSet([]netip.Prefix{netip.MustParsePrefix("fd00::/64")}, nil); err == nil {
		t.Error("an IPv6 prefix was accepted; only IPv4 is enforced")
	}
}

func TestDecideFollowsThePolicyOrder(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.2")
	onlyA := MustAddrSet([]string{"198.18.1.1/32"})
	dir := Direction{
		Tiered: []Rule{
			{Name: "pass-a", Action: Pass, Peers: &onlyA, Ports: []Port{{Protocol: TCP, Port: 80}}},
			{Name: "reject-80", Action: Reject, Ports: []Port{{Protocol: TCP, Port: 80}}},
			{Name: "allow-udp", Action: Allow, Ports: []Port{{Protocol: UDP}}},
		},
		Baseline: []Rule{{Name: "drop-443", Action: Drop, Ports: []Port{{Protocol: TCP, Port: 400, EndPort: 500}}}},
	}
	cases := []struct {
		peer  netip.Addr
		proto Protocol
		port  uint16
		np    bool
		want  Decision
	}{
		{b, TCP, 80, false, Decision{VerdictReject, "tiered", 1, "reject-80"}},
		{a, TCP, 80, false, Decision{VerdictAllow, "default", -1, ""}},         // Pass, no NP, baseline misses
		{a, TCP, 80, true, Decision{VerdictAllow, "networkpolicy", 0, "np-a"}}, // Pass into a selecting NP
		{b, TCP, 443, true, Decision{VerdictDrop, "networkpolicy", -1, ""}},    // selected, nothing allows
		{b, TCP, 443, false, Decision{VerdictDrop, "baseline", 0, "drop-443"}}, // no tier decides
		{b, UDP, 443, true, Decision{VerdictAllow, "tiered", 2, "allow-udp"}},  // Allow is final: NP not consulted
		{b, SCTP, 443, false, Decision{VerdictAllow, "default", -1, ""}},
	}
	for _, tc := range cases {
		d := dir
		if tc.np {
			d.NetworkPolicy = NetworkPolicyStage{Selected: true, Allow: []AllowRule{{Name: "np-a", Peers: &onlyA}}}
		}
		if got := d.Decide(tc.peer, tc.proto, tc.port); got != tc.want {
			t.Errorf("%s %s/%d np=%v: %+v, want %+v", tc.peer, tc.proto, tc.port, tc.np, got, tc.want)
		}
	}
}

func TestValidateSaysWhatToFix(t *testing.T) {
	m := &Model{Pods: []Pod{
		{Name: "ns/a", IP: netip.MustParseAddr("198.18.1.1"), Ingress: Direction{
			Tiered:   []Rule{{Name: "r", Action: "Deny"}, {Name: "range", Action: Drop, Ports: []Port{{Protocol: TCP, Port: 90, EndPort: 80}}}},
			Baseline: []Rule{{Name: "b", Action: Pass}},
		}},
		{Name: "ns/a", IP: netip.MustParseAddr("198.18.1.1")},
		{Name: "ns/v6", IP: netip.MustParseAddr("fd00::1")},
	}}
	err := m.Validate()
	if err == nil {
		t.Fatal("invalid model accepted")
	}
	for _, want := range []string{`action "Deny" is not one of`, "port range 90-80", "Pass is not allowed in the baseline tier", `pod "ns/a": listed twice`, "not IPv4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
