// Command dataplane measures the node agent's nftables dataplane (internal/dataplane) on this
// machine, each figure beside a baseline measured in the same run:
//
//   - transactions per second that change one peer set (a set-element update), through the
//     Programmer (model comparison included) and as a bare netlink batch, and that change one
//     rule of one pod through the Programmer, against an empty batch;
//   - time to program a whole table of 10,000 rules in one transaction, against an empty model;
//   - TCP throughput and connection rate between two pods on two nodes (network namespaces),
//     with 1,000 rules in force on the path of every new connection, against no table at all.
//
// It needs root. It prints a table and writes bench/out/dataplane.json. Settings:
// BENCH_RULES (10000), BENCH_PATH_RULES (1000), BENCH_SECONDS per measurement (2),
// BENCH_ROUNDS of each measurement (5).
package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/meridian-io/meridian/internal/dataplane"
	"github.com/meridian-io/meridian/internal/dataplane/nettest"
	"github.com/meridian-io/meridian/test/bench/benchkit"
)

// Result is bench/out/dataplane.json.
type Result struct {
	Machine string `json:"machine"`
	// LoadAvg is /proc/loadavg at the start and at the end: on a shared machine the path
	// figures move with it, which is why each is a median of rounds alternating with its
	// baseline.
	LoadAvg []string `json:"loadavg_start_end"`
	Seconds int      `json:"seconds_per_measurement"`
	Rounds  int      `json:"rounds"`

	SetUpdateTxPerSecProgrammer float64 `json:"set_update_tx_per_sec_programmer"`
	PodChangeTxPerSecProgrammer float64 `json:"one_pod_rule_change_tx_per_sec_programmer"`
	SetUpdateTxPerSecNetlink    float64 `json:"set_update_tx_per_sec_netlink"`
	EmptyTxPerSec               float64 `json:"baseline_empty_tx_per_sec"`
	SetUpdateModelRules         int     `json:"set_update_model_nft_rules"`

	FullTableRules       int     `json:"full_table_model_rules"`
	FullTableNftRules    int     `json:"full_table_nft_rules"`
	FullTableProgramMs   float64 `json:"full_table_program_ms"`
	EmptyTableProgramMs  float64 `json:"baseline_empty_table_program_ms"`
	FullTableTakeOverMs  float64 `json:"full_table_restart_takeover_ms"`
	FullTableMessages    int     `json:"full_table_netlink_messages"`
	PathRules            int     `json:"path_rules"`
	ThroughputGbpsRules  float64 `json:"tcp_throughput_gbps_with_rules"`
	ThroughputGbpsNone   float64 `json:"baseline_tcp_throughput_gbps_no_table"`
	ThroughputRatio      float64 `json:"tcp_throughput_ratio"`
	ConnPerSecRules      float64 `json:"tcp_connections_per_sec_with_rules"`
	ConnPerSecNone       float64 `json:"baseline_tcp_connections_per_sec_no_table"`
	ConnPerSecRatio      float64 `json:"tcp_connections_ratio"`
	NewConnRulesTraverse int     `json:"rules_each_new_connection_traverses"`

	Chain ChainResult `json:"hub_change_to_kernel"`
}

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench-dataplane needs root (network namespaces and nftables)")
		os.Exit(2)
	}
	nettest.RemoveStale()
	nettest.RemoveOnSignal()
	r := &Result{
		Machine:        benchkit.Machine(),
		Seconds:        benchkit.EnvInt("BENCH_SECONDS", 2),
		Rounds:         benchkit.EnvInt("BENCH_ROUNDS", 5),
		FullTableRules: benchkit.EnvInt("BENCH_RULES", 10000),
		PathRules:      benchkit.EnvInt("BENCH_PATH_RULES", 1000),
	}
	r.LoadAvg = append(r.LoadAvg, loadAvg())
	if err := run(r); err != nil {
		fmt.Fprintln(os.Stderr, "bench-dataplane:", err)
		os.Exit(1)
	}
	r.LoadAvg = append(r.LoadAvg, loadAvg())
	printTable(r)
	if err := benchkit.WriteJSON("dataplane.json", r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if left := nettest.Remaining(); len(left) > 0 {
		fmt.Fprintln(os.Stderr, "network namespaces left behind:", left)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(r *Result) error {
	if os.Getenv("BENCH_ONLY") == "chain" {
		return benchChain(r)
	}
	if err := benchTransactions(r); err != nil {
		return fmt.Errorf("transactions: %w", err)
	}
	if err := benchFullTable(r); err != nil {
		return fmt.Errorf("full table: %w", err)
	}
	if err := benchPath(r); err != nil {
		return fmt.Errorf("path: %w", err)
	}
	if err := benchChain(r); err != nil {
		return fmt.Errorf("hub change to kernel: %w", err)
	}
	return nil
}

// model has pods pods with perDir tiered rules in each direction, each rule with a peer set of
// a few addresses and one port; none of them matches the test traffic's 198.18.1/2 pods. Rule
// j is the same policy rule for every pod (as when one policy applies to all of them), so its
// peers are one set.
func model(pods, perDir int) *dataplane.Model {
	m := &dataplane.Model{}
	for i := range pods {
		p := dataplane.Pod{Name: fmt.Sprintf("bench/pod-%d", i), IP: netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(1 + i%250)})}
		for _, d := range []*dataplane.Direction{&p.Ingress, &p.Egress} {
			for j := range perDir {
				peers := peerSet(0, j, 0)
				d.Tiered = append(d.Tiered, dataplane.Rule{Name: fmt.Sprintf("bench/r%d", j), Action: []dataplane.Action{dataplane.Allow, dataplane.Drop, dataplane.Reject}[j%3],
					Peers: &peers, Ports: []dataplane.Port{{Protocol: dataplane.TCP, Port: uint16(1000 + j)}}})
			}
		}
		m.Pods = append(m.Pods, p)
	}
	return m
}

// peerSet is four addresses in 198.18.100.0/22, shifted by v.
func peerSet(i, j, v int) dataplane.AddrSet {
	var addrs []netip.Addr
	for k := range 4 {
		n := (i*7 + j*13 + k*31 + v) % 1000
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, byte(100 + n/250), byte(1 + n%250)}))
	}
	s, _ := dataplane.AddrSetOf(addrs...)
	return s
}

func withNS(role string, f func(ns *nettest.NS) error) error {
	ns, err := nettest.NewNS(role)
	if err != nil {
		return err
	}
	defer ns.Close()
	return f(ns)
}

func benchTransactions(r *Result) error {
	return withNS("tx", func(ns *nettest.NS) error {
		p, err := dataplane.New(dataplane.Options{NetNSFd: int(ns.Handle)})
		if err != nil {
			return err
		}
		defer p.Close()
		m := model(100, 10) // 2,000 model rules, as a busy node might hold
		st, err := p.Start(m)
		if err != nil {
			return err
		}
		r.SetUpdateModelRules = st.Rules
		dur := time.Duration(r.Seconds) * time.Second

		// Through the Programmer: the peers of one policy rule (applied to every pod) change.
		n := 0
		for start := time.Now(); time.Since(start) < dur; n++ {
			peers := peerSet(0, 0, n+1)
			for i := range m.Pods {
				m.Pods[i].Ingress.Tiered[0].Peers = &peers
			}
			st, err := p.Apply(m)
			if err != nil {
				return err
			}
			if st.SetsWritten != 1 || st.ChainsWritten != 0 {
				return fmt.Errorf("a peer change wrote %d sets and %d chains, want 1 and 0", st.SetsWritten, st.ChainsWritten)
			}
		}
		r.SetUpdateTxPerSecProgrammer = float64(n) / dur.Seconds()
		logf("Programmer: %.0f set updates/s", r.SetUpdateTxPerSecProgrammer)

		// Through the Programmer: one rule of one pod changes its port (that pod's chain alone
		// is rendered and rewritten).
		n = 0
		for start := time.Now(); time.Since(start) < dur; n++ {
			m.Pods[7].Ingress.Tiered[0].Ports = []dataplane.Port{{Protocol: dataplane.TCP, Port: uint16(2000 + n%2)}}
			st, err := p.Apply(m)
			if err != nil {
				return err
			}
			if st.PodsRendered != 1 || st.ChainsWritten != 1 || st.SetsWritten != 0 {
				return fmt.Errorf("a change of one pod's rule rendered %d pods, wrote %d chains and %d sets, want 1, 1 and 0", st.PodsRendered, st.ChainsWritten, st.SetsWritten)
			}
		}
		r.PodChangeTxPerSecProgrammer = float64(n) / dur.Seconds()
		logf("Programmer: %.0f one-pod rule changes/s", r.PodChangeTxPerSecProgrammer)

		// Bare netlink: the same set, flushed and refilled in one batch.
		c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)), nftables.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		table := &nftables.Table{Name: "meridian", Family: nftables.TableFamilyINet}
		sets, err := c.GetSets(table)
		if err != nil {
			return err
		}
		var set *nftables.Set
		for _, s := range sets {
			if !s.IsMap {
				set = s
				break
			}
		}
		if set == nil {
			return fmt.Errorf("no interval set in the table")
		}
		n = 0
		for start := time.Now(); time.Since(start) < dur; n++ {
			c.FlushSet(set)
			peers := peerSet(1, 1, n)
			var elems []nftables.SetElement
			for _, rg := range peers.Ranges() {
				next := rg.Last.Next()
				elems = append(elems, nftables.SetElement{Key: rg.First.AsSlice()}, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
			}
			if err := c.SetAddElements(set, elems); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
		}
		r.SetUpdateTxPerSecNetlink = float64(n) / dur.Seconds()
		logf("netlink: %.0f set updates/s", r.SetUpdateTxPerSecNetlink)

		// Baseline: a batch that changes nothing (add an existing table), the round trip alone.
		n = 0
		for start := time.Now(); time.Since(start) < dur; n++ {
			c.AddTable(table)
			if err := c.Flush(); err != nil {
				return err
			}
		}
		r.EmptyTxPerSec = float64(n) / dur.Seconds()
		logf("empty batches: %.0f/s", r.EmptyTxPerSec)
		return nil
	})
}

func benchFullTable(r *Result) error {
	pods := 100
	perDir := r.FullTableRules / pods / 2
	m := model(pods, perDir)
	var full, empty, takeover []float64
	for range r.Rounds {
		err := withNS("full", func(ns *nettest.NS) error {
			p, err := dataplane.New(dataplane.Options{NetNSFd: int(ns.Handle)})
			if err != nil {
				return err
			}
			defer p.Close()
			t := time.Now()
			if _, err := p.Start(&dataplane.Model{}); err != nil {
				return err
			}
			empty = append(empty, ms(time.Since(t)))
			if err := p.Cleanup(); err != nil {
				return err
			}
			t = time.Now()
			st, err := p.Start(m)
			if err != nil {
				return err
			}
			full = append(full, ms(time.Since(t)))
			r.FullTableNftRules, r.FullTableMessages = st.Rules, st.Messages
			// An agent restart: a new Programmer takes the table over in one transaction.
			p2, err := dataplane.New(dataplane.Options{NetNSFd: int(ns.Handle)})
			if err != nil {
				return err
			}
			defer p2.Close()
			t = time.Now()
			if _, err := p2.Start(m); err != nil {
				return err
			}
			takeover = append(takeover, ms(time.Since(t)))
			return nil
		})
		if err != nil {
			return err
		}
	}
	r.FullTableProgramMs, r.EmptyTableProgramMs, r.FullTableTakeOverMs = median(full), median(empty), median(takeover)
	logf("full table of %d model rules (%d nftables rules): %.0f ms; empty: %.1f ms; take-over: %.0f ms",
		r.FullTableRules, r.FullTableNftRules, r.FullTableProgramMs, r.EmptyTableProgramMs, r.FullTableTakeOverMs)
	return nil
}

const sinkPort = 5201

func benchPath(r *Result) error {
	topo, err := nettest.NewTopology(1)
	if err != nil {
		return err
	}
	defer topo.Close()
	src, dst := topo.Nodes[0].Pods[0], topo.Nodes[1].Pods[0]
	if err := startSink(topo, dst); err != nil {
		return err
	}
	// The destination's ingress holds PathRules rules that the test traffic does not match
	// (other peers), so every new connection is compared with each of them before the default
	// allow; the source's egress holds one rule that allows.
	m := &dataplane.Model{Pods: []dataplane.Pod{{Name: "bench/dst", IP: dst.IP}}}
	for j := range r.PathRules {
		peers := peerSet(0, j, 0)
		m.Pods[0].Ingress.Tiered = append(m.Pods[0].Ingress.Tiered, dataplane.Rule{Name: fmt.Sprintf("r%d", j),
			Action: dataplane.Drop, Peers: &peers, Ports: []dataplane.Port{{Protocol: dataplane.TCP}}})
	}
	r.NewConnRulesTraverse = r.PathRules
	srcModel := &dataplane.Model{Pods: []dataplane.Pod{{Name: "bench/src", IP: src.IP,
		Egress: dataplane.Direction{Tiered: []dataplane.Rule{{Name: "allow", Action: dataplane.Allow}}}}}}

	progs := make([]*dataplane.Programmer, 2)
	for i, n := range topo.Nodes {
		if progs[i], err = dataplane.New(dataplane.Options{NetNSFd: int(n.NS)}); err != nil {
			return err
		}
		defer progs[i].Close()
	}
	dur := time.Duration(r.Seconds) * time.Second
	var tpRules, tpNone, cpsRules, cpsNone []float64
	for round := range r.Rounds {
		for _, withRules := range []bool{false, true} {
			if withRules {
				if _, err := progs[0].Start(srcModel); err != nil {
					return err
				}
				if _, err := progs[1].Start(m); err != nil {
					return err
				}
			} else {
				for _, p := range progs {
					if err := p.Cleanup(); err != nil {
						return err
					}
				}
			}
			gbps, err := throughput(src, dst, dur)
			if err != nil {
				return err
			}
			cps, err := connRate(src, dst, dur)
			if err != nil {
				return err
			}
			if withRules {
				tpRules, cpsRules = append(tpRules, gbps), append(cpsRules, cps)
			} else {
				tpNone, cpsNone = append(tpNone, gbps), append(cpsNone, cps)
			}
			logf("round %d, rules=%v: %.2f Gbit/s, %.0f connections/s", round+1, withRules, gbps, cps)
		}
	}
	// The rules must really be on the path: the destination's default-allow counter counted.
	cs, err := progs[1].Counters()
	if err != nil {
		return err
	}
	counted := false
	for _, c := range cs {
		counted = counted || (c.Stage == "default" && c.Direction == "ingress" && c.Packets > 0)
	}
	if !counted {
		return fmt.Errorf("no connection reached the destination's default allow: the rules were not on the path")
	}
	for _, p := range progs {
		if err := p.Cleanup(); err != nil {
			return err
		}
	}
	r.ThroughputGbpsRules, r.ThroughputGbpsNone = median(tpRules), median(tpNone)
	r.ConnPerSecRules, r.ConnPerSecNone = median(cpsRules), median(cpsNone)
	r.ThroughputRatio = r.ThroughputGbpsRules / r.ThroughputGbpsNone
	r.ConnPerSecRatio = r.ConnPerSecRules / r.ConnPerSecNone
	return nil
}

// startSink listens on sinkPort in the pod and discards what it reads.
func startSink(topo *nettest.Topology, p *nettest.Pod) error {
	return nettest.InNS(p.NS, func() error {
		l, err := net.Listen("tcp4", netip.AddrPortFrom(p.IP, sinkPort).String())
		if err != nil {
			return err
		}
		topo.OnClose(l.Close)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
			}
		}()
		return nil
	})
}

// throughput sends for dur on one TCP connection and returns Gbit/s.
func throughput(src, dst *nettest.Pod, dur time.Duration) (float64, error) {
	var gbps float64
	err := nettest.InNS(src.NS, func() error {
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(dst.IP, sinkPort).String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var sent int64
		start := time.Now()
		for time.Since(start) < dur {
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				return err
			}
		}
		gbps = float64(sent) * 8 / time.Since(start).Seconds() / 1e9
		return nil
	})
	return gbps, err
}

// connRate opens connections one after another for dur (connect, read the server's answer,
// close) and returns connections per second.
func connRate(src, dst *nettest.Pod, dur time.Duration) (float64, error) {
	var cps float64
	err := nettest.InNS(src.NS, func() error {
		addr := netip.AddrPortFrom(dst.IP, 80).String()
		buf := make([]byte, 2)
		n := 0
		start := time.Now()
		for ; time.Since(start) < dur; n++ {
			c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
			if err != nil {
				return err
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				c.Close()
				return err
			}
			// Close with a reset so that TIME_WAIT does not exhaust the source ports.
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
		cps = float64(n) / time.Since(start).Seconds()
		return nil
	})
	return cps, err
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func printTable(r *Result) {
	fmt.Printf("\nnftables dataplane, %s, load average %s -> %s; medians of %d rounds, %d s per measurement\n",
		r.Machine, r.LoadAvg[0], r.LoadAvg[1], r.Rounds, r.Seconds)
	fmt.Printf("%-62s %12s %12s\n", "", "measured", "baseline")
	fmt.Printf("%-62s %12.0f %12.0f\n", fmt.Sprintf("set-update transactions/s, Programmer (%d-rule table) | empty", r.SetUpdateModelRules), r.SetUpdateTxPerSecProgrammer, r.EmptyTxPerSec)
	fmt.Printf("%-62s %12.0f %12.0f\n", "one-pod rule change transactions/s, Programmer | empty", r.PodChangeTxPerSecProgrammer, r.EmptyTxPerSec)
	fmt.Printf("%-62s %12.0f %12.0f\n", "set-update transactions/s, bare netlink batch | empty", r.SetUpdateTxPerSecNetlink, r.EmptyTxPerSec)
	fmt.Printf("%-62s %12.0f %12.1f\n", fmt.Sprintf("ms to program %d rules (%d nft rules) | empty model", r.FullTableRules, r.FullTableNftRules), r.FullTableProgramMs, r.EmptyTableProgramMs)
	fmt.Printf("%-62s %12.0f %12s\n", "ms to take the table over after a restart (one transaction)", r.FullTableTakeOverMs, "")
	fmt.Printf("%-62s %12.2f %12.2f\n", fmt.Sprintf("TCP Gbit/s, pod to pod across nodes, %d rules | no table", r.PathRules), r.ThroughputGbpsRules, r.ThroughputGbpsNone)
	fmt.Printf("%-62s %12.0f %12.0f\n", fmt.Sprintf("TCP connections/s, %d rules per new connection | no table", r.NewConnRulesTraverse), r.ConnPerSecRules, r.ConnPerSecNone)
	fmt.Printf("%-62s %12.2f %12.2f\n", "ratio to no table: throughput | connections", r.ThroughputRatio, r.ConnPerSecRatio)
	c := r.Chain
	fmt.Printf("%-62s %12.0f %12.0f\n", fmt.Sprintf("ms hub change -> kernel p50, %d pods, %d nodes | member's own", c.Pods, c.Nodes), c.HubP50Ms, c.BaselineP50Ms)
	fmt.Printf("%-62s %12.0f %12.0f\n", fmt.Sprintf("ms hub change -> kernel p99, %d changes | member's own", c.Changes), c.HubP99Ms, c.BaselineP99Ms)
}
