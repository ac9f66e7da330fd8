package dataplane

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables"

	"github.com/meridian-io/meridian/internal/dataplane/nettest"
)

// busyModel is a node's model as a busy node might hold it: pods pods, perDir tiered rules in
// each direction, rule j the same policy rule (same name, same peers) for every pod, each with
// one port. None of its peers is a pod of the node.
func busyModel(pods, perDir int) *Model {
	m := &Model{}
	for i := range pods {
		p := Pod{Name: fmt.Sprintf("bench/pod-%d", i), IP: netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(1 + i%250)})}
		for _, d := range []*Direction{&p.Ingress, &p.Egress} {
			for j := range perDir {
				peers := benchPeers(j, 0)
				d.Tiered = append(d.Tiered, Rule{Name: fmt.Sprintf("bench/r%d", j), Action: []Action{Allow, Drop, Reject}[j%3],
					Peers: &peers, Ports: []Port{{Protocol: TCP, Port: uint16(1000 + j)}}})
			}
		}
		m.Pods = append(m.Pods, p)
	}
	return m
}

// benchPeers is four addresses in 198.18.100.0/22, shifted by v.
func benchPeers(j, v int) AddrSet {
	var addrs []netip.Addr
	for k := range 4 {
		n := (j*13 + k*31 + v) % 1000
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, byte(100 + n/250), byte(1 + n%250)}))
	}
	s, _ := AddrSetOf(addrs...)
	return s
}

// programmedNS makes a namespace holding the table for m, and the Programmer that holds it.
func programmedNS(b testing.TB, m *Model) (*nettest.NS, *Programmer) {
	b.Helper()
	ns, err := nettest.NewNS("bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ns.Close() })
	if err := nettest.NftablesAvailable(ns.Handle); err != nil {
		b.Skipf("nftables is not available in this kernel (%v)", err)
	}
	p, err := New(Options{NetNSFd: int(ns.Handle)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	if _, err := p.Start(m); err != nil {
		b.Fatal(err)
	}
	return ns, p
}

// BenchmarkChange measures, in one run, what one change costs through the Programmer on a
// table of 2,000 model rules (100 pods × 10 rules × 2 directions) and the same set update sent
// as a bare netlink batch, the kernel's own price. Run as root:
//
//	go test -run '^$' -bench Change -benchtime 2s ./internal/dataplane/
//
// Each reports updates/s; ns/op is the time of one change.
func BenchmarkChange(b *testing.B) {
	requirePackets(b)
	b.Run("peers of a rule of every pod/Programmer", func(b *testing.B) {
		m := busyModel(100, 10)
		_, p := programmedNS(b, m)
		b.ResetTimer()
		for n := range b.N {
			peers := benchPeers(0, n+1)
			for i := range m.Pods {
				m.Pods[i].Ingress.Tiered[0].Peers = &peers
			}
			st, err := p.Apply(m)
			if err != nil {
				b.Fatal(err)
			}
			if st.SetsWritten != 1 || st.ChainsWritten != 0 {
				b.Fatalf("a peer change wrote %d sets and %d chains, want 1 and 0", st.SetsWritten, st.ChainsWritten)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	b.Run("peers of a rule of every pod/bare netlink", func(b *testing.B) {
		m := busyModel(100, 10)
		ns, _ := programmedNS(b, m)
		c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)), nftables.AsLasting())
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseLasting()
		set := &nftables.Set{Table: &nftables.Table{Name: "meridian", Family: nftables.TableFamilyINet},
			Name: "i-r" + podID("bench/r0"), KeyType: nftables.TypeIPAddr, Interval: true}
		b.ResetTimer()
		for n := range b.N {
			peers := benchPeers(0, n+1)
			c.FlushSet(set)
			if err := c.SetAddElements(set, (&setSpec{ranges: peers.ranges}).elements()); err != nil {
				b.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	b.Run("rules of one pod/Programmer", func(b *testing.B) {
		m := busyModel(100, 10)
		_, p := programmedNS(b, m)
		b.ResetTimer()
		for n := range b.N {
			// Pod 7's first ingress rule alternates between two ports.
			m.Pods[7].Ingress.Tiered[0].Ports = []Port{{Protocol: TCP, Port: uint16(2000 + n%2)}}
			st, err := p.Apply(m)
			if err != nil {
				b.Fatal(err)
			}
			if st.ChainsWritten != 1 || st.SetsWritten != 0 {
				b.Fatalf("a change of one pod's rule wrote %d chains and %d sets, want 1 and 0", st.ChainsWritten, st.SetsWritten)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	b.Run("empty batch/bare netlink", func(b *testing.B) {
		ns, _ := programmedNS(b, &Model{})
		c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)), nftables.AsLasting())
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseLasting()
		table := &nftables.Table{Name: "meridian", Family: nftables.TableFamilyINet}
		b.ResetTimer()
		for range b.N {
			c.AddTable(table)
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
}
