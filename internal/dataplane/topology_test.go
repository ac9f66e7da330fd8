package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The packet tests build network namespaces named nsPrefix<pid>-<n>-<role>. A test that is
// killed leaves them behind; the next run removes those whose process is gone.
const nsPrefix = "mdpt-"

var (
	liveMu sync.Mutex
	liveNS = map[string]bool{} // namespaces this process made and has not removed yet
)

func TestMain(m *testing.M) {
	removeStaleNamespaces()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		liveMu.Lock()
		for name := range liveNS {
			_ = netns.DeleteNamed(name)
		}
		liveMu.Unlock()
		fmt.Fprintf(os.Stderr, "dataplane tests: %s: removed this run's network namespaces\n", s)
		os.Exit(1)
	}()
	os.Exit(m.Run())
}

func removeStaleNamespaces() {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, nsPrefix), "-", 2)[0])
		if err == nil && pid != os.Getpid() {
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
				continue // another test process is running
			}
		}
		_ = netns.DeleteNamed(name)
	}
}

// requirePackets skips a test that needs root and nftables, saying why.
func requirePackets(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping packet test: it needs root (network namespaces and nftables); run `go test` as root")
	}
	if testing.Short() {
		t.Skip("skipping packet test in -short mode")
	}
}

var nsCounter struct {
	sync.Mutex
	n int
}

// newNamedNS makes a named network namespace, removed at the end of the test.
func newNamedNS(t testing.TB, role string) netns.NsHandle {
	t.Helper()
	nsCounter.Lock()
	nsCounter.n++
	name := fmt.Sprintf("%s%d-%d-%s", nsPrefix, os.Getpid(), nsCounter.n, role)
	nsCounter.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		panic(fmt.Sprintf("cannot return to the original network namespace: %v", serr))
	}
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	liveMu.Lock()
	liveNS[name] = true
	liveMu.Unlock()
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("remove netns %s: %v", name, err)
		}
		liveMu.Lock()
		delete(liveNS, name)
		liveMu.Unlock()
	})
	return h
}

// inNS runs f on a thread in namespace ns. Sockets made by f stay in ns.
func inNS(ns netns.NsHandle, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot return to the original network namespace: %v", err))
		}
	}()
	return f()
}

func sysctl(ns netns.NsHandle, kv map[string]string) error {
	return inNS(ns, func() error {
		for k, v := range kv {
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		return nil
	})
}

type testNode struct {
	name   string
	ns     netns.NsHandle
	h      *netlink.Handle
	subnet netip.Prefix
	pods   []*testPod
}

type testPod struct {
	name string
	ns   netns.NsHandle
	ip   netip.Addr
	node *testNode
}

type topology struct {
	nodes []*testNode
	pods  []*testPod
}

var (
	tcpPorts = []uint16{80, 443, 8080}
	udpPorts = []uint16{53, 8080}
)

// newTopology builds two node namespaces joined by a veth link and podsPerNode pod namespaces
// on each, joined to their node by a veth pair and routed through it. Every pod listens on
// tcpPorts and udpPorts and answers "ok".
func newTopology(t *testing.T, podsPerNode int) *topology {
	t.Helper()
	topo := &topology{}
	for i, role := range []string{"nodeA", "nodeB"} {
		ns := newNamedNS(t, role)
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatalf("netlink handle in %s: %v", role, err)
		}
		t.Cleanup(h.Close)
		if err := sysctl(ns, map[string]string{
			"net.ipv4.ip_forward":             "1",
			"net.ipv4.conf.all.rp_filter":     "0",
			"net.ipv4.conf.default.rp_filter": "0",
			// Reject answers with ICMP; the kernel's per-host ICMP rate limit would turn quick
			// successive rejects into silent drops.
			"net.ipv4.icmp_ratelimit":    "0",
			"net.ipv4.icmp_msgs_per_sec": "100000",
		}); err != nil {
			t.Fatal(err)
		}
		topo.nodes = append(topo.nodes, &testNode{name: role, ns: ns, h: h,
			subnet: netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i+1))})
	}
	a, b := topo.nodes[0], topo.nodes[1]
	must(t, a.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "n0"}, PeerName: "n0", PeerNamespace: netlink.NsFd(int(b.ns))}))
	for i, n := range topo.nodes {
		other := topo.nodes[1-i]
		must(t, n.h.LinkSetUp(mustLink(t, n.h, "lo")))
		l := mustLink(t, n.h, "n0")
		addr, _ := netlink.ParseAddr(fmt.Sprintf("198.19.255.%d/30", i+1))
		must(t, n.h.AddrAdd(l, addr))
		must(t, n.h.LinkSetUp(l))
		must(t, n.h.RouteAdd(&netlink.Route{Dst: ipnet(other.subnet), Gw: net.IPv4(198, 19, 255, byte(2-i)).To4(), LinkIndex: l.Attrs().Index}))
	}
	for _, n := range topo.nodes {
		for j := 1; j <= podsPerNode; j++ {
			p := &testPod{name: fmt.Sprintf("ns%d/%s-pod%d", j%2, n.name, j), node: n,
				ip: netip.AddrFrom4([4]byte{198, 18, n.subnet.Addr().As4()[2], byte(j)})}
			p.ns = newNamedNS(t, fmt.Sprintf("%s-pod%d", n.name, j))
			addPodLink(t, n, p, fmt.Sprintf("v%d", j))
			startServers(t, p)
			n.pods = append(n.pods, p)
			topo.pods = append(topo.pods, p)
		}
	}
	return topo
}

func addPodLink(t *testing.T, n *testNode, p *testPod, hostName string) {
	t.Helper()
	ph, err := netlink.NewHandleAt(p.ns)
	if err != nil {
		t.Fatalf("netlink handle in pod %s: %v", p.name, err)
	}
	defer ph.Close()
	must(t, n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(p.ns))}))
	host := mustLink(t, n.h, hostName)
	eth0 := mustLink(t, ph, "eth0")
	must(t, ph.LinkSetUp(mustLink(t, ph, "lo")))
	must(t, ph.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: p.ip.AsSlice(), Mask: net.CIDRMask(32, 32)}}))
	must(t, ph.LinkSetUp(eth0))
	must(t, n.h.LinkSetUp(host))
	// Calico's layout: the pod reaches everything through a link-local gateway that the node's
	// end of the pair answers for; static neighbours keep ARP out of the measurements.
	gw := net.IPv4(169, 254, 1, 1).To4()
	must(t, ph.NeighAdd(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: host.Attrs().HardwareAddr}))
	must(t, ph.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, LinkIndex: eth0.Attrs().Index, Scope: netlink.SCOPE_LINK}))
	must(t, ph.RouteAdd(&netlink.Route{Gw: gw, LinkIndex: eth0.Attrs().Index}))
	must(t, n.h.NeighAdd(&netlink.Neigh{LinkIndex: host.Attrs().Index, State: netlink.NUD_PERMANENT, IP: p.ip.AsSlice(), HardwareAddr: eth0.Attrs().HardwareAddr}))
	must(t, n.h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: p.ip.AsSlice(), Mask: net.CIDRMask(32, 32)}, LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK}))
}

// startServers listens in the pod's namespace on every test port and answers "ok".
func startServers(t *testing.T, p *testPod) {
	t.Helper()
	var closers []func() error
	err := inNS(p.ns, func() error {
		for _, port := range tcpPorts {
			l, err := net.Listen("tcp4", netip.AddrPortFrom(p.ip, port).String())
			if err != nil {
				return err
			}
			closers = append(closers, l.Close)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					_, _ = c.Write([]byte("ok"))
					_ = c.Close()
				}
			}()
		}
		for _, port := range udpPorts {
			c, err := net.ListenPacket("udp4", netip.AddrPortFrom(p.ip, port).String())
			if err != nil {
				return err
			}
			closers = append(closers, c.Close)
			go func() {
				buf := make([]byte, 64)
				for {
					_, from, err := c.ReadFrom(buf)
					if err != nil {
						if errors.Is(err, net.ErrClosed) {
							return
						}
						continue
					}
					_, _ = c.WriteTo([]byte("ok"), from)
				}
			}()
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range closers {
			_ = c()
		}
	})
	if err != nil {
		t.Fatalf("servers in pod %s: %v", p.name, err)
	}
}

// Outcome is what a connection attempt saw.
type Outcome string

const (
	Connected Outcome = "connected"
	TimedOut  Outcome = "timed out"
	Refused   Outcome = "refused"
)

func expectedOutcome(v Verdict) Outcome {
	switch v {
	case VerdictDrop:
		return TimedOut
	case VerdictReject:
		return Refused
	}
	return Connected
}

// probe opens a new connection from src to dst and says how it went: connected (and got the
// server's answer), timed out, or refused (TCP: a reset, ECONNREFUSED; UDP: an ICMP error on
// the connected socket).
func probe(src *testPod, dst netip.Addr, proto Protocol, port uint16, timeout time.Duration) (Outcome, error) {
	var out Outcome
	err := inNS(src.ns, func() error {
		addr := netip.AddrPortFrom(dst, port).String()
		laddr := &net.TCPAddr{IP: src.ip.AsSlice()}
		buf := make([]byte, 2)
		if proto == TCP {
			d := net.Dialer{Timeout: timeout, LocalAddr: laddr}
			c, err := d.Dial("tcp4", addr)
			switch {
			case errors.Is(err, syscall.ECONNREFUSED):
				out = Refused
				return nil
			case isTimeout(err):
				out = TimedOut
				return nil
			case err != nil:
				return err
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(timeout))
			if _, err := c.Read(buf); err != nil {
				return fmt.Errorf("connected but read failed: %w", err)
			}
			out = Connected
			return nil
		}
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: src.ip.AsSlice()}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("hi")); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		_, err = c.Read(buf)
		switch {
		case err == nil:
			out = Connected
		case isTimeout(err):
			out = TimedOut
		case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EACCES):
			out = Refused
		default:
			return err
		}
		return nil
	})
	return out, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustLink(t testing.TB, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// requireNftables skips the test when the kernel has no nftables: adding and deleting an
// empty table in ns, with the library alone, must work.
func requireNftables(t testing.TB, ns netns.NsHandle) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err == nil {
		probe := &nftables.Table{Name: "meridian-probe", Family: nftables.TableFamilyINet}
		c.AddTable(probe)
		c.DelTable(probe)
		err = c.Flush()
	}
	if err != nil {
		t.Skipf("skipping packet test: nftables is not available in this kernel (%v)", err)
	}
}

// tableExists reports whether the namespace holds the inet table.
func tableExists(t testing.TB, ns netns.NsHandle, name string) bool {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}
