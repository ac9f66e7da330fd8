// Command live measures the test bed's live members: how long a bed with one live member takes to
// start, how much memory a bare and a live member's processes hold, and how a live member with
// many Nodes and pods fares. It prints Markdown for docs/benchmarks.md. `make bench-live` runs it;
// it is not part of `make test`.
//
//	go run ./test/bench/live -runs 5 -settle 20s -nodes 1000 -pods 10000
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

func main() {
	runs := flag.Int("runs", 5, "starts to time per kind of member")
	settle := flag.Duration("settle", 20*time.Second, "idle time before memory is read")
	nodes := flag.Int("nodes", 1000, "Nodes of the scale run (0 skips it)")
	pods := flag.Int("pods", 10000, "pods of the scale run")
	timeout := flag.Duration("timeout", 30*time.Minute, "bound of the scale run's wait for pods")
	flag.Parse()
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *runs, *settle, *nodes, *pods, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-live: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, runs int, settle time.Duration, nodes, pods int, timeout time.Duration) error {
	fmt.Printf("Machine: %d CPUs, %s, %s\n\n", runtime.NumCPU(), cpuModel(), time.Now().Format("2006-01-02"))

	fmt.Println("### Start: a hub and one member, started in parallel (testbed.Start)")
	fmt.Println()
	// Bare and live starts alternate, so that other load on the machine hits both alike.
	times := map[bool][]time.Duration{}
	for range runs {
		for _, live := range []bool{false, true} {
			d, err := timeStart(ctx, live)
			if err != nil {
				return err
			}
			times[live] = append(times[live], d)
		}
	}
	fmt.Println("| member | runs | min | median | max |")
	fmt.Println("|---|---|---|---|---|")
	for _, live := range []bool{false, true} {
		t := times[live]
		slices.Sort(t)
		fmt.Printf("| %s | %d | %s | %s | %s |\n", kind(live), runs, round(t[0]), round(t[len(t)/2]), round(t[len(t)-1]))
	}
	fmt.Printf("\nLoad average after the starts: %s\n", loadAverage())

	fmt.Printf("\n### Memory of one member's processes after %s idle (RSS)\n\n", settle)
	for _, live := range []bool{false, true} {
		if err := memory(ctx, live, settle); err != nil {
			return err
		}
	}

	if nodes > 0 {
		return scale(ctx, nodes, pods, timeout)
	}
	return nil
}

func kind(live bool) string {
	if live {
		return "live, 3 nodes"
	}
	return "bare"
}

func options(live bool, nodes int) testbed.Options {
	scheme, err := controllers.NewScheme()
	if err != nil {
		panic(err)
	}
	opts := testbed.Options{Members: []string{"member-1"}, Scheme: scheme}
	if live {
		mo := testbed.MemberOptions{Live: true, Nodes: nodes}
		if nodes > 16 {
			mo.PodCIDR = "198.18.0.0/16" // room for 65,536 pods
		}
		opts.MemberOptions = map[string]testbed.MemberOptions{"member-1": mo}
	}
	return opts
}

func timeStart(ctx context.Context, live bool) (time.Duration, error) {
	start := time.Now()
	bed, err := testbed.Start(ctx, options(live, 3))
	d := time.Since(start)
	if bed != nil {
		err = errors.Join(err, bed.Stop())
	}
	return d, err
}

func memory(ctx context.Context, live bool, settle time.Duration) (reterr error) {
	bed, err := testbed.Start(ctx, options(live, 3))
	if bed != nil {
		defer func() { reterr = errors.Join(reterr, bed.Stop()) }()
	}
	if err != nil {
		return err
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	fmt.Printf("%s member (load average %s):\n\n", kind(live), loadAverage())
	return printProcesses(bed.Members[0])
}

// scale starts one live member with many Nodes, runs one Deployment of pods replicas on them
// and reports how long until all are Running, and what the member's processes hold.
func scale(ctx context.Context, nodes, pods int, timeout time.Duration) (reterr error) {
	fmt.Printf("\n### One live member with %d nodes and %d pods\n\n", nodes, pods)
	start := time.Now()
	bed, err := testbed.Start(ctx, options(true, nodes))
	if bed != nil {
		defer func() { reterr = errors.Join(reterr, bed.Stop()) }()
	}
	if err != nil {
		return err
	}
	m := bed.Members[0]
	fmt.Printf("- Start with %d Nodes Ready (and the hub): %s\n", nodes, round(time.Since(start)))

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "scale"}}
	if err := m.Client.Create(ctx, ns); err != nil {
		return err
	}
	labels := map[string]string{"app": "scale"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "scale"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(pods)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
	created := time.Now()
	if err := m.Client.Create(ctx, d); err != nil {
		return err
	}
	// The Deployment's status counts ready pods without listing 10,000 of them every poll.
	deadline := time.After(timeout)
	lastPrint := time.Now()
	for d.Status.ReadyReplicas < int32(pods) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			fmt.Printf("- Not all pods Running within %s: %d of %d ready\n", timeout, d.Status.ReadyReplicas, pods)
			return printProcesses(m)
		case <-time.After(time.Second):
		}
		if err := m.Client.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		if time.Since(lastPrint) > 30*time.Second {
			fmt.Fprintf(os.Stderr, "  %s: %d of %d pods ready\n", round(time.Since(created)), d.Status.ReadyReplicas, pods)
			lastPrint = time.Now()
		}
	}
	elapsed := time.Since(created)
	running, perNode, err := countRunning(ctx, m, ns.Name)
	if err != nil {
		return err
	}
	fmt.Printf("- Deployment of %d replicas created to all pods Running and Ready: %s (%d pods Running by a final list; %d to %d pods per Node)\n",
		pods, round(elapsed), running, perNode[0], perNode[1])
	fmt.Printf("- Load average at the end: %s\n\n", loadAverage())
	return printProcesses(m)
}

// countRunning lists the pods page by page and returns how many are Running, and the fewest and
// most on one Node.
func countRunning(ctx context.Context, m *testbed.Cluster, ns string) (int, [2]int, error) {
	onNode := map[string]int{}
	running := 0
	list := &corev1.PodList{}
	opts := []client.ListOption{client.InNamespace(ns), client.Limit(1000)}
	for {
		if err := m.Client.List(ctx, list, opts...); err != nil {
			return 0, [2]int{}, err
		}
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
				onNode[p.Spec.NodeName]++
			}
		}
		if list.Continue == "" {
			break
		}
		opts = []client.ListOption{client.InNamespace(ns), client.Limit(1000), client.Continue(list.Continue)}
	}
	spread := [2]int{0, 0}
	first := true
	for _, n := range m.Live.Nodes {
		c := onNode[n]
		if first || c < spread[0] {
			spread[0] = c
		}
		if first || c > spread[1] {
			spread[1] = c
		}
		first = false
	}
	return running, spread, nil
}

// printProcesses prints a table of the member's processes: resident memory now and at its peak,
// and CPU time used since they started.
func printProcesses(m *testbed.Cluster) error {
	procs, err := m.Processes()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintln(w, "| process\t| RSS MiB\t| peak RSS MiB\t| CPU s\t|")
	fmt.Fprintln(w, "|---\t|---\t|---\t|---\t|")
	var rss, peak, cpu float64
	for _, p := range procs {
		s, err := stats(p.PID)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		rss, peak, cpu = rss+s.rss, peak+s.peak, cpu+s.cpu
		fmt.Fprintf(w, "| %s\t| %.0f\t| %.0f\t| %.1f\t|\n", p.Name, s.rss, s.peak, s.cpu)
	}
	fmt.Fprintf(w, "| **total**\t| **%.0f**\t| %.0f\t| %.1f\t|\n", rss, peak, cpu)
	err = w.Flush()
	fmt.Println()
	return err
}

// loadAverage is the machine's 1, 5 and 15 minute load average: the benchmarks share the machine.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

type procStats struct{ rss, peak, cpu float64 }

// stats reads a process's resident set (VmRSS), its peak (VmHWM), both in MiB, and its user and
// system CPU seconds.
func stats(pid int) (procStats, error) {
	var s procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			s.rss = kb / 1024
		case "VmHWM:":
			s.peak = kb / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the parenthesised command name; utime and stime are the 14th and 15th.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	s.cpu = (utime + stime) / 100 // USER_HZ is 100 on Linux
	return s, nil
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
