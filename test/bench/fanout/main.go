// Command fanout measures the work engine: N ConfigMaps of about 1 KiB, carried by ClusterWorks,
// fanned out to M member clusters, against the same objects applied directly by a plain client
// with the same concurrency (the members' own limit), in one run: BENCH_RUNS rounds of baseline
// then fan-out, each into namespaces of its own, the round of the median ratio reported. It prints
// a table and writes bench/out/fanout.json.
//
// Environment: BENCH_N (objects, default 1000), BENCH_M (members, default 3), BENCH_PER_WORK
// (objects per ClusterWork, default 50), BENCH_RUNS (rounds, default 3), BENCH_STEADY (seconds of
// steady state, default 30), BENCH_QUICK=1 (N=200, M=2, one round, 10 s of steady state),
// BENCH_CPUS (split, the default: the members on half the CPUs and the hub side on the other
// half; shared: every process on every CPU), BENCH_NO_FINALIZER=1 (create the Works without the
// syncer's finalizer, as a person might, so that the syncer adds it), BENCH_PPROF (serve the
// manager's pprof there), BENCH_PROFILE_DIR and BENCH_PROFILE_SECONDS (CPU profiles of the hub's
// and the first member's apiserver, and of the manager with BENCH_PPROF, during each phase).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/bench/benchkit"
	"github.com/meridian-io/meridian/test/testbed"
)

// workersPerMember is the manager's --work-workers-per-member and the baseline's concurrency.
const workersPerMember = 8

type result struct {
	Objects        int `json:"objects"`
	Clusters       int `json:"clusters"`
	ObjectsPerWork int `json:"objects_per_work"`
	// round is the round of the median ratio.
	round
	MemberWritesPerObject float64 `json:"member_writes_per_object"`
	BaselineWritesPerObj  float64 `json:"baseline_member_writes_per_object"`
	SteadyStateSeconds    int     `json:"steady_state_seconds"`
	SteadyStateWrites     float64 `json:"steady_state_writes"`
	ControlWindowWrites   float64 `json:"control_window_writes"`
	// CPUIdle is CPU seconds per second of each group in the control window, before the manager.
	CPUIdle map[string]float64 `json:"cpu_per_second_idle"`
	// ManagerRSSMiB is the first round's (N objects in M members); it hides the median round's.
	ManagerRSSMiB          float64 `json:"manager_rss_mib"`
	ManagerRSSKind         string  `json:"manager_rss_kind"`
	ManagerRSSAllRoundsMiB float64 `json:"manager_rss_mib_all_rounds"`
	WorkersPerMember       int     `json:"workers_per_member"`
	CPUPlacement           string  `json:"cpu_placement"`
	Runs                   int     `json:"runs"`
	Rounds                 []round `json:"rounds"`
	Machine                string  `json:"machine"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() (reterr error) {
	n, m, perWork, steady := benchkit.EnvInt("BENCH_N", 1000), benchkit.EnvInt("BENCH_M", 3), benchkit.EnvInt("BENCH_PER_WORK", 50), benchkit.EnvInt("BENCH_STEADY", 30)
	runs := benchkit.EnvInt("BENCH_RUNS", 3)
	if os.Getenv("BENCH_QUICK") == "1" {
		n, m, steady, runs = 200, 2, 10, 1
	}
	ctx := context.Background()
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	var names []string
	for i := 1; i <= m; i++ {
		names = append(names, fmt.Sprintf("member-%d", i))
	}
	fmt.Printf("Starting a hub and %d members\n", m)
	bed, err := testbed.Start(ctx, testbed.Options{Members: names, Scheme: scheme})
	if bed != nil {
		defer func() { reterr = errors.Join(reterr, bed.Stop()) }()
	}
	if err != nil {
		return err
	}
	all := append([]*testbed.Cluster{bed.Hub}, bed.Members...)

	// The control window: what the apiservers write, and the CPU the control planes use, on their
	// own with no client at all.
	idleProcs, err := processGroups(bed, 0)
	if err != nil {
		return err
	}
	idle0 := idleProcs.cpu()
	control, err := windowWrites(ctx, all, time.Duration(steady)*time.Second)
	if err != nil {
		return err
	}
	idleCPU := diffCPU(idle0, idleProcs.cpu())
	for g := range idleCPU {
		idleCPU[g] /= float64(steady)
	}

	extra := []string{"--zap-log-level=debug", "--zap-time-encoding=rfc3339nano", fmt.Sprintf("--work-workers-per-member=%d", workersPerMember)}
	if addr := os.Getenv("BENCH_PPROF"); addr != "" {
		extra = append(extra, "--pprof-bind-address="+addr) // profile the manager during the run
	}
	mgr, err := benchkit.StartManager(bed, "manager.log", extra...)
	if err != nil {
		return err
	}
	defer mgr.Stop()

	procs, err := processGroups(bed, mgr.PID())
	if err != nil {
		return err
	}
	placement, err := place(procs, os.Getenv("BENCH_CPUS"))
	if err != nil {
		return err
	}
	fmt.Println("CPU placement:", placement)

	if err := bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{}, nil); err != nil {
		return err
	}
	b := &bench{bed: bed, members: names, n: n, perWork: perWork, mgr: mgr, procs: procs}
	var rounds []round
	for r := 1; r <= runs; r++ {
		rd, err := b.round(ctx, r)
		if err != nil {
			return err
		}
		rd.ManagerRSSMiB = mgr.PeakRSSMiB()
		fmt.Printf("Round %d of %d: fan-out %.2f s, baseline %.2f s, ratio %.2f\n", r, runs, rd.FanoutSeconds, rd.BaselineSeconds, rd.Ratio)
		rounds = append(rounds, rd)
	}

	// The last status patches and watch events settle: no write for 3 s (2 minutes at most).
	if err := benchkit.WaitQuiet(ctx, 2*time.Minute, 3*time.Second, 250*time.Millisecond, func(ctx context.Context) (float64, error) {
		snap, err := benchkit.RequestSnapshot(ctx, all)
		if err != nil {
			return 0, err
		}
		return writes(byVerb(emptySnapshot(len(all)), snap)), nil
	}); err != nil {
		return fmt.Errorf("writes settling after the last round: %w", err)
	}
	fmt.Printf("Steady state: %d s with nothing changing\n", steady)
	steadyWrites, err := windowWrites(ctx, all, time.Duration(steady)*time.Second)
	if err != nil {
		return err
	}

	// The round of the median ratio speaks for the run; writes per object count every round.
	byRatio := slices.Clone(rounds)
	sort.Slice(byRatio, func(i, j int) bool { return byRatio[i].Ratio < byRatio[j].Ratio })
	med := byRatio[len(byRatio)/2]
	var memberWrites, baselineWrites float64
	for _, rd := range rounds {
		memberWrites += rd.memberWrites
		baselineWrites += rd.baselineWrites
	}
	res := result{
		Objects: n, Clusters: m, ObjectsPerWork: perWork, round: med, WorkersPerMember: workersPerMember, Runs: runs, Rounds: rounds,
		MemberWritesPerObject: memberWrites / float64(n*m*runs), BaselineWritesPerObj: baselineWrites / float64(n*m*runs),
		SteadyStateSeconds: steady, SteadyStateWrites: steadyWrites, ControlWindowWrites: control, CPUIdle: idleCPU,
		ManagerRSSMiB: rounds[0].ManagerRSSMiB, ManagerRSSKind: "peak RSS (VmHWM) of the manager process after the first round (N objects in M members)",
		ManagerRSSAllRoundsMiB: mgr.PeakRSSMiB(),
		Machine:                benchkit.Machine(), CPUPlacement: placement,
	}
	printTable(res)
	return benchkit.WriteJSON("fanout.json", res)
}

var configMapGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func payload(i int) map[string]string {
	return map[string]string{"index": strconv.Itoa(i), "payload": strings.Repeat(strconv.Itoa(i%10), 1000)}
}

// applyDirect server-side applies n ConfigMaps to every member, workersPerMember at a time per
// member, all members at once: what the members can take.
func applyDirect(ctx context.Context, members []*testbed.Cluster, n int, ns string) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(members)*workersPerMember+len(members))
	for _, mem := range members {
		cfg := *mem.Config
		cfg.QPS, cfg.Burst = -1, 0
		dyn, err := dynamic.NewForConfig(&cfg)
		if err != nil {
			return 0, err
		}
		if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Apply(ctx, ns,
			&unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}},
			metav1.ApplyOptions{FieldManager: "bench-baseline"}); err != nil {
			return 0, err
		}
		next := make(chan int)
		go func() {
			defer close(next)
			for i := range n {
				next <- i
			}
		}()
		for range workersPerMember {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					u := &unstructured.Unstructured{}
					u.SetAPIVersion("v1")
					u.SetKind("ConfigMap")
					u.SetNamespace(ns)
					u.SetName(fmt.Sprintf("cm-%d", i))
					_ = unstructured.SetNestedStringMap(u.Object, payload(i), "data")
					if _, err := dyn.Resource(configMapGVR).Namespace(ns).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "bench-baseline"}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	return time.Since(start), nil
}

// fanOut creates the ClusterWorks and waits until every Work is Applied and every object exists in
// every member.
func fanOut(ctx context.Context, bed *testbed.Bed, members []string, n, perWork, r int) (time.Duration, error) {
	ns := fmt.Sprintf("bench-fanout-%d", r)
	// Meridian's compilers create their Works with the syncer's finalizer, which saves the syncer
	// a write of the whole Work; so does this bench unless BENCH_NO_FINALIZER=1.
	finalizers := []string{fleetv1alpha1.WorkFinalizer}
	if os.Getenv("BENCH_NO_FINALIZER") == "1" {
		finalizers = nil
	}
	start := time.Now()
	// Each object's Works for all members are created together, as a compiler that writes one
	// Work per member for the same intent does: the namespace first, then the ConfigMaps.
	var works []*fleetv1alpha1.ClusterWork
	nsObj, _ := json.Marshal(&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, member := range members {
		works = append(works, &fleetv1alpha1.ClusterWork{
			ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + member, Name: fmt.Sprintf("bench-%d-namespace", r), Finalizers: finalizers},
			Spec:       fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{{RawExtension: runtime.RawExtension{Raw: nsObj}}}},
		})
	}
	for first := 0; first < n; first += perWork {
		var objects []fleetv1alpha1.WorkObject
		for i := first; i < min(first+perWork, n); i++ {
			raw, _ := json.Marshal(&corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)},
				Data:       payload(i),
			})
			objects = append(objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
		}
		for _, member := range members {
			works = append(works, &fleetv1alpha1.ClusterWork{
				ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + member, Name: fmt.Sprintf("bench-%d-%04d", r, first/perWork), Finalizers: finalizers},
				Spec:       fleetv1alpha1.ClusterWorkSpec{Objects: objects},
			})
		}
	}
	// Watch the Works rather than poll them: listing Works that carry whole manifests would load
	// the hub and this process more than the engine under test.
	wc, err := client.NewWithWatch(bed.Hub.Config, client.Options{Scheme: bed.Hub.Client.Scheme()})
	if err != nil {
		return 0, err
	}
	watch, err := wc.Watch(ctx, &fleetv1alpha1.ClusterWorkList{})
	if err != nil {
		return 0, err
	}
	defer func() { watch.Stop() }()
	isApplied := func(w *fleetv1alpha1.ClusterWork) bool {
		c := meta.FindStatusCondition(w.Status.Conditions, fleetv1alpha1.AppliedCondition)
		return c != nil && c.Status == metav1.ConditionTrue && w.Status.ObservedGeneration == w.Generation
	}
	// Create the Works as a compiler with several workers would: workersPerMember at a time.
	next := make(chan *fleetv1alpha1.ClusterWork)
	createErrs := make(chan error, len(works))
	var wg sync.WaitGroup
	for range workersPerMember {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range next {
				if err := bed.Hub.Client.Create(ctx, w); err != nil {
					createErrs <- fmt.Errorf("create ClusterWork %s/%s: %w", w.Namespace, w.Name, err)
				}
			}
		}()
	}
	for _, w := range works {
		next <- w
	}
	close(next)
	wg.Wait()
	close(createErrs)
	for err := range createErrs {
		return 0, err
	}
	// Only the benchmark's own Works count: the manager makes others (the MCS CRDs for each member).
	ours := map[string]bool{}
	for _, w := range works {
		ours[w.Namespace+"/"+w.Name] = true
	}
	applied := map[string]bool{}
	deadline := time.After(10 * time.Minute)
	for len(applied) < len(works) {
		select {
		case ev, ok := <-watch.ResultChan():
			if !ok {
				// Watches end now and then: catch up with one listing and watch again.
				list := &fleetv1alpha1.ClusterWorkList{}
				if err := wc.List(ctx, list); err != nil {
					return 0, err
				}
				for i := range list.Items {
					if key := list.Items[i].Namespace + "/" + list.Items[i].Name; ours[key] && isApplied(&list.Items[i]) {
						applied[key] = true
					}
				}
				if watch, err = wc.Watch(ctx, &fleetv1alpha1.ClusterWorkList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}}); err != nil {
					return 0, err
				}
				continue
			}
			if w, ok := ev.Object.(*fleetv1alpha1.ClusterWork); ok && ours[w.Namespace+"/"+w.Name] && isApplied(w) {
				applied[w.Namespace+"/"+w.Name] = true
			}
		case <-deadline:
			return 0, fmt.Errorf("%d of %d Works applied after 10 minutes", len(applied), len(works))
		}
	}
	elapsed := time.Since(start)
	for _, mem := range bed.Members {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
		if err := mem.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{fleetv1alpha1.ManagedByLabel: fleetv1alpha1.ManagedByValue}); err != nil {
			return 0, err
		}
		if len(list.Items) != n {
			return 0, fmt.Errorf("member %s holds %d of the %d ConfigMaps although every Work says Applied", mem.Name, len(list.Items), n)
		}
	}
	return elapsed, nil
}

type latencySample struct {
	sum   float64
	count uint64
}

// latency sums the members' server-side time spent on ConfigMap writes.
func latency(ctx context.Context, members []*testbed.Cluster) latencySample {
	var l latencySample
	for _, m := range members {
		s, c, err := m.RequestLatency(ctx, "/configmaps")
		if err == nil {
			l.sum += s
			l.count += c
		}
	}
	return l
}

func meanMs(a, b latencySample) float64 {
	if b.count == a.count {
		return 0
	}
	return 1000 * (b.sum - a.sum) / float64(b.count-a.count)
}

func emptySnapshot(n int) []map[string]float64 {
	out := make([]map[string]float64, n)
	for i := range out {
		out[i] = map[string]float64{}
	}
	return out
}

// byVerb sums, over the clusters, the requests served between two snapshots.
func byVerb(before, after []map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for i := range before {
		for k, v := range testbed.DiffWrites(before[i], after[i]) {
			out[k] += v
		}
	}
	return out
}

// writes counts the write requests among requests by verb, leaving out the apiservers' own
// identity lease renewals.
func writes(byVerb map[string]float64) float64 {
	var total float64
	for k, v := range byVerb {
		verb, resource, _ := strings.Cut(k, " ")
		if testbed.WriteVerbs[verb] && resource != "coordination.k8s.io/leases" {
			total += v
		}
	}
	return total
}

func windowWrites(ctx context.Context, clusters []*testbed.Cluster, d time.Duration) (float64, error) {
	before, err := benchkit.RequestSnapshot(ctx, clusters)
	if err != nil {
		return 0, err
	}
	if err := benchkit.Window(ctx, d); err != nil {
		return 0, err
	}
	after, err := benchkit.RequestSnapshot(ctx, clusters)
	if err != nil {
		return 0, err
	}
	return writes(byVerb(before, after)), nil
}

func printTable(r result) {
	fmt.Printf("\n%-44s %14s %14s\n", fmt.Sprintf("N=%d objects x M=%d clusters", r.Objects, r.Clusters), "meridian", "baseline")
	fmt.Printf("%-44s %14.2f %14.2f\n", "fan-out seconds", r.FanoutSeconds, r.BaselineSeconds)
	fmt.Printf("%-44s %14.2f %14s\n", "ratio (meridian / baseline)", r.Ratio, "1.00")
	if len(r.Rounds) > 1 {
		var ratios []string
		for _, rd := range r.Rounds {
			ratios = append(ratios, fmt.Sprintf("%.2f", rd.Ratio))
		}
		fmt.Printf("(the round of the median ratio of %d: %s)\n", len(r.Rounds), strings.Join(ratios, ", "))
	}
	fmt.Printf("%-44s %14.3f %14.3f\n", "member writes per object per cluster", r.MemberWritesPerObject, r.BaselineWritesPerObj)
	fmt.Printf("%-44s %14.0f %14s\n", "hub writes during fan-out", r.HubWrites, "-")
	fmt.Printf("%-44s %14.0f %14.0f\n", "member requests, all verbs", sum(r.MemberRequestsFanout), sum(r.MemberRequestsBaseline))
	fmt.Printf("%-44s %14.0f %14.0f\n", fmt.Sprintf("writes in %d s of steady state (control)", r.SteadyStateSeconds), r.SteadyStateWrites, r.ControlWindowWrites)
	fmt.Printf("%-44s %14.2f %14.2f\n", "member server ms per ConfigMap write", r.ServerWriteMsFanout, r.ServerWriteMsBaseline)
	fmt.Printf("%-44s %14.2f %14.2f\n", "client CPU seconds (manager / bench client)", r.ManagerCPUSeconds, r.BaselineCPUSeconds)
	fmt.Printf("%-44s %14.1f %14s\n", "manager peak RSS MiB (first round)", r.ManagerRSSMiB, "-")
	if len(r.Rounds) > 1 {
		fmt.Printf("%-44s %14.1f %14s\n", fmt.Sprintf("manager peak RSS MiB (%d rounds' objects)", len(r.Rounds)), r.ManagerRSSAllRoundsMiB, "-")
	}
	groups := make([]string, 0, len(r.CPUFanout))
	for g := range r.CPUFanout {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	var sumF, sumB float64
	for _, g := range groups {
		fmt.Printf("%-44s %14.2f %14.2f   idle %.3f/s\n", "CPU seconds: "+g, r.CPUFanout[g], r.CPUBaseline[g], r.CPUIdle[g])
		sumF += r.CPUFanout[g]
		sumB += r.CPUBaseline[g]
	}
	fmt.Printf("%-44s %14.2f %14.2f\n", "CPU seconds: all", sumF, sumB)
	fmt.Println("(writes: POST/PUT/PATCH/DELETE/APPLY from apiserver_request_total, apiservers' own lease renewals left out)")
}

// groups maps a process group ("hub kube-apiserver", "member etcd", "manager", "bench") to its
// processes.
type groups map[string][]int

// processGroups finds the processes whose CPU time the benchmark accounts for.
func processGroups(bed *testbed.Bed, manager int) (groups, error) {
	g := groups{"bench (this process)": {os.Getpid()}}
	if manager != 0 {
		g["manager"] = []int{manager}
	}
	clusters := append([]*testbed.Cluster{bed.Hub}, bed.Members...)
	for i, c := range clusters {
		ps, err := c.Processes()
		if err != nil {
			return nil, err
		}
		role := "members"
		if i == 0 {
			role = "hub"
		}
		for _, p := range ps {
			g[role+" "+p.Name] = append(g[role+" "+p.Name], p.PID)
		}
	}
	return g, nil
}

func (g groups) cpu() map[string]float64 {
	out := map[string]float64{}
	for name, pids := range g {
		for _, pid := range pids {
			out[name] += benchkit.CPUSeconds(pid)
		}
	}
	return out
}

func diffCPU(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// profile records, when dir is set, CPU profiles of the hub's and the first member's apiserver
// (and of the manager, when it serves pprof at managerAddr) for the first BENCH_PROFILE_SECONDS
// (default 8) of the fan-out, into
// dir. The returned func waits for them.
func profile(ctx context.Context, bed *testbed.Bed, prefix, dir, managerAddr string) func() {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "profile: %v\n", err)
		return func() {}
	}
	seconds := strconv.Itoa(benchkit.EnvInt("BENCH_PROFILE_SECONDS", 8))
	path := "/debug/pprof/profile?seconds=" + seconds
	var wg sync.WaitGroup
	save := func(name string, get func() ([]byte, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := get()
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "profile %s: %v\n", name, err)
			}
		}()
	}
	for _, c := range []*testbed.Cluster{bed.Hub, bed.Members[0]} {
		cs, err := kubernetes.NewForConfig(c.Config)
		if err != nil {
			continue
		}
		save(prefix+c.Name+"-apiserver.pprof", func() ([]byte, error) {
			return cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", seconds).DoRaw(ctx)
		})
	}
	if managerAddr != "" {
		save(prefix+"manager.pprof", func() ([]byte, error) {
			resp, err := http.Get("http://" + managerAddr + path)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			return io.ReadAll(resp.Body)
		})
	}
	return wg.Wait
}

// place decides where the processes run. In a fleet the hub and the manager run on other machines
// than the members; on one machine they share its CPUs, and whatever the hub side uses is taken
// from the members' apiservers during the fan-out but not during the baseline, which then compares
// CPU budgets rather than the engine against the members' limit. "split" (the default with two or
// more CPUs) gives the members the second half of the CPUs and the hub, its etcd, the manager and
// this process (the baseline's client) the first half, in both phases; "shared" leaves every
// process on every CPU.
func place(procs groups, mode string) (string, error) {
	cpus, err := benchkit.CPUs()
	if err != nil {
		return "", err
	}
	if mode == "" {
		mode = "split"
		if len(cpus) < 2 {
			mode = "shared"
		}
	}
	switch mode {
	case "shared":
		return fmt.Sprintf("shared: every process on CPUs %v", cpus), nil
	case "split":
	default:
		return "", fmt.Errorf("BENCH_CPUS=%q: use split or shared", mode)
	}
	if len(cpus) < 2 {
		return "", fmt.Errorf("BENCH_CPUS=split needs two CPUs, this process has %v", cpus)
	}
	hubCPUs, memberCPUs := cpus[:len(cpus)/2], cpus[len(cpus)/2:]
	for name, pids := range procs {
		side := hubCPUs
		if strings.HasPrefix(name, "members ") {
			side = memberCPUs
		}
		if err := benchkit.Pin(pids, side); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("split: members' apiservers and etcds on CPUs %v; hub apiserver and etcd, manager and bench client on CPUs %v", memberCPUs, hubCPUs), nil
}

func sum(m map[string]float64) float64 {
	var n float64
	for _, v := range m {
		n += v
	}
	return n
}

type bench struct {
	bed     *testbed.Bed
	members []string
	n       int
	perWork int
	mgr     *benchkit.Manager
	procs   groups
}

// round is one baseline and one fan-out, each into namespaces of its own.
type round struct {
	FanoutSeconds         float64 `json:"fanout_seconds"`
	BaselineSeconds       float64 `json:"baseline_seconds"`
	Ratio                 float64 `json:"ratio"`
	HubWrites             float64 `json:"hub_writes_during_fanout"`
	ServerWriteMsFanout   float64 `json:"member_configmap_write_ms_fanout"`
	ServerWriteMsBaseline float64 `json:"member_configmap_write_ms_baseline"`
	ManagerCPUSeconds     float64 `json:"manager_cpu_seconds_during_fanout"`
	BaselineCPUSeconds    float64 `json:"baseline_client_cpu_seconds"`
	// CPUFanout and CPUBaseline are CPU seconds by process group in each phase.
	CPUFanout   map[string]float64 `json:"cpu_seconds_fanout"`
	CPUBaseline map[string]float64 `json:"cpu_seconds_baseline"`
	// MemberRequests count every request the members served in each phase, by verb and resource.
	MemberRequestsFanout   map[string]float64 `json:"member_requests_fanout"`
	MemberRequestsBaseline map[string]float64 `json:"member_requests_baseline"`
	// ManagerRSSMiB is the manager's peak RSS at the end of the round: it holds every round's Works.
	ManagerRSSMiB  float64 `json:"manager_rss_mib"`
	memberWrites   float64
	baselineWrites float64
}

func (b *bench) round(ctx context.Context, r int) (round, error) {
	var rd round
	members, hub := b.bed.Members, []*testbed.Cluster{b.bed.Hub}
	fmt.Printf("Round %d, baseline: %d ConfigMaps to each of %d members by a plain client, %d at a time per member\n", r, b.n, len(members), workersPerMember)
	start, err := benchkit.RequestSnapshot(ctx, members)
	if err != nil {
		return rd, err
	}
	lat0 := latency(ctx, members)
	cpu0 := benchkit.CPUSeconds(os.Getpid())
	groups0 := b.procs.cpu()
	profiled := profile(ctx, b.bed, fmt.Sprintf("baseline-%d-", r), os.Getenv("BENCH_PROFILE_DIR"), "")
	baseline, err := applyDirect(ctx, members, b.n, fmt.Sprintf("bench-baseline-%d", r))
	profiled()
	rd.BaselineCPUSeconds = benchkit.CPUSeconds(os.Getpid()) - cpu0
	rd.CPUBaseline = diffCPU(groups0, b.procs.cpu())
	lat1 := latency(ctx, members)
	if err != nil {
		return rd, err
	}
	middle, err := benchkit.RequestSnapshot(ctx, members)
	if err != nil {
		return rd, err
	}

	fmt.Printf("Round %d, fan-out: the same through %d ClusterWorks per member (%d objects each)\n", r, (b.n+b.perWork-1)/b.perWork, b.perWork)
	hubBefore, err := benchkit.RequestSnapshot(ctx, hub)
	if err != nil {
		return rd, err
	}
	mcpu0 := benchkit.CPUSeconds(b.mgr.PID())
	groups0 = b.procs.cpu()
	profiled = profile(ctx, b.bed, fmt.Sprintf("fanout-%d-", r), os.Getenv("BENCH_PROFILE_DIR"), os.Getenv("BENCH_PPROF"))
	fanout, err := fanOut(ctx, b.bed, b.members, b.n, b.perWork, r)
	profiled()
	rd.ManagerCPUSeconds = benchkit.CPUSeconds(b.mgr.PID()) - mcpu0
	rd.CPUFanout = diffCPU(groups0, b.procs.cpu())
	lat2 := latency(ctx, members)
	if err != nil {
		return rd, err
	}
	end, err := benchkit.RequestSnapshot(ctx, members)
	if err != nil {
		return rd, err
	}
	hubAfter, err := benchkit.RequestSnapshot(ctx, hub)
	if err != nil {
		return rd, err
	}
	rd.MemberRequestsBaseline, rd.MemberRequestsFanout = byVerb(start, middle), byVerb(middle, end)
	rd.baselineWrites, rd.memberWrites = writes(rd.MemberRequestsBaseline), writes(rd.MemberRequestsFanout)
	rd.HubWrites = writes(byVerb(hubBefore, hubAfter))
	rd.FanoutSeconds, rd.BaselineSeconds = fanout.Seconds(), baseline.Seconds()
	rd.Ratio = rd.FanoutSeconds / rd.BaselineSeconds
	rd.ServerWriteMsFanout, rd.ServerWriteMsBaseline = meanMs(lat1, lat2), meanMs(lat0, lat1)
	return rd, nil
}
