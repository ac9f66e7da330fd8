package dataplane

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/meridian-io/meridian/internal/dataplane/nettest"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		nettest.RemoveStale()
		nettest.RemoveOnSignal()
	}
	os.Exit(m.Run())
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

// newTopology builds the nodes and pods and removes them, with every link and table in them,
// at the end of the test, and then checks that none of this process's namespaces is left.
func newTopology(t *testing.T, podsPerNode int) *nettest.Topology {
	t.Helper()
	t.Cleanup(func() {
		if left := nettest.Remaining(); len(left) > 0 {
			t.Errorf("network namespaces left behind: %v", left)
		}
	})
	topo, err := nettest.NewTopology(podsPerNode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("remove topology: %v", err)
		}
	})
	if err := nettest.NftablesAvailable(topo.Nodes[0].NS); err != nil {
		t.Skipf("skipping packet test: nftables is not available in this kernel (%v)", err)
	}
	return topo
}

func expectedOutcome(v Verdict) nettest.Outcome {
	switch v {
	case VerdictDrop:
		return nettest.TimedOut
	case VerdictReject:
		return nettest.Refused
	}
	return nettest.Connected
}

func probe(src *nettest.Pod, dst netip.Addr, proto Protocol, port uint16, timeout time.Duration) (nettest.Outcome, error) {
	return nettest.Probe(src, dst, string(proto), port, timeout)
}

func tableExists(t testing.TB, ns netns.NsHandle, name string) bool {
	t.Helper()
	ok, err := nettest.TableExists(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
