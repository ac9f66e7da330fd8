package agent

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/meridian-io/meridian/internal/dataplane"
)

func TestCountersQueryNamesAConnectionWhole(t *testing.T) {
	for _, tc := range []struct {
		query   string
		want    connectionQuery
		withOne bool
		err     string
	}{
		{query: "pod=shop/a"},
		{query: "pod=shop/a&direction=ingress&peer=198.18.0.5&protocol=TCP&port=443", withOne: true,
			want: connectionQuery{ingress: true, peer: netip.MustParseAddr("198.18.0.5"), proto: dataplane.TCP, port: 443}},
		{query: "pod=shop/a&direction=egress&peer=10.0.0.1&protocol=UDP&port=53", withOne: true,
			want: connectionQuery{peer: netip.MustParseAddr("10.0.0.1"), proto: dataplane.UDP, port: 53}},
		{query: "pod=shop/a&peer=10.0.0.1", err: "together"},
		{query: "pod=shop/a&direction=up&peer=10.0.0.1&protocol=TCP&port=1", err: `direction "up"`},
		{query: "pod=shop/a&direction=egress&peer=fd00::1&protocol=TCP&port=1", err: "not an IPv4 address"},
		{query: "pod=shop/a&direction=egress&peer=10.0.0.1&protocol=ICMP&port=1", err: `protocol "ICMP"`},
		{query: "pod=shop/a&direction=egress&peer=10.0.0.1&protocol=TCP&port=0", err: "1-65535"},
		{query: "pod=shop/a&direction=egress&peer=10.0.0.1&protocol=TCP&port=70000", err: "1-65535"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := parseConnection(q)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.query, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.query, err)
		case ok != tc.withOne || got != tc.want:
			t.Errorf("%s: %+v, %v; want %+v, %v", tc.query, got, ok, tc.want, tc.withOne)
		}
	}
}
