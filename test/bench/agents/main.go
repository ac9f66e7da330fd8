// Command agents measures the node agents' load on the hub and the members: three live members of
// N simulated nodes each (default 200), an AgentConfig installing the agent on all of them (its
// DaemonSet's pods from the members' controllers and kwok), and one real agent per node, all in
// this process (kubelet.Kubelet: each with its node's name and a token bound to its node's pod,
// running internal/agent as cmd/node-agent's main does, without the nftables dataplane: one
// process cannot hold 600 nodes' tables), heartbeating every 10 s. It measures, in steady state
// and while a tenth of each member's agents are killed and restarted: hub writes per minute by
// resource (target: at most one MemberCluster status write per member per heartbeat interval),
// member writes per minute by resource, the manager's memory and this process's (the agents').
// It prints a table and writes bench/out/agents.json.
//
// Environment: BENCH_NODES (default 200), BENCH_STEADY (seconds, default 60), BENCH_QUICK=1
// (20 nodes, 30 s).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/agent/agenttest/kubelet"
	"github.com/meridian-io/meridian/test/bench/benchkit"
	"github.com/meridian-io/meridian/test/testbed"
)

var members = []string{"member-1", "member-2", "member-3"}

const heartbeat = 10 // seconds

type phase struct {
	Seconds float64 `json:"seconds"`
	// HubWritesPerMinute by "VERB group/resource".
	HubWritesPerMinute map[string]float64 `json:"hub_writes_per_minute"`
	// MemberClusterWritesPerMinute: writes to MemberClusters (status.agents, probe) over all members.
	MemberClusterWritesPerMinute float64 `json:"membercluster_writes_per_minute"`
	// MemberClusterWritesPerMemberPerInterval against the target of 1.
	MemberClusterWritesPerMemberPerInterval float64 `json:"membercluster_writes_per_member_per_heartbeat_interval"`
	// MemberWritesPerMinute by "VERB group/resource", summed over the members.
	MemberWritesPerMinute map[string]float64 `json:"member_writes_per_minute"`
}

type result struct {
	Members                int     `json:"members"`
	NodesPerMember         int     `json:"nodes_per_member"`
	HeartbeatSeconds       int     `json:"heartbeat_seconds"`
	InstallSeconds         float64 `json:"install_seconds"`
	Steady                 phase   `json:"steady"`
	Churn                  phase   `json:"churn"`
	KilledPerMember        int     `json:"killed_per_member"`
	ManagerRSSMiB          float64 `json:"manager_rss_mib"`
	ManagerPeakRSSMiB      float64 `json:"manager_peak_rss_mib"`
	AgentsProcessRSSMiB    float64 `json:"agents_process_rss_mib"`
	AgentsProcessHeapMiB   float64 `json:"agents_process_heap_mib"`
	AgentsProcessGoroutine int     `json:"agents_process_goroutines"`
	Machine                string  `json:"machine"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run() (reterr error) {
	nodes, steady := benchkit.EnvInt("BENCH_NODES", 200), benchkit.EnvInt("BENCH_STEADY", 60)
	if os.Getenv("BENCH_QUICK") == "1" {
		nodes, steady = 20, 30
	}
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	// Each agent watches its config folder with inotify: one instance per agent, and the kernel's
	// default limit (128 per user) would stop the agents beyond it, as it would not on real nodes.
	if raw, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); err == nil {
		var have int
		_, _ = fmt.Sscan(string(raw), &have)
		if need := len(members)*nodes + 200; have < need {
			return fmt.Errorf("fs.inotify.max_user_instances is %d; the %d agents need one inotify instance each: raise it (sysctl -w fs.inotify.max_user_instances=%d)", have, len(members)*nodes, need)
		}
	}
	step("Starting a hub and %d live members of %d nodes each", len(members), nodes)
	opts := map[string]testbed.MemberOptions{}
	for _, m := range members {
		opts[m] = testbed.MemberOptions{Live: true, Nodes: nodes}
	}
	bed, err := testbed.Start(ctx, testbed.Options{Members: members, MemberOptions: opts, Scheme: scheme})
	if bed != nil {
		defer func() { reterr = errors.Join(reterr, bed.Stop()) }()
	}
	if err != nil {
		return err
	}
	mgr, err := benchkit.StartManager(bed, "agents-manager.log")
	if err != nil {
		return err
	}
	defer mgr.Stop()
	if err := bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{}, nil); err != nil {
		return err
	}
	r := result{Members: len(members), NodesPerMember: nodes, HeartbeatSeconds: heartbeat, Machine: benchkit.Machine()}

	step("Running one agent per node in this process (%d agents)", len(members)*nodes)
	dir, err := os.MkdirTemp("", "meridian-bench-agents-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out, err := benchkit.OutDir()
	if err != nil {
		return err
	}
	agentLog, err := os.Create(filepath.Join(out, "agents-agents.log"))
	if err != nil {
		return err
	}
	defer agentLog.Close()
	agentsCtx, stopAgents := context.WithCancel(context.Background())
	kubelets := map[string]*kubelet.Kubelet{}
	var done []chan error
	for i, m := range members {
		k := &kubelet.Kubelet{Config: bed.Member(m).Config, Dir: filepath.Join(dir, m), HostPrefix: fmt.Sprintf("127.1.%d.", i+1), Period: time.Second, Log: agentLog}
		kubelets[m] = k
		d := make(chan error, 1)
		go func() { d <- k.Run(agentsCtx) }()
		done = append(done, d)
	}
	defer func() {
		stopAgents()
		for _, d := range done {
			<-d
		}
	}()

	step("AgentConfig bench: every member in one wave, heartbeat %d s", heartbeat)
	start := time.Now()
	ac := &fleetv1alpha1.AgentConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: fleetv1alpha1.AgentConfigSpec{
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			Image:     "meridian-node-agent:v0.1.0", Version: "v0.1.0",
			Config:  fleetv1alpha1.AgentSettings{HeartbeatIntervalSeconds: heartbeat},
			Rollout: fleetv1alpha1.AgentRollout{WaveSize: ptr.To(intstr.FromString("100%")), ProgressDeadlineSeconds: 1800, MaxUnavailable: ptr.To(intstr.FromString("100%"))},
		},
	}
	if err := bed.Hub.Client.Create(ctx, ac); err != nil {
		return err
	}
	want := fmt.Sprintf("%d/%d", nodes, nodes)
	if err := benchkit.WaitFor(ctx, 25*time.Minute, 2*time.Second, func() (bool, error) {
		got := &fleetv1alpha1.AgentConfig{}
		if err := bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), got); err != nil {
			return false, err
		}
		var line []string
		ok := meta.IsStatusConditionTrue(got.Status.Conditions, fleetv1alpha1.ReadyCondition)
		for _, m := range members {
			mc := &fleetv1alpha1.MemberCluster{}
			if err := bed.Hub.Client.Get(ctx, client.ObjectKey{Name: m}, mc); err != nil {
				return false, err
			}
			s := "-"
			if mc.Status.Agents != nil {
				s = mc.Status.Agents.Summary
			}
			ok = ok && s == want
			line = append(line, m+" "+s)
		}
		fmt.Printf("   %s: %s\n", time.Since(start).Round(time.Second), strings.Join(line, ", "))
		return ok, nil
	}); err != nil {
		return fmt.Errorf("wait for every agent ready: %w", err)
	}
	r.InstallSeconds = time.Since(start).Seconds()
	step("Every agent ready after %.0f s; settling for two intervals", r.InstallSeconds)
	time.Sleep(2 * heartbeat * time.Second) // let the install's writes end before measuring

	measure := func(d time.Duration, during func()) (phase, error) {
		hub0, err := bed.Hub.WritesByVerb(ctx)
		if err != nil {
			return phase{}, err
		}
		mem0 := map[string]map[string]float64{}
		for _, m := range members {
			if mem0[m], err = bed.Member(m).WritesByVerb(ctx); err != nil {
				return phase{}, err
			}
		}
		t0 := time.Now()
		if during != nil {
			during()
		}
		time.Sleep(time.Until(t0.Add(d)))
		secs := time.Since(t0).Seconds()
		hub1, err := bed.Hub.WritesByVerb(ctx)
		if err != nil {
			return phase{}, err
		}
		p := phase{Seconds: secs, HubWritesPerMinute: perMinute(testbed.DiffWrites(hub0, hub1), secs), MemberWritesPerMinute: map[string]float64{}}
		for _, m := range members {
			mem1, err := bed.Member(m).WritesByVerb(ctx)
			if err != nil {
				return phase{}, err
			}
			for k, v := range perMinute(testbed.DiffWrites(mem0[m], mem1), secs) {
				p.MemberWritesPerMinute[k] += v
			}
		}
		for k, v := range p.HubWritesPerMinute {
			if strings.HasSuffix(k, "fleet.meridian.io/memberclusters") {
				p.MemberClusterWritesPerMinute += v
			}
		}
		p.MemberClusterWritesPerMemberPerInterval = p.MemberClusterWritesPerMinute / float64(len(members)) / (60.0 / heartbeat)
		return p, nil
	}
	step("Steady state: %d s", steady)
	if r.Steady, err = measure(time.Duration(steady)*time.Second, nil); err != nil {
		return err
	}
	r.KilledPerMember = max(nodes/10, 1)
	step("Churn: kill %d agents per member, restart them after %d s, measure %d s", r.KilledPerMember, 4*heartbeat, steady+4*heartbeat)
	if r.Churn, err = measure(time.Duration(steady+4*heartbeat)*time.Second, func() {
		for _, m := range members {
			for _, n := range bed.Member(m).Live.Nodes[:r.KilledPerMember] {
				kubelets[m].Kill(n)
			}
		}
		go func() {
			time.Sleep(4 * heartbeat * time.Second)
			for _, m := range members {
				for _, n := range bed.Member(m).Live.Nodes[:r.KilledPerMember] {
					kubelets[m].Restart(n)
				}
			}
		}()
	}); err != nil {
		return err
	}
	r.ManagerRSSMiB, r.ManagerPeakRSSMiB = mgr.RSSMiB(), mgr.PeakRSSMiB()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.AgentsProcessRSSMiB = benchkit.StatusMiB(os.Getpid(), "VmRSS:")
	r.AgentsProcessHeapMiB = float64(ms.HeapInuse) / (1 << 20)
	r.AgentsProcessGoroutine = runtime.NumGoroutine()

	print(r)
	return benchkit.WriteJSON("agents.json", r)
}

func perMinute(m map[string]float64, secs float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if v > 0 {
			out[k] = v * 60 / secs
		}
	}
	return out
}

func print(r result) {
	fmt.Printf("\n%d members × %d nodes, heartbeat %d s, one agent per node in one process\n", r.Members, r.NodesPerMember, r.HeartbeatSeconds)
	fmt.Printf("%-70s %10.0f\n", "install: AgentConfig created -> every agent ready (s)", r.InstallSeconds)
	for _, ph := range []struct {
		name string
		p    phase
	}{{"steady", r.Steady}, {fmt.Sprintf("churn (%d agents killed per member, restarted)", r.KilledPerMember), r.Churn}} {
		fmt.Printf("\n%s, %.0f s:\n", ph.name, ph.p.Seconds)
		fmt.Printf("  %-68s %10.2f\n", "MemberCluster writes per member per heartbeat interval (target <= 1)", ph.p.MemberClusterWritesPerMemberPerInterval)
		fmt.Printf("  hub writes per minute:\n")
		printMap(ph.p.HubWritesPerMinute)
		fmt.Printf("  member writes per minute (3 members):\n")
		printMap(ph.p.MemberWritesPerMinute)
	}
	fmt.Printf("\n%-70s %10.0f\n", "manager RSS (MiB)", r.ManagerRSSMiB)
	fmt.Printf("%-70s %10.0f\n", "manager peak RSS (MiB)", r.ManagerPeakRSSMiB)
	fmt.Printf("%-70s %10.0f\n", "agents' process RSS (MiB, all agents and the bench)", r.AgentsProcessRSSMiB)
	fmt.Printf("%-70s %10.0f\n", "agents' process Go heap in use (MiB)", r.AgentsProcessHeapMiB)
	fmt.Printf("%-70s %10d\n", "agents' process goroutines", r.AgentsProcessGoroutine)
}

func printMap(m map[string]float64) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("    %-66s %10.1f\n", k, m[k])
	}
}
