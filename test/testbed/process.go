package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one program the test bed runs beside a member's apiserver and etcd (the
// controller-manager, scheduler and kwok). Its output goes to the bed's Output and its last lines
// are kept, so that an early exit can say why even when logs are discarded.
type process struct {
	name string // the member and program, for messages
	prog string
	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{}
	err  error // set before done closes
}

const stopTimeout = 10 * time.Second

// startProcess starts bin with args. The process is killed if the test binary dies without
// stopping it (Pdeathsig), so a timed-out `go test` leaves nothing behind.
func startProcess(member, bin string, args []string, env []string, out io.Writer) (*process, error) {
	name := member + " " + filepath.Base(bin)
	p := &process{name: name, prog: filepath.Base(bin), tail: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
	w := io.MultiWriter(out, p.tail)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error describing the exit if the process has ended, else nil.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its last output:\n%s", p.name, p.err, p.tail.String())
	default:
		return nil
	}
}

// stop ends the process with SIGTERM, then SIGKILL after stopTimeout. A process that had already
// exited by itself is reported, since nothing in the bed stops them but stop.
func (p *process) stop() error {
	if err := p.exited(); err != nil {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s and was killed", p.name, stopTimeout)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Process is one operating-system process of a running cluster, for measurements.
type Process struct {
	// Name is the program: etcd, kube-apiserver, kube-controller-manager, kube-scheduler or kwok.
	Name string
	PID  int
}

// Processes lists the cluster's running processes: its etcd and kube-apiserver, and for a live
// member its controller-manager, scheduler and kwok.
func (c *Cluster) Processes() ([]Process, error) {
	cp := c.env.ControlPlane
	// envtest does not expose the PIDs of its processes; they are found by the folders that only
	// this cluster's etcd and apiserver are given on their command lines.
	want := map[string]string{}
	if cp.Etcd != nil && cp.Etcd.DataDir != "" {
		want["etcd"] = "--data-dir=" + cp.Etcd.DataDir
	}
	if cp.APIServer != nil && cp.APIServer.CertDir != "" {
		want["kube-apiserver"] = "--cert-dir=" + cp.APIServer.CertDir
	}
	var out []Process
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		for name, arg := range want {
			if filepath.Base(args[0]) == name && slices.Contains(args[1:], arg) {
				out = append(out, Process{Name: name, PID: pid})
			}
		}
	}
	if len(out) != len(want) {
		return nil, fmt.Errorf("found %d of the %d control plane processes of %s", len(out), len(want), c.Name)
	}
	if c.Live != nil {
		for _, p := range c.Live.procs {
			if err := p.exited(); err != nil {
				return nil, err
			}
			out = append(out, Process{Name: p.prog, PID: p.cmd.Process.Pid})
		}
	}
	return out, nil
}

// errNotLive is returned by the faults that need a live member.
var errNotLive = errors.New("not a live member: start it with MemberOptions{Live: true}")
