package testbed

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestPlanNetworks(t *testing.T) {
	members := []string{"a", "b", "c"}
	tests := []struct {
		name    string
		opts    map[string]MemberOptions
		want    map[string]string // member: "pods services nodes nodeMask nodeCount"
		wantErr string
	}{{
		name: "bare by default",
		want: map[string]string{},
	}, {
		name: "live members take consecutive slots, skipping bare ones",
		opts: map[string]MemberOptions{"a": {Live: true}, "c": {Live: true, Nodes: 17}},
		want: map[string]string{
			"a": "198.18.0.0/20 198.19.0.0/24 198.19.128.0/21 24 3",
			"c": "198.18.16.0/20 198.19.1.0/24 198.19.136.0/21 25 17",
		},
	}, {
		name: "a large pod CIDR holds 1,000 Nodes of 64 addresses",
		opts: map[string]MemberOptions{"b": {Live: true, Nodes: 1000, PodCIDR: "198.18.0.0/16"}},
		want: map[string]string{"b": "198.18.0.0/16 198.19.0.0/24 198.19.128.0/21 26 1000"},
	}, {
		name:    "the default pod CIDR is too small for 1,000 Nodes",
		opts:    map[string]MemberOptions{"a": {Live: true, Nodes: 1000}},
		wantErr: "too small for 1000 Nodes",
	}, {
		name:    "overlapping pod CIDRs",
		opts:    map[string]MemberOptions{"a": {Live: true, PodCIDR: "198.18.0.0/16"}, "b": {Live: true}},
		wantErr: "overlap",
	}, {
		name:    "an unknown member",
		opts:    map[string]MemberOptions{"d": {Live: true}},
		wantErr: `"d", which is not in Members`,
	}, {
		name:    "nodes on a bare member",
		opts:    map[string]MemberOptions{"a": {Nodes: 3}},
		wantErr: "need Live",
	}, {
		name:    "a pod CIDR that is not a network address",
		opts:    map[string]MemberOptions{"a": {Live: true, PodCIDR: "10.0.0.1/16"}},
		wantErr: "not an IPv4 network address",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planNetworks(Options{Members: members, MemberOptions: tt.opts}, "/bed")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d live members, want %d", len(got), len(tt.want))
			}
			for name, want := range tt.want {
				l := got[name]
				if l == nil {
					t.Fatalf("member %s is not live", name)
				}
				s := strings.Join([]string{l.PodCIDR.String(), l.ServiceCIDR.String(), l.NodeCIDR.String(), strconv.Itoa(l.nodeMask), strconv.Itoa(len(l.Nodes))}, " ")
				if s != want {
					t.Errorf("member %s: %s, want %s", name, s, want)
				}
				if last := l.nodeIP(len(l.Nodes) - 1); !l.NodeCIDR.Contains(last) {
					t.Errorf("member %s: the last Node's IP %s is outside %s", name, last, l.NodeCIDR)
				}
			}
		})
	}
}

func TestNodeIP(t *testing.T) {
	l := &Live{NodeCIDR: netip.MustParsePrefix("198.19.128.0/21")}
	for i, want := range map[int]string{0: "198.19.128.1", 254: "198.19.128.255", 255: "198.19.129.0", 1999: "198.19.135.208"} {
		if got := l.nodeIP(i).String(); got != want {
			t.Errorf("nodeIP(%d) = %s, want %s", i, got, want)
		}
	}
}
