// Package nettest builds what the dataplane's packet tests and benchmark run on: network
// namespaces as two nodes joined by a veth link, pods as namespaces joined to their node by a
// veth pair and routed through it (addresses from 198.18.0.0/15), servers in the pods, and
// connection probes from one pod to another. It needs root.
//
// Namespaces are named Prefix<pid>-<n>-<role>. Close removes them; RemoveStale removes those
// left by a process that no longer runs (a test killed mid-way); RemoveOnSignal removes this
// process's on SIGINT or SIGTERM.
package nettest

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
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Prefix starts the name of every namespace this package makes.
const Prefix = "mdpt-"

var (
	liveMu  sync.Mutex
	liveNS  = map[string]bool{} // namespaces this process made and has not removed yet
	counter int
)

// RemoveStale removes namespaces with Prefix, and HostAddress's addresses, whose process is gone.
func RemoveStale() {
	removeStaleHostAddrs()
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, Prefix), "-", 2)[0])
		if err == nil && pid != os.Getpid() {
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
				continue // its process still runs
			}
		}
		_ = netns.DeleteNamed(name)
	}
}

// RemoveOnSignal removes this process's namespaces and exits when it is interrupted.
func RemoveOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		liveMu.Lock()
		for name := range liveNS {
			_ = netns.DeleteNamed(name)
		}
		liveMu.Unlock()
		fmt.Fprintf(os.Stderr, "%s: removed this run's network namespaces\n", s)
		os.Exit(1)
	}()
}

// Remaining lists this process's namespaces that are not removed yet.
func Remaining() []string {
	entries, _ := os.ReadDir("/var/run/netns")
	var out []string
	mine := fmt.Sprintf("%s%d-", Prefix, os.Getpid())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), mine) {
			out = append(out, e.Name())
		}
	}
	return out
}

// NS is a named network namespace.
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// NewNS makes a named network namespace.
func NewNS(role string) (*NS, error) {
	liveMu.Lock()
	counter++
	name := fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), counter, role)
	liveNS[name] = true
	liveMu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		panic(fmt.Sprintf("cannot return to the original network namespace: %v", serr))
	}
	if err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	return &NS{Name: name, Handle: h}, nil
}

// Close removes the namespace; it disappears with its links and tables once nothing holds it.
func (n *NS) Close() error {
	n.Handle.Close()
	err := netns.DeleteNamed(n.Name)
	liveMu.Lock()
	delete(liveNS, n.Name)
	liveMu.Unlock()
	if err != nil {
		return fmt.Errorf("remove netns %s: %w", n.Name, err)
	}
	return nil
}

// InNS runs f on a thread in namespace ns. Sockets made by f stay in ns.
func InNS(ns netns.NsHandle, f func() error) error {
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

// Sysctl writes net sysctls ("net.ipv4.ip_forward") in namespace ns.
func Sysctl(ns netns.NsHandle, kv map[string]string) error {
	return InNS(ns, func() error {
		for k, v := range kv {
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		return nil
	})
}

// Node is a node namespace.
type Node struct {
	Name   string
	NS     netns.NsHandle
	h      *netlink.Handle
	Subnet netip.Prefix
	Pods   []*Pod
}

// FlushConntrack forgets every tracked connection of the node, so that the next packets of
// earlier flows are decided by the rules again rather than passing as established.
func (n *Node) FlushConntrack() error {
	if err := n.h.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		return fmt.Errorf("flush conntrack in %s: %w", n.Name, err)
	}
	return nil
}

// Pod is a pod namespace on a node.
type Pod struct {
	Name string
	NS   netns.NsHandle
	IP   netip.Addr
	Node *Node
}

// Topology is two nodes and their pods.
type Topology struct {
	Nodes   []*Node
	Pods    []*Pod
	closers []func() error
}

// Ports the pods' servers listen on.
var (
	TCPPorts = []uint16{80, 443, 8080}
	UDPPorts = []uint16{53, 8080}
)

// NewTopology builds two node namespaces (nodeA with pods 198.18.1.1.., nodeB with
// 198.18.2.1..) joined by a veth link (198.19.255.0/30) and podsPerNode pod namespaces on
// each. Every pod listens on TCPPorts and UDPPorts and answers "ok". On error, what was made
// is removed.
func NewTopology(podsPerNode int) (topo *Topology, err error) {
	topo = &Topology{}
	defer func() {
		if err != nil {
			_ = topo.Close()
			topo = nil
		}
	}()
	for i, role := range []string{"nodeA", "nodeB"} {
		ns, err := topo.newNS(role)
		if err != nil {
			return nil, err
		}
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			return nil, fmt.Errorf("netlink handle in %s: %w", role, err)
		}
		topo.closers = append(topo.closers, func() error { h.Close(); return nil })
		if err := Sysctl(ns, map[string]string{
			"net.ipv4.ip_forward":             "1",
			"net.ipv4.conf.all.rp_filter":     "0",
			"net.ipv4.conf.default.rp_filter": "0",
			// Reject answers with ICMP; the kernel's per-host ICMP rate limit would turn quick
			// successive rejects into silent drops.
			"net.ipv4.icmp_ratelimit":    "0",
			"net.ipv4.icmp_msgs_per_sec": "100000",
		}); err != nil {
			return nil, err
		}
		topo.Nodes = append(topo.Nodes, &Node{Name: role, NS: ns, h: h,
			Subnet: netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i+1))})
	}
	a, b := topo.Nodes[0], topo.Nodes[1]
	if err := a.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "n0"}, PeerName: "n0", PeerNamespace: netlink.NsFd(int(b.NS))}); err != nil {
		return nil, fmt.Errorf("node link: %w", err)
	}
	for i, n := range topo.Nodes {
		other := topo.Nodes[1-i]
		lo, err := n.h.LinkByName("lo")
		if err != nil {
			return nil, err
		}
		l, err := n.h.LinkByName("n0")
		if err != nil {
			return nil, err
		}
		addr, _ := netlink.ParseAddr(fmt.Sprintf("198.19.255.%d/30", i+1))
		if err := errors.Join(n.h.LinkSetUp(lo), n.h.AddrAdd(l, addr), n.h.LinkSetUp(l)); err != nil {
			return nil, fmt.Errorf("node link in %s: %w", n.Name, err)
		}
		if err := n.h.RouteAdd(&netlink.Route{Dst: ipnet(other.Subnet), Gw: net.IPv4(198, 19, 255, byte(2-i)).To4(), LinkIndex: l.Attrs().Index}); err != nil {
			return nil, fmt.Errorf("route to %s in %s: %w", other.Subnet, n.Name, err)
		}
	}
	for _, n := range topo.Nodes {
		for j := 1; j <= podsPerNode; j++ {
			p := &Pod{Name: fmt.Sprintf("ns%d/%s-pod%d", j%2, n.Name, j), Node: n,
				IP: netip.AddrFrom4([4]byte{198, 18, n.Subnet.Addr().As4()[2], byte(j)})}
			if p.NS, err = topo.newNS(fmt.Sprintf("%s-pod%d", n.Name, j)); err != nil {
				return nil, err
			}
			if err := addPodLink(n, p, fmt.Sprintf("v%d", j)); err != nil {
				return nil, fmt.Errorf("pod %s: %w", p.Name, err)
			}
			if err := topo.startServers(p); err != nil {
				return nil, fmt.Errorf("servers in pod %s: %w", p.Name, err)
			}
			n.Pods = append(n.Pods, p)
			topo.Pods = append(topo.Pods, p)
		}
	}
	return topo, nil
}

func (topo *Topology) newNS(role string) (netns.NsHandle, error) {
	ns, err := NewNS(role)
	if err != nil {
		return 0, err
	}
	topo.closers = append(topo.closers, ns.Close)
	return ns.Handle, nil
}

// OnClose adds f to what Close does, before what is already there (sockets before namespaces).
func (topo *Topology) OnClose(f func() error) { topo.closers = append(topo.closers, f) }

// Close stops the servers and removes every namespace (and with them every link and table).
func (topo *Topology) Close() error {
	var errs []error
	for i := len(topo.closers) - 1; i >= 0; i-- {
		errs = append(errs, topo.closers[i]())
	}
	topo.closers = nil
	return errors.Join(errs...)
}

func addPodLink(n *Node, p *Pod, hostName string) error {
	ph, err := netlink.NewHandleAt(p.NS)
	if err != nil {
		return err
	}
	defer ph.Close()
	if err := n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostName}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(p.NS))}); err != nil {
		return err
	}
	host, err := n.h.LinkByName(hostName)
	if err != nil {
		return err
	}
	eth0, err := ph.LinkByName("eth0")
	if err != nil {
		return err
	}
	lo, err := ph.LinkByName("lo")
	if err != nil {
		return err
	}
	// Calico's layout: the pod reaches everything through a link-local gateway that the node's
	// end of the pair stands for; static neighbours keep ARP out of the measurements.
	gw := net.IPv4(169, 254, 1, 1).To4()
	return errors.Join(
		ph.LinkSetUp(lo),
		ph.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}}),
		ph.LinkSetUp(eth0),
		n.h.LinkSetUp(host),
		ph.NeighAdd(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, State: netlink.NUD_PERMANENT, IP: gw, HardwareAddr: host.Attrs().HardwareAddr}),
		ph.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}, LinkIndex: eth0.Attrs().Index, Scope: netlink.SCOPE_LINK}),
		ph.RouteAdd(&netlink.Route{Gw: gw, LinkIndex: eth0.Attrs().Index}),
		n.h.NeighAdd(&netlink.Neigh{LinkIndex: host.Attrs().Index, State: netlink.NUD_PERMANENT, IP: p.IP.AsSlice(), HardwareAddr: eth0.Attrs().HardwareAddr}),
		n.h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}, LinkIndex: host.Attrs().Index, Scope: netlink.SCOPE_LINK}),
	)
}

// startServers listens in the pod's namespace on every test port and answers "ok".
func (topo *Topology) startServers(p *Pod) error {
	return InNS(p.NS, func() error {
		for _, port := range TCPPorts {
			l, err := net.Listen("tcp4", netip.AddrPortFrom(p.IP, port).String())
			if err != nil {
				return err
			}
			topo.closers = append(topo.closers, l.Close)
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
		for _, port := range UDPPorts {
			c, err := net.ListenPacket("udp4", netip.AddrPortFrom(p.IP, port).String())
			if err != nil {
				return err
			}
			topo.closers = append(topo.closers, c.Close)
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
}

// Outcome is what a connection attempt saw.
type Outcome string

const (
	Connected Outcome = "connected"
	TimedOut  Outcome = "timed out"
	Refused   Outcome = "refused"
)

// Probe opens a new connection from src to dst and says how it went: connected (and got the
// server's answer), timed out, or refused (TCP: a reset, ECONNREFUSED; UDP: an ICMP error on
// the connected socket). proto is "TCP" or "UDP".
func Probe(src *Pod, dst netip.Addr, proto string, port uint16, timeout time.Duration) (Outcome, error) {
	var out Outcome
	err := InNS(src.NS, func() error {
		addr := netip.AddrPortFrom(dst, port).String()
		buf := make([]byte, 2)
		if proto == "TCP" {
			d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: src.IP.AsSlice()}}
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
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: src.IP.AsSlice()}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
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

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// NftablesAvailable reports why nftables cannot be used in ns, or nil: adding and deleting an
// empty table, with the library alone, must work.
func NftablesAvailable(ns netns.NsHandle) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return err
	}
	probe := &nftables.Table{Name: "meridian-probe", Family: nftables.TableFamilyINet}
	c.AddTable(probe)
	c.DelTable(probe)
	return c.Flush()
}

// TableExists reports whether ns holds the inet table name.
func TableExists(ns netns.NsHandle, name string) (bool, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// hostAddrLabel starts the label of the addresses HostAddress puts on the loopback device,
// followed by the process id.
const hostAddrLabel = "lo:mdpa"

// HostAddress gives this host (the root network namespace) addr, on its loopback device under a
// label of this process, for a server that a local kube-apiserver must reach at an address it
// accepts (its proxy refuses 127.0.0.0/8). Traffic to it never leaves the host. The returned
// function removes the address; RemoveStale removes one a killed process left.
func HostAddress(addr netip.Addr) (func() error, error) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("finding the loopback device: %w", err)
	}
	a := &netlink.Addr{IPNet: ipnet(netip.PrefixFrom(addr, addr.BitLen())), Label: fmt.Sprintf("%s%d", hostAddrLabel, os.Getpid())}
	if err := netlink.AddrAdd(lo, a); err != nil {
		return nil, fmt.Errorf("adding %s to the loopback device: %w", addr, err)
	}
	return func() error { return netlink.AddrDel(lo, a) }, nil
}

// removeStaleHostAddrs removes HostAddress's addresses whose process is gone.
func removeStaleHostAddrs() {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return
	}
	addrs, err := netlink.AddrList(lo, netlink.FAMILY_V4)
	if err != nil {
		return
	}
	for _, a := range addrs {
		pid, err := strconv.Atoi(strings.TrimPrefix(a.Label, hostAddrLabel))
		if !strings.HasPrefix(a.Label, hostAddrLabel) || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
			continue // its process still runs
		}
		_ = netlink.AddrDel(lo, &a)
	}
}
