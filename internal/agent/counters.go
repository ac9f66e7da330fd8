package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/meridian-io/meridian/internal/dataplane"
)

// CountersPath is where the agent serves, on its metrics port, the rules of one pod of its node
// as its table holds them, with their counters: GET CountersPath?pod=<namespace>/<name>. With a
// connection (direction=egress|ingress, peer=<IPv4>, protocol=TCP|UDP|SCTP, port=<number>) it
// also says which of those rules decides that side of it. It is read-only (one netlink dump of
// each of the pod's chains per request) and writes nothing anywhere.
const CountersPath = "/dataplane/counters"

// PodCounters is what CountersPath answers: the pod's rules in evaluation order per direction
// (tiered, NetworkPolicy, baseline, default), each with the packets and bytes it decided.
type PodCounters struct {
	Node  string                  `json:"node"`
	Mode  string                  `json:"mode"`
	Pod   string                  `json:"pod"`
	Rules []dataplane.RuleCounter `json:"rules"`
	// Decision, when the request names a connection, is the rule that decides it on the
	// requested side: the rule of Rules of that direction with the same Stage and Index. Absent
	// when the table's state is not known (it is being rebuilt after a failed change).
	Decision *dataplane.Decision `json:"decision,omitempty"`
}

// connectionQuery is the side of a connection a counters request names.
type connectionQuery struct {
	ingress bool
	peer    netip.Addr
	proto   dataplane.Protocol
	port    uint16
}

// parseConnection reads direction, peer, protocol and port: all of them or none (ok false).
func parseConnection(q url.Values) (c connectionQuery, ok bool, err error) {
	keys := []string{"direction", "peer", "protocol", "port"}
	n := 0
	for _, k := range keys {
		if q.Get(k) != "" {
			n++
		}
	}
	if n == 0 {
		return c, false, nil
	}
	if n < len(keys) {
		return c, false, fmt.Errorf("a connection needs direction, peer, protocol and port together")
	}
	switch q.Get("direction") {
	case "egress":
	case "ingress":
		c.ingress = true
	default:
		return c, false, fmt.Errorf("direction %q is not egress or ingress", q.Get("direction"))
	}
	if c.peer, err = netip.ParseAddr(q.Get("peer")); err != nil || !c.peer.Is4() {
		return c, false, fmt.Errorf("peer %q is not an IPv4 address", q.Get("peer"))
	}
	c.proto = dataplane.Protocol(q.Get("protocol"))
	if c.proto != dataplane.TCP && c.proto != dataplane.UDP && c.proto != dataplane.SCTP {
		return c, false, fmt.Errorf("protocol %q is not TCP, UDP or SCTP", q.Get("protocol"))
	}
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	if err != nil || port == 0 {
		return c, false, fmt.Errorf("port %q is not a number in 1-65535", q.Get("port"))
	}
	c.port = uint16(port)
	return c, true, nil
}

func (e *enforcer) serveCounters(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	pod := q.Get("pod")
	if pod == "" {
		http.Error(w, "name a pod: "+CountersPath+"?pod=<namespace>/<name>", http.StatusBadRequest)
		return
	}
	conn, withConn, err := parseConnection(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	prog := e.programmer()
	if prog == nil {
		http.Error(w, fmt.Sprintf("node %s: the table is not built yet", e.node), http.StatusServiceUnavailable)
		return
	}
	rules, err := prog.PodCounters(pod)
	if err != nil {
		http.Error(w, fmt.Sprintf("node %s: read the table's counters: %v", e.node, err), http.StatusInternalServerError)
		return
	}
	if len(rules) == 0 {
		http.Error(w, fmt.Sprintf("node %s enforces nothing for pod %s: it is not a running pod of this node with an address", e.node, pod), http.StatusNotFound)
		return
	}
	out := PodCounters{Node: e.node, Mode: string(prog.Mode()), Pod: pod, Rules: rules}
	if withConn {
		if d, ok := prog.Decide(pod, conn.ingress, conn.peer, conn.proto, conn.port); ok {
			out.Decision = &d
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
