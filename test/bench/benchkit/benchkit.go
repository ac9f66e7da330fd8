// Package benchkit holds what Meridian's benchmarks share: settings from the environment, the
// manager run as its own process with its memory and CPU read from /proc, waiting, and the JSON
// result under bench/out.
package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-io/meridian/test/testbed"
)

// EnvInt reads a positive integer setting from the environment, or returns def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// OutDir is where benchmarks write their results and logs: bench/out in the repository.
func OutDir() (string, error) {
	dir := filepath.Join(testbed.RepoRoot(), "bench", "out")
	return dir, os.MkdirAll(dir, 0o755)
}

// Manager is bin/manager running against a test bed's hub, webhooks and metrics off.
type Manager struct {
	cmd *exec.Cmd
	log *os.File
}

// StartManager runs bin/manager (or $BENCH_MANAGER, another build to compare in one window)
// against the bed's hub with extra flags, logging to
// bench/out/<logName>.
func StartManager(bed *testbed.Bed, logName string, extra ...string) (*Manager, error) {
	dir := filepath.Join(bed.Dir(), "manager")
	if err := bed.WriteKubeconfigs(dir); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	out, err := OutDir()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(out, logName))
	if err != nil {
		return nil, err
	}
	args := append([]string{"--enable-webhooks=false", "--metrics-bind-address=0",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", port)}, extra...)
	bin := filepath.Join(testbed.BinDir(), "manager")
	if b := os.Getenv("BENCH_MANAGER"); b != "" {
		// Another build of the manager (an older commit's), to compare two in one window.
		bin = b
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dir, "hub.kubeconfig"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start bin/manager (run `make build`): %w", err)
	}
	return &Manager{cmd: cmd, log: log}, nil
}

// PID of the manager process.
func (m *Manager) PID() int { return m.cmd.Process.Pid }

// RSSMiB is the manager's resident memory now (VmRSS).
func (m *Manager) RSSMiB() float64 { return StatusMiB(m.PID(), "VmRSS:") }

// PeakRSSMiB is the manager's peak resident memory so far (VmHWM).
func (m *Manager) PeakRSSMiB() float64 { return StatusMiB(m.PID(), "VmHWM:") }

// Stop ends the manager, killing it when it does not stop within 15 s.
func (m *Manager) Stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
	}
	m.log.Close()
}

// StatusMiB reads a memory field of /proc/<pid>/status ("VmRSS:", "VmHWM:") in MiB; 0 when the
// process is gone.
func StatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// CPUSeconds is the user+system CPU time a process has used, from /proc/<pid>/stat.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 per second on Linux
}

// WaitFor checks cond every poll until it holds, fails, or timeout passes.
func WaitFor(ctx context.Context, timeout, poll time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// WaitQuiet waits until count (a running total, such as the writes the apiservers served) stays
// the same for quiet, polling every poll; it fails when that has not happened within timeout.
func WaitQuiet(ctx context.Context, timeout, quiet, poll time.Duration, count func(context.Context) (float64, error)) error {
	last, err := count(ctx)
	if err != nil {
		return err
	}
	since := time.Now()
	return WaitFor(ctx, timeout, poll, func() (bool, error) {
		n, err := count(ctx)
		if err != nil {
			return false, err
		}
		if n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= quiet, nil
	})
}

// Window lets d pass (a measurement window, not a wait for state), or until ctx ends.
func Window(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Machine describes the machine: CPUs and memory.
func Machine() string {
	cpus := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strings.Count(string(b), "processor\t:")
	}
	mem, _ := os.ReadFile("/proc/meminfo")
	first, _, _ := strings.Cut(string(mem), "\n")
	return fmt.Sprintf("%d CPUs, %s", cpus, strings.Join(strings.Fields(first), " "))
}

// WriteJSON writes v, indented, to bench/out/<name> and says so.
func WriteJSON(name string, v any) error {
	dir, err := OutDir()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	fmt.Printf("\nWrote %s\n", path)
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Pin restricts every thread of the processes to the CPUs. Threads a process starts later inherit
// the set from the thread that starts them.
func Pin(pids []int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for _, pid := range pids {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return fmt.Errorf("threads of process %d: %w", pid, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d of process %d to CPUs %v: %w", tid, pid, cpus, err)
			}
		}
	}
	return nil
}

// CPUs lists the CPUs this process may run on.
func CPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var out []int
	for c := 0; c < 1024 && len(out) < set.Count(); c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Percentile is the p-th percentile (nearest rank) of d in milliseconds, 0 for no samples.
func Percentile(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}

// WriteSnapshot reads every cluster's write counters by verb and resource, in the order given.
func WriteSnapshot(ctx context.Context, clusters []*testbed.Cluster) ([]map[string]float64, error) {
	return snapshot(ctx, clusters, (*testbed.Cluster).WritesByVerb)
}

// RequestSnapshot reads every request each cluster has served so far, by verb and resource.
func RequestSnapshot(ctx context.Context, clusters []*testbed.Cluster) ([]map[string]float64, error) {
	return snapshot(ctx, clusters, (*testbed.Cluster).RequestsByVerb)
}

func snapshot(ctx context.Context, clusters []*testbed.Cluster, read func(*testbed.Cluster, context.Context) (map[string]float64, error)) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(clusters))
	for i, c := range clusters {
		m, err := read(c, ctx)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}
