package agent

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/meridian-io/meridian/internal/dataplane"
)

// CountersPath is where the agent serves, on its metrics port, the rules of one pod of its node
// as its table holds them, with their counters: GET CountersPath?pod=<namespace>/<name>. It is
// read-only (one netlink dump of the table per request) and writes nothing anywhere.
const CountersPath = "/dataplane/counters"

// PodCounters is what CountersPath answers: the pod's rules in evaluation order per direction
// (tiered, NetworkPolicy, baseline, default), each with the packets and bytes it decided.
type PodCounters struct {
	Node  string                  `json:"node"`
	Mode  string                  `json:"mode"`
	Pod   string                  `json:"pod"`
	Rules []dataplane.RuleCounter `json:"rules"`
}

func (e *enforcer) serveCounters(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	pod := r.URL.Query().Get("pod")
	if pod == "" {
		http.Error(w, "name a pod: "+CountersPath+"?pod=<namespace>/<name>", http.StatusBadRequest)
		return
	}
	prog, mode := e.programmer()
	if prog == nil {
		http.Error(w, fmt.Sprintf("node %s: the table is not built yet", e.node), http.StatusServiceUnavailable)
		return
	}
	cs, err := prog.Counters()
	if err != nil {
		http.Error(w, fmt.Sprintf("node %s: read the table's counters: %v", e.node, err), http.StatusInternalServerError)
		return
	}
	out := PodCounters{Node: e.node, Mode: string(mode), Pod: pod}
	for _, c := range cs {
		if c.Pod == pod {
			out.Rules = append(out.Rules, c)
		}
	}
	if len(out.Rules) == 0 {
		http.Error(w, fmt.Sprintf("node %s enforces nothing for pod %s: it is not a running pod of this node with an address", e.node, pod), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
