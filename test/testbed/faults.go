package testbed

import (
	"fmt"
	"syscall"
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
