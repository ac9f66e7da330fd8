// Command fanout measures the work engine: N ConfigMaps of about 1 KiB, carried by ClusterWorks,
// fanned out to M member clusters, against the same objects applied directly by a plain client
// with the same concurrency (the members' own limit), in one run. It prints a table and writes
// bench/out/fanout.json.
//
// Environment: BENCH_N (objects, default 1000), BENCH_M (members, default 3), BENCH_PER_WORK
// (objects per ClusterWork, default 50), BENCH_STEADY (seconds of steady state, default 30),
// BENCH_QUICK=1 (N=200, M=2, 10 s of steady state), BENCH_NO_FINALIZER=1 (create the Works without
// the syncer's finalizer, as a person might, so that the syncer adds it).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/bench/benchkit"
	"github.com/meridian-io/meridian/test/testbed"
)

// workersPerMember is the manager's --work-workers-per-member and the baseline's concurrency.
const workersPerMember = 8

type result struct {
	Objects               int     `json:"objects"`
	Clusters              int     `json:"clusters"`
	ObjectsPerWork        int     `json:"objects_per_work"`
	FanoutSeconds         float64 `json:"fanout_seconds"`
	BaselineSeconds       float64 `json:"baseline_seconds"`
	Ratio                 float64 `json:"ratio"`
	MemberWritesPerObject float64 `json:"member_writes_per_object"`
	BaselineWritesPerObj  float64 `json:"baseline_member_writes_per_object"`
	HubWritesDuringFanout float64 `json:"hub_writes_during_fanout"`
	SteadyStateSeconds    int     `json:"steady_state_seconds"`
	SteadyStateWrites     float64 `json:"steady_state_writes"`
	ControlWindowWrites   float64 `json:"control_window_writes"`
	ServerWriteMsFanout   float64 `json:"member_configmap_write_ms_fanout"`
	ServerWriteMsBaseline float64 `json:"member_configmap_write_ms_baseline"`
	ManagerCPUSeconds     float64 `json:"manager_cpu_seconds_during_fanout"`
	BaselineCPUSeconds    float64 `json:"baseline_client_cpu_seconds"`
	ManagerRSSMiB         float64 `json:"manager_rss_mib"`
	ManagerRSSKind        string  `json:"manager_rss_kind"`
	WorkersPerMember      int     `json:"workers_per_member"`
	Machine               string  `json:"machine"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run() (reterr error) {
	n, m, perWork, steady := benchkit.EnvInt("BENCH_N", 1000), benchkit.EnvInt("BENCH_M", 3), benchkit.EnvInt("BENCH_PER_WORK", 50), benchkit.EnvInt("BENCH_STEADY", 30)
	if os.Getenv("BENCH_QUICK") == "1" {
		n, m, steady = 200, 2, 10
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

	// The control window: what the apiservers write on their own with no client at all.
	control, err := windowWrites(ctx, all, time.Duration(steady)*time.Second)
	if err != nil {
		return err
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

	if err := bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{}, nil); err != nil {
		return err
	}

	fmt.Printf("Baseline: %d ConfigMaps to each of %d members by a plain client, %d at a time per member\n", n, m, workersPerMember)
	before, err := snapshot(ctx, bed.Members)
	if err != nil {
		return err
	}
	lat0 := latency(ctx, bed.Members)
	cpu0 := benchkit.CPUSeconds(os.Getpid())
	baseline, err := applyDirect(ctx, bed.Members, n)
	baselineCPU := benchkit.CPUSeconds(os.Getpid()) - cpu0
	lat1 := latency(ctx, bed.Members)
	if err != nil {
		return err
	}
	after, err := snapshot(ctx, bed.Members)
	if err != nil {
		return err
	}
	baselineWrites := sumWrites(before, after)

	fmt.Printf("Fan-out: the same through %d ClusterWorks per member (%d objects each)\n", (n+perWork-1)/perWork, perWork)
	hubBefore, err := snapshot(ctx, []*testbed.Cluster{bed.Hub})
	if err != nil {
		return err
	}
	before, err = snapshot(ctx, bed.Members)
	if err != nil {
		return err
	}
	mcpu0 := benchkit.CPUSeconds(mgr.PID())
	fanout, err := fanOut(ctx, bed, names, n, perWork)
	managerCPU := benchkit.CPUSeconds(mgr.PID()) - mcpu0
	lat2 := latency(ctx, bed.Members)
	if err != nil {
		return err
	}
	after, err = snapshot(ctx, bed.Members)
	if err != nil {
		return err
	}
	hubAfter, err := snapshot(ctx, []*testbed.Cluster{bed.Hub})
	if err != nil {
		return err
	}
	memberWrites := sumWrites(before, after)
	hubWrites := sumWrites(hubBefore, hubAfter)

	time.Sleep(3 * time.Second) // let the last status patches and watch events settle
	fmt.Printf("Steady state: %d s with nothing changing\n", steady)
	steadyWrites, err := windowWrites(ctx, all, time.Duration(steady)*time.Second)
	if err != nil {
		return err
	}

	res := result{
		Objects: n, Clusters: m, ObjectsPerWork: perWork, WorkersPerMember: workersPerMember,
		FanoutSeconds: fanout.Seconds(), BaselineSeconds: baseline.Seconds(), Ratio: fanout.Seconds() / baseline.Seconds(),
		MemberWritesPerObject: memberWrites / float64(n*m), BaselineWritesPerObj: baselineWrites / float64(n*m),
		HubWritesDuringFanout: hubWrites, SteadyStateSeconds: steady, SteadyStateWrites: steadyWrites, ControlWindowWrites: control,
		ServerWriteMsFanout: meanMs(lat1, lat2), ServerWriteMsBaseline: meanMs(lat0, lat1),
		ManagerCPUSeconds: managerCPU, BaselineCPUSeconds: baselineCPU,
		ManagerRSSMiB: mgr.PeakRSSMiB(), ManagerRSSKind: "peak RSS (VmHWM) of the manager process",
		Machine: benchkit.Machine(),
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
func applyDirect(ctx context.Context, members []*testbed.Cluster, n int) (time.Duration, error) {
	const ns = "bench-baseline"
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
func fanOut(ctx context.Context, bed *testbed.Bed, members []string, n, perWork int) (time.Duration, error) {
	const ns = "bench-fanout"
	// Meridian's compilers create their Works with the syncer's finalizer, which saves the syncer
	// a write of the whole Work; so does this bench unless BENCH_NO_FINALIZER=1.
	finalizers := []string{fleetv1alpha1.WorkFinalizer}
	if os.Getenv("BENCH_NO_FINALIZER") == "1" {
		finalizers = nil
	}
	start := time.Now()
	var works []*fleetv1alpha1.ClusterWork
	for _, member := range members {
		hubNS := fleetv1alpha1.MemberClusterNamespacePrefix + member
		nsObj, _ := json.Marshal(&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ns}})
		works = append(works, &fleetv1alpha1.ClusterWork{
			ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: "bench-namespace", Finalizers: finalizers},
			Spec:       fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{{RawExtension: runtime.RawExtension{Raw: nsObj}}}},
		})
		for first := 0; first < n; first += perWork {
			w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: fmt.Sprintf("bench-%04d", first/perWork),
				Finalizers: finalizers}}
			for i := first; i < min(first+perWork, n); i++ {
				raw, _ := json.Marshal(&corev1.ConfigMap{
					TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cm-%d", i)},
					Data:       payload(i),
				})
				w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: raw}})
			}
			works = append(works, w)
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

func snapshot(ctx context.Context, clusters []*testbed.Cluster) ([]map[string]float64, error) {
	out := make([]map[string]float64, len(clusters))
	for i, c := range clusters {
		w, err := c.WriteRequests(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = w
	}
	return out, nil
}

// sumWrites adds up the write requests between two snapshots, leaving out the apiservers' own
// identity lease renewals.
func sumWrites(before, after []map[string]float64) float64 {
	var total float64
	for i := range before {
		total += testbed.WritesExcept(testbed.DiffWrites(before[i], after[i]), "coordination.k8s.io/leases")
	}
	return total
}

func windowWrites(ctx context.Context, clusters []*testbed.Cluster, d time.Duration) (float64, error) {
	before, err := snapshot(ctx, clusters)
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	after, err := snapshot(ctx, clusters)
	if err != nil {
		return 0, err
	}
	return sumWrites(before, after), nil
}

func printTable(r result) {
	fmt.Printf("\n%-44s %14s %14s\n", fmt.Sprintf("N=%d objects x M=%d clusters", r.Objects, r.Clusters), "meridian", "baseline")
	fmt.Printf("%-44s %14.2f %14.2f\n", "fan-out seconds", r.FanoutSeconds, r.BaselineSeconds)
	fmt.Printf("%-44s %14.2f %14s\n", "ratio (meridian / baseline)", r.Ratio, "1.00")
	fmt.Printf("%-44s %14.3f %14.3f\n", "member writes per object per cluster", r.MemberWritesPerObject, r.BaselineWritesPerObj)
	fmt.Printf("%-44s %14.0f %14s\n", "hub writes during fan-out", r.HubWritesDuringFanout, "-")
	fmt.Printf("%-44s %14.0f %14.0f\n", fmt.Sprintf("writes in %d s of steady state (control)", r.SteadyStateSeconds), r.SteadyStateWrites, r.ControlWindowWrites)
	fmt.Printf("%-44s %14.2f %14.2f\n", "member server ms per ConfigMap write", r.ServerWriteMsFanout, r.ServerWriteMsBaseline)
	fmt.Printf("%-44s %14.2f %14.2f\n", "client CPU seconds (manager / bench client)", r.ManagerCPUSeconds, r.BaselineCPUSeconds)
	fmt.Printf("%-44s %14.1f %14s\n", "manager peak RSS MiB", r.ManagerRSSMiB, "-")
	fmt.Println("(writes: POST/PUT/PATCH/DELETE from apiserver_request_total, apiservers' own lease renewals left out)")
}
