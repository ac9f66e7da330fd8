package dataplane

import (
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-io/meridian/internal/dataplane/nettest"
)

// probeTimeout bounds every attempt: a dropped connection shows as a timeout after it. An
// attempt that disagrees with the reference by timing out is tried again with retryTimeout,
// so that a loaded machine does not pass for a Drop; one that connects where the reference
// says Drop or Reject fails at once.
const (
	probeTimeout = 300 * time.Millisecond
	retryTimeout = 2 * time.Second
)

// cluster is the test's two nodes with a Programmer on each, and the models in force.
type cluster struct {
	topo   *nettest.Topology
	progs  []*Programmer
	models []*Model
	audit  bool
}

func newCluster(t *testing.T, opts Options) *cluster {
	c := &cluster{topo: newTopology(t, 3)}
	for _, n := range c.topo.Nodes {
		o := opts
		o.NetNSFd = int(n.NS)
		p, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		c.progs = append(c.progs, p)
		c.models = append(c.models, &Model{})
	}
	return c
}

func (c *cluster) pod(i int) *nettest.Pod { return c.topo.Pods[i] }

func (c *cluster) nodeOf(p *nettest.Pod) int {
	for i, n := range c.topo.Nodes {
		if n == p.Node {
			return i
		}
	}
	panic("pod without node")
}

// apply programs one model per node and returns the stats of each.
func (c *cluster) apply(t *testing.T, models ...*Model) []Stats {
	t.Helper()
	var sts []Stats
	for i, m := range models {
		st, err := c.progs[i].Apply(m)
		if err != nil {
			t.Fatalf("apply on %s: %v", c.topo.Nodes[i].Name, err)
		}
		c.models[i] = m
		sts = append(sts, st)
	}
	return sts
}

type probeCase struct {
	src, dst *nettest.Pod
	proto    Protocol
	port     uint16
}

func (p probeCase) String() string {
	return fmt.Sprintf("%s(%s) -> %s(%s) %s/%d", p.src.Name, p.src.IP, p.dst.Name, p.dst.IP, p.proto, p.port)
}

func (c *cluster) allCases() []probeCase {
	var cs []probeCase
	for _, s := range c.topo.Pods {
		for _, d := range c.topo.Pods {
			if s == d {
				continue
			}
			for _, port := range nettest.TCPPorts {
				cs = append(cs, probeCase{s, d, TCP, port})
			}
			for _, port := range nettest.UDPPorts {
				cs = append(cs, probeCase{s, d, UDP, port})
			}
		}
	}
	return cs
}

// decisions returns, for a connection, the node and counter key of every rule that the
// reference says decides it on each side the connection reaches.
func (c *cluster) decisions(pc probeCase) (Verdict, map[int]string) {
	conn := Connection{Src: pc.src.IP, Dst: pc.dst.IP, Protocol: pc.proto, Port: pc.port}
	sn, dn := c.nodeOf(pc.src), c.nodeOf(pc.dst)
	keys := map[int]string{}
	eg := c.models[sn].Egress(conn)
	if _, ok := c.models[sn].Pod(pc.src.IP); ok {
		keys[sn] = fmt.Sprintf("egress %s %d %s", eg.Stage, eg.Index, pc.src.Name)
	}
	v := eg.Verdict
	if v == VerdictAllow || c.audit {
		in := c.models[dn].Ingress(conn)
		if _, ok := c.models[dn].Pod(pc.dst.IP); ok {
			if k, dup := keys[dn]; dup {
				keys[dn] = k + "|" + fmt.Sprintf("ingress %s %d %s", in.Stage, in.Index, pc.dst.Name)
			} else {
				keys[dn] = fmt.Sprintf("ingress %s %d %s", in.Stage, in.Index, pc.dst.Name)
			}
		}
		if v == VerdictAllow {
			v = in.Verdict
		}
	}
	return v, keys
}

// check probes every pair of pods on every port and compares what the packets did with the
// reference, then checks that the rules the reference names counted the connections.
func (c *cluster) check(t *testing.T, label string) {
	t.Helper()
	// A flow the previous policy allowed stays allowed while conntrack remembers it (replies
	// and established connections pass, as in every conntrack-based dataplane); a probe whose
	// ephemeral port happens to repeat such a flow would test conntrack, not the rules.
	for _, n := range c.topo.Nodes {
		if err := n.FlushConntrack(); err != nil {
			t.Fatal(err)
		}
	}
	before := c.counters(t)
	cases := c.allCases()
	type result struct {
		pc   probeCase
		want nettest.Outcome
		got  nettest.Outcome
		err  error
	}
	results := make([]result, len(cases))
	sem := make(chan struct{}, 24)
	var wg sync.WaitGroup
	for i, pc := range cases {
		v, _ := c.decisions(pc)
		want := expectedOutcome(v)
		if c.audit {
			want = nettest.Connected
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := probe(pc.src, pc.dst.IP, pc.proto, pc.port, probeTimeout)
			for try := 0; err == nil && got != want && got == nettest.TimedOut && try < 2; try++ {
				got, err = probe(pc.src, pc.dst.IP, pc.proto, pc.port, retryTimeout)
			}
			results[i] = result{pc, want, got, err}
		}()
	}
	wg.Wait()
	counts := map[nettest.Outcome]int{}
	var bad []string
	for _, r := range results {
		counts[r.got]++
		if r.err != nil {
			bad = append(bad, fmt.Sprintf("%s: probe error: %v", r.pc, r.err))
		} else if r.got != r.want {
			bad = append(bad, fmt.Sprintf("%s: %s, reference says %s", r.pc, r.got, r.want))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d connections disagree with the reference:\n  %s\nmodels:\n%s", label, len(bad), len(cases),
			strings.Join(bad, "\n  "), c.describe())
		return
	}
	t.Logf("%s: %d connections as the reference says (%d connected, %d timed out, %d refused)", label, len(cases),
		counts[nettest.Connected], counts[nettest.TimedOut], counts[nettest.Refused])

	// Every deciding rule's counter moved.
	after := c.counters(t)
	for _, pc := range cases {
		_, keys := c.decisions(pc)
		for node, ks := range keys {
			for _, k := range strings.Split(ks, "|") {
				if after[node][k] <= before[node][k] {
					t.Errorf("%s: %s: counter of %q on %s did not move (%d -> %d)", label, pc, k, c.topo.Nodes[node].Name, before[node][k], after[node][k])
				}
			}
		}
	}
}

// counters reads each node's rule counters as key -> packets.
func (c *cluster) counters(t *testing.T) []map[string]uint64 {
	t.Helper()
	var out []map[string]uint64
	for i, p := range c.progs {
		cs, err := p.Counters()
		if err != nil {
			t.Fatalf("counters of %s: %v", c.topo.Nodes[i].Name, err)
		}
		m := map[string]uint64{}
		for _, rc := range cs {
			m[rc.Key()] += rc.Packets
		}
		out = append(out, m)
	}
	return out
}

func (c *cluster) describe() string {
	var b strings.Builder
	for i, m := range c.models {
		fmt.Fprintf(&b, "node %s:\n", c.topo.Nodes[i].Name)
		for _, p := range m.Pods {
			fmt.Fprintf(&b, "  pod %s %s\n    egress:  %s\n    ingress: %s\n", p.Name, p.IP, describeDir(p.Egress), describeDir(p.Ingress))
		}
	}
	return b.String()
}

func describeDir(d Direction) string {
	rule := func(r Rule) string {
		return fmt.Sprintf("%s %s %s", r.Action, describePeers(r.Peers), describePorts(r.Ports))
	}
	var parts []string
	for _, r := range d.Tiered {
		parts = append(parts, rule(r))
	}
	np := "np: unselected"
	if d.NetworkPolicy.Selected {
		np = "np: selected, allow"
		for _, r := range d.NetworkPolicy.Allow {
			np += fmt.Sprintf(" [%s %s]", describePeers(r.Peers), describePorts(r.Ports))
		}
	}
	parts = append(parts, np)
	for _, r := range d.Baseline {
		parts = append(parts, "baseline "+rule(r))
	}
	return strings.Join(parts, " | ")
}

func describePeers(s *AddrSet) string {
	if s == nil {
		return "any"
	}
	var rs []string
	for _, r := range s.Ranges() {
		rs = append(rs, r.First.String()+"-"+r.Last.String())
	}
	return "{" + strings.Join(rs, ",") + "}"
}

func describePorts(ps []Port) string {
	if len(ps) == 0 {
		return "all"
	}
	var out []string
	for _, p := range ps {
		switch {
		case p.Port == 0:
			out = append(out, string(p.Protocol))
		case p.EndPort != 0:
			out = append(out, fmt.Sprintf("%s/%d-%d", p.Protocol, p.Port, p.EndPort))
		default:
			out = append(out, fmt.Sprintf("%s/%d", p.Protocol, p.Port))
		}
	}
	return strings.Join(out, ",")
}

func peers(t testing.TB, pods ...*nettest.Pod) *AddrSet {
	var addrs []netip.Addr
	for _, p := range pods {
		addrs = append(addrs, p.IP)
	}
	s, err := AddrSetOf(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func cidrs(c []string, except ...string) *AddrSet {
	s := MustAddrSet(c, except...)
	return &s
}

// handWritten is a pair of node models that exercises each action, stage and port form.
// Pods: 0-2 on node A (198.18.1.1-3), 3-5 on node B (198.18.2.1-3).
func handWritten(t *testing.T, c *cluster, b1AllowFrom *nettest.Pod) (*Model, *Model) {
	a1, a2, a3, b1, b2, b3 := c.pod(0), c.pod(1), c.pod(2), c.pod(3), c.pod(4), c.pod(5)
	nodeA := &Model{Pods: []Pod{
		{Name: a2.Name, IP: a2.IP, Egress: Direction{Tiered: []Rule{
			{Name: "secops/no-443-to-b", Action: Reject, Peers: cidrs([]string{"198.18.2.0/24"}), Ports: []Port{{Protocol: TCP, Port: 443}}},
			{Name: "app/to-b1", Action: Allow, Peers: peers(t, b1)},
			{Name: "app/no-dns", Action: Drop, Ports: []Port{{Protocol: UDP, Port: 53}}},
		}}},
		{Name: a3.Name, IP: a3.IP, Ingress: Direction{Baseline: []Rule{
			{Name: "baseline/reject-b-tcp", Action: Reject, Peers: cidrs([]string{"198.18.2.0/24"}, "198.18.2.3/32"), Ports: []Port{{Protocol: TCP}}},
			{Name: "baseline/drop-udp", Action: Drop, Ports: []Port{{Protocol: UDP}}},
		}}},
	}}
	nodeB := &Model{Pods: []Pod{
		{Name: b1.Name, IP: b1.IP, Ingress: Direction{Tiered: []Rule{
			{Name: "app/allow-http", Action: Allow, Peers: peers(t, b1AllowFrom), Ports: []Port{{Protocol: TCP, Port: 80}}},
			{Name: "app/drop-from-a", Action: Drop, Peers: cidrs([]string{"198.18.1.0/24"}), Ports: []Port{{Protocol: TCP, Port: 80, EndPort: 443}}},
			{Name: "app/reject-dns", Action: Reject, Ports: []Port{{Protocol: UDP, Port: 53}}},
		}}},
		{Name: b2.Name, IP: b2.IP, Ingress: Direction{
			Tiered: []Rule{
				{Name: "secops/pass-a1", Action: Pass, Peers: peers(t, a1)},
				{Name: "secops/reject-8080", Action: Reject, Ports: []Port{{Protocol: TCP, Port: 8080}}},
			},
			NetworkPolicy: NetworkPolicyStage{Selected: true, Allow: []AllowRule{
				{Name: "ns/web", Peers: peers(t, a1), Ports: []Port{{Protocol: TCP, Port: 80}}},
				{Name: "ns/dns", Ports: []Port{{Protocol: UDP, Port: 53}}},
			}},
			Baseline: []Rule{{Name: "baseline/never-reached", Action: Reject}},
		}},
		{Name: b3.Name, IP: b3.IP, Egress: Direction{Tiered: []Rule{
			{Name: "app/no-a1", Action: Drop, Peers: peers(t, a1)},
		}}},
	}}
	return nodeA, nodeB
}

// TestPackets proves the table with real TCP and UDP connections between pods in network
// namespaces: every connection does what the reference evaluation of the model says.
func TestPackets(t *testing.T) {
	requirePackets(t)
	c := newCluster(t, Options{})

	t.Run("no policy allows everything", func(t *testing.T) {
		c.apply(t, &Model{}, &Model{})
		c.check(t, "empty")
	})

	t.Run("hand written policies", func(t *testing.T) {
		a, b := handWritten(t, c, c.pod(0))
		c.apply(t, a, b)
		c.check(t, "hand written")
		// The counters say each rule's action, read back from the kernel's verdicts.
		cs, err := c.progs[1].Counters()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Action{}
		for _, rc := range cs {
			got[rc.Key()] = rc.Action
		}
		b1, b2 := c.pod(3).Name, c.pod(4).Name
		for key, want := range map[string]Action{
			"ingress tiered 0 " + b1: Allow, "ingress tiered 1 " + b1: Drop, "ingress tiered 2 " + b1: Reject,
			"ingress tiered 0 " + b2: Pass, "ingress networkpolicy -1 " + b2: Drop, "ingress default -1 " + b1: Allow,
		} {
			if got[key] != want {
				t.Errorf("counter %q says action %q, want %q", key, got[key], want)
			}
		}
	})

	t.Run("a peer change is a set update and takes effect", func(t *testing.T) {
		a, b := handWritten(t, c, c.pod(1))
		sts := c.apply(t, a, b)
		if sts[0].Messages != 0 {
			t.Errorf("node A's model did not change, but its transaction had %d messages", sts[0].Messages)
		}
		if sts[1].ChainsWritten != 0 || sts[1].SetsWritten != 1 {
			t.Errorf("a peer change on node B wrote %d chains and %d sets; want 0 chains and 1 set", sts[1].ChainsWritten, sts[1].SetsWritten)
		}
		c.check(t, "peer changed")
	})

	t.Run("a change of one pod's rules rewrites that pod's chains only", func(t *testing.T) {
		a, b := handWritten(t, c, c.pod(1))
		// b1 now rejects TCP 80-443 from node A instead of dropping it.
		b.Pods[0].Ingress.Tiered[1].Action = Reject
		sts := c.apply(t, a, b)
		if sts[0].Messages != 0 {
			t.Errorf("node A's model did not change, but its transaction had %d messages", sts[0].Messages)
		}
		if sts[1].PodsRendered != 1 || sts[1].ChainsWritten != 1 || sts[1].SetsWritten != 0 {
			t.Errorf("a change of one rule of b1 rendered %d pods, wrote %d chains and %d sets on node B; want 1 pod, 1 chain, 0 sets",
				sts[1].PodsRendered, sts[1].ChainsWritten, sts[1].SetsWritten)
		}
		c.check(t, "one pod's rule changed")
	})

	t.Run("deleted rules stop applying", func(t *testing.T) {
		a, b := handWritten(t, c, c.pod(1))
		b.Pods[0].Ingress.Tiered = b.Pods[0].Ingress.Tiered[2:] // only the UDP 53 reject is left
		b.Pods = append(b.Pods[:2], b.Pods[3:]...)              // b3's policy is gone
		sts := c.apply(t, a, b)
		if sts[1].ChainsDeleted == 0 || sts[1].SetsDeleted == 0 {
			t.Errorf("deleting rules and a pod deleted %d chains and %d sets on node B; want some of each", sts[1].ChainsDeleted, sts[1].SetsDeleted)
		}
		c.check(t, "after deletions")
		c.apply(t, &Model{}, &Model{})
		c.check(t, "all deleted")
	})

	t.Run("seeded random policies", func(t *testing.T) {
		seeds := []int64{1, 2, 3, 4, 5, 6}
		if s := os.Getenv("MERIDIAN_DATAPLANE_SEED"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("MERIDIAN_DATAPLANE_SEED=%q: %v", s, err)
			}
			seeds = []int64{v}
		}
		for _, seed := range seeds {
			r := rand.New(rand.NewSource(seed))
			a, b := randomModel(r, c, 0), randomModel(r, c, 1)
			c.apply(t, a, b)
			c.check(t, fmt.Sprintf("seed %d (rerun: MERIDIAN_DATAPLANE_SEED=%d)", seed, seed))
			if t.Failed() {
				return
			}
		}
	})

	t.Run("a restarted agent never opens a closed path", func(t *testing.T) {
		a, b := handWritten(t, c, c.pod(0))
		c.apply(t, a, b)
		// a2 -> b1 TCP 80 is dropped at b1's ingress; b3 -> a1 (any) at b3's egress.
		a1, a2, a3, b1, b3 := c.pod(0), c.pod(1), c.pod(2), c.pod(3), c.pod(5)
		stop := make(chan struct{})
		var leaks, attempts, datagrams atomic.Int64
		var wg sync.WaitGroup
		closed := []probeCase{{a2, b1, TCP, 80}, {b3, a1, TCP, 443}, {b3, a1, UDP, 53}}
		for _, pc := range closed {
			if v, _ := c.decisions(pc); v != VerdictDrop {
				t.Fatalf("test bug: %s should be dropped, reference says %s", pc, v)
			}
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						got, err := probe(pc.src, pc.dst.IP, pc.proto, pc.port, 100*time.Millisecond)
						attempts.Add(1)
						if err == nil && got == nettest.Connected {
							leaks.Add(1)
							t.Errorf("%s connected during a rebuild", pc)
						}
					}
				}()
			}
		}
		// Dense streams of UDP datagrams, one on each node's closed path: the first packet of a
		// flow that is never answered is evaluated again with every datagram.
		for _, pc := range []probeCase{{b3, a1, UDP, 53}, {a1, a3, UDP, 53}} {
			if v, _ := c.decisions(pc); v != VerdictDrop {
				t.Fatalf("test bug: %s should be dropped, reference says %s", pc, v)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = nettest.InNS(pc.src.NS, func() error {
					conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(pc.dst.IP, pc.port)))
					if err != nil {
						t.Error(err)
						return nil
					}
					defer conn.Close()
					go func() {
						buf := make([]byte, 8)
						for {
							if _, err := conn.Read(buf); err != nil {
								if errors.Is(err, net.ErrClosed) {
									return
								}
								continue
							}
							leaks.Add(1)
							t.Errorf("%s was answered during a rebuild", pc)
							return
						}
					}()
					for {
						select {
						case <-stop:
							return nil
						default:
						}
						if _, err := conn.Write([]byte("x")); err == nil {
							datagrams.Add(1)
						}
						time.Sleep(100 * time.Microsecond)
					}
				})
			}()
		}
		start := time.Now()
		for i := 0; i < 30; i++ {
			for n, node := range c.topo.Nodes {
				p, err := New(Options{NetNSFd: int(node.NS)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Start(c.models[n]); err != nil {
					t.Fatal(err)
				}
				_ = p.Close() // exits without cleaning up: the table stays
			}
		}
		rebuild := time.Since(start)
		// Keep probing a little after the last rebuild too.
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) && attempts.Load() < 20 {
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		t.Logf("60 restarts in %s with %d connection attempts and %d datagrams on closed paths: %d leaks", rebuild, attempts.Load(), datagrams.Load(), leaks.Load())
		for _, n := range c.topo.Nodes {
			if !tableExists(t, n.NS, "meridian") {
				t.Errorf("table inet meridian is gone from %s after the agent exited", n.Name)
			}
		}
		c.check(t, "after restarts")
	})

	t.Run("audit mode counts and drops nothing", func(t *testing.T) {
		a, b := handWritten(t, c, c.pod(0))
		audit := &cluster{topo: c.topo, models: []*Model{a, b}, audit: true}
		for _, n := range c.topo.Nodes {
			p, err := New(Options{NetNSFd: int(n.NS), Mode: Audit, LogDrops: true, LogRate: 5})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			audit.progs = append(audit.progs, p)
		}
		for i, p := range audit.progs {
			if _, err := p.Start(audit.models[i]); err != nil {
				t.Fatal(err)
			}
		}
		before := audit.counters(t)
		audit.check(t, "audit")
		after := audit.counters(t)
		for node := range audit.progs {
			for _, k := range []string{"egress drop-log 0 -", "ingress reject-log 0 -"} {
				if _, ok := after[node][k]; !ok {
					t.Errorf("drop logging is on but %s has no rule %q", c.topo.Nodes[node].Name, k)
				}
			}
		}
		for node, what := range map[int][]string{0: {"egress drop-audit 0 -", "egress reject-audit 0 -"}, 1: {"ingress drop-audit 0 -", "ingress reject-audit 0 -"}} {
			for _, k := range what {
				if after[node][k] <= before[node][k] {
					t.Errorf("audit counter %q on %s did not count the connections the policy would deny", k, c.topo.Nodes[node].Name)
				}
			}
		}
		// Back to enforcing, from a fresh start as an agent would.
		for i, p := range c.progs {
			if _, err := p.Start(audit.models[i]); err != nil {
				t.Fatal(err)
			}
			c.models[i] = audit.models[i]
		}
		c.check(t, "enforcing again")
	})

	t.Run("cleanup removes the table and its enforcement", func(t *testing.T) {
		for i, p := range c.progs {
			if err := p.Cleanup(); err != nil {
				t.Fatal(err)
			}
			if tableExists(t, c.topo.Nodes[i].NS, "meridian") {
				t.Errorf("table inet meridian is still in %s after Cleanup", c.topo.Nodes[i].Name)
			}
			c.models[i] = &Model{}
		}
		c.check(t, "after cleanup")
	})
}

// randomModel draws a model for the pods of one node: every action, stage, peer and port
// form, with peers among the test's pods and the rest of 198.18.0.0/15.
func randomModel(r *rand.Rand, c *cluster, node int) *Model {
	m := &Model{}
	all := c.topo.Pods
	randPeers := func() *AddrSet {
		switch r.Intn(5) {
		case 0:
			return nil
		case 1: // a CIDR with excepts
			cidr := []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.2.0/24", "198.18.2.0/30"}[r.Intn(4)]
			var ex []string
			for range r.Intn(3) {
				ex = append(ex, all[r.Intn(len(all))].IP.String()+"/32")
			}
			s, err := NewAddrSet([]netip.Prefix{netip.MustParsePrefix(cidr)}, parsePrefixes(ex))
			if err != nil {
				panic(err)
			}
			return &s
		default: // selected pods
			var addrs []netip.Addr
			for _, p := range all {
				if r.Intn(3) == 0 {
					addrs = append(addrs, p.IP)
				}
			}
			s, _ := AddrSetOf(addrs...)
			return &s
		}
	}
	randPorts := func() []Port {
		var ps []Port
		for range r.Intn(3) {
			switch r.Intn(6) {
			case 0:
				ps = append(ps, Port{Protocol: TCP})
			case 1:
				ps = append(ps, Port{Protocol: UDP})
			case 2:
				ps = append(ps, Port{Protocol: TCP, Port: 80, EndPort: 443})
			case 3:
				ps = append(ps, Port{Protocol: UDP, Port: 53})
			case 4:
				ps = append(ps, Port{Protocol: TCP, Port: nettest.TCPPorts[r.Intn(len(nettest.TCPPorts))]})
			case 5:
				ps = append(ps, Port{Protocol: Protocol([]string{"TCP", "UDP"}[r.Intn(2)]), Port: 8000, EndPort: 9000})
			}
		}
		return ps
	}
	randActions := []Action{Allow, Drop, Reject, Pass}
	// Rules named like a policy rule applied to several pods: mostly with that rule's peers
	// (one shared set), sometimes with others (a set of their own).
	pool := []*AddrSet{randPeers(), randPeers(), randPeers()}
	ruleName := func(own string) (string, *AddrSet) {
		if r.Intn(3) > 0 {
			return own, randPeers()
		}
		k := r.Intn(len(pool))
		if r.Intn(4) == 0 {
			return fmt.Sprintf("shared-%d", k), randPeers()
		}
		return fmt.Sprintf("shared-%d", k), pool[k]
	}
	randDir := func(name string) Direction {
		var d Direction
		if r.Intn(4) == 0 {
			return d
		}
		for i := range r.Intn(5) {
			n, peers := ruleName(fmt.Sprintf("%s-t%d", name, i))
			d.Tiered = append(d.Tiered, Rule{Name: n, Action: randActions[r.Intn(4)], Peers: peers, Ports: randPorts()})
		}
		if r.Intn(2) == 0 {
			d.NetworkPolicy.Selected = true
			for i := range r.Intn(3) {
				d.NetworkPolicy.Allow = append(d.NetworkPolicy.Allow, AllowRule{Name: fmt.Sprintf("%s-n%d", name, i), Peers: randPeers(), Ports: randPorts()})
			}
		}
		for i := range r.Intn(3) {
			d.Baseline = append(d.Baseline, Rule{Name: fmt.Sprintf("%s-b%d", name, i), Action: randActions[r.Intn(3)], Peers: randPeers(), Ports: randPorts()})
		}
		return d
	}
	for _, p := range c.topo.Nodes[node].Pods {
		if r.Intn(6) == 0 {
			continue // a pod no policy applies to
		}
		m.Pods = append(m.Pods, Pod{Name: p.Name, IP: p.IP, Egress: randDir(p.Name + "-e"), Ingress: randDir(p.Name + "-i")})
	}
	return m
}

func parsePrefixes(ss []string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}
