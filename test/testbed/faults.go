package testbed

import (
	"fmt"
	"net/url"
	"strconv"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Hang freezes the cluster's kube-apiserver with SIGSTOP, as a member that hangs rather than
// fails: the kernel still accepts its TCP connections, but no request is answered, so every
// client waits for its own timeout. Resume ends it; Bed.Stop resumes a hung cluster first.
func (c *Cluster) Hang() error { return c.signalAPIServer(syscall.SIGSTOP, true) }

// Resume lets a hung kube-apiserver run again; the requests it had accepted are then answered.
func (c *Cluster) Resume() error { return c.signalAPIServer(syscall.SIGCONT, false) }

// Hung tells whether the cluster's kube-apiserver is frozen by Hang.
func (c *Cluster) Hung() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hung
}

func (c *Cluster) signalAPIServer(sig syscall.Signal, hung bool) error {
	procs, err := c.Processes()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range procs {
		if p.Name != "kube-apiserver" {
			continue
		}
		if err := syscall.Kill(p.PID, sig); err != nil {
			return fmt.Errorf("signal %v to the kube-apiserver of %s: %w", sig, c.Name, err)
		}
		c.hung = hung
		return nil
	}
	return fmt.Errorf("no kube-apiserver process of %s", c.Name)
}

// Cut blackholes the cluster's kube-apiserver while it keeps running: an nftables rule in the
// root network namespace drops every TCP packet sent to its loopback port, so new connections
// and requests on open ones go unanswered until the client's own timeout, like a member behind a
// network partition. Restore removes the rule; Bed.Stop restores a cut cluster first.
func (c *Cluster) Cut() error {
	port, err := c.apiserverPort()
	if err != nil {
		return err
	}
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("open nftables: %w", err)
	}
	table := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: cutTable(port)})
	chain := conn.AddChain(&nftables.Chain{Name: "output", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("cut %s's kube-apiserver (port %d): %w", c.Name, port, err)
	}
	c.mu.Lock()
	c.cut = true
	c.mu.Unlock()
	return nil
}

// Restore removes the rule Cut added.
func (c *Cluster) Restore() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cut {
		return nil
	}
	port, err := c.apiserverPort()
	if err != nil {
		return err
	}
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("open nftables: %w", err)
	}
	conn.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: cutTable(port)})
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("restore %s's kube-apiserver: %w", c.Name, err)
	}
	c.cut = false
	return nil
}

// IsCut tells whether Cut blackholes the cluster's kube-apiserver.
func (c *Cluster) IsCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// cutTable names the nftables table that cuts the apiserver on port. The table lives in the root
// network namespace, which every test process shares: it is named by the port, which envtest
// reserves across processes, not by the member's name, which another bed may use at the same time.
func cutTable(port uint16) string { return fmt.Sprintf("meridian-testbed-cut-%d", port) }

func (c *Cluster) apiserverPort() (uint16, error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return 0, fmt.Errorf("address of %s's kube-apiserver: %w", c.Name, err)
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port of %s's kube-apiserver in %q: %w", c.Name, c.Config.Host, err)
	}
	return uint16(p), nil
}
