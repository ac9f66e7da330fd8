// Command mcs measures cross-cluster service discovery over live members: S Services (default
// 100) exported from three live members (round robin), each a Deployment of R pods (default 2)
// whose endpoints come from the members' own EndpointSlice controller. It measures the time
// from a pod change in the source member (its EndpointSlice updated by the member's controller)
// to the imported EndpointSlices in the two other members (p50/p99 over C changes, default 40),
// Meridian's writes per endpoint change (hub and members), writes in steady state, and the
// manager's memory with no services and with S. It prints a table and writes bench/out/mcs.json.
//
// Environment: BENCH_SERVICES, BENCH_REPLICAS, BENCH_CHANGES, BENCH_STEADY (seconds, default 30),
// BENCH_QUICK=1 (20 services, 10 changes, 10 s of steady state).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/mcs"
	"github.com/meridian-io/meridian/test/bench/benchkit"
	"github.com/meridian-io/meridian/test/testbed"
)

const namespace = "bench"

var members = []string{"member-1", "member-2", "member-3"}

type result struct {
	Services           int     `json:"services"`
	ReplicasPerService int     `json:"replicas_per_service"`
	Clusters           int     `json:"clusters"`
	ConvergeSeconds    float64 `json:"converge_seconds"`
	Changes            int     `json:"changes"`
	Samples            int     `json:"samples"`
	P50Ms              float64 `json:"propagation_p50_ms"`
	P99Ms              float64 `json:"propagation_p99_ms"`
	MaxMs              float64 `json:"propagation_max_ms"`
	// The two halves of a change's path: the source member's slice to the first import Work's
	// new spec on the hub (inventory, service discovery), and that to the imported slices (the
	// work engine and the members).
	ToHubP50Ms            float64 `json:"source_to_hub_work_p50_ms"`
	HubToMemberP50        float64 `json:"hub_work_to_imported_p50_ms"`
	MemberWritesPerChange float64 `json:"member_writes_per_endpoint_change_per_importing_cluster"`
	HubWritesPerChange    float64 `json:"hub_writes_per_endpoint_change"`
	// HubReads are the reads (GET, LIST) the hub served per change, by resource, with the mean
	// time it took to serve one: the requests on a change's path besides the writes.
	HubReads               []hubRead `json:"hub_reads_per_endpoint_change"`
	SourceSliceWrites      float64   `json:"source_endpointslice_writes_per_change"`
	SteadyStateSeconds     int       `json:"steady_state_seconds"`
	SteadyStateWrites      float64   `json:"steady_state_writes"`
	ManagerRSSIdleMiB      float64   `json:"manager_rss_mib_no_services"`
	ManagerRSSServicesMiB  float64   `json:"manager_rss_mib_with_services"`
	HubAPIServerRSSMiB     float64   `json:"hub_apiserver_rss_mib"`
	ImportedEndpointsTotal int       `json:"imported_endpoints_total"`
	Machine                string    `json:"machine"`
}

type hubRead struct {
	Request   string  `json:"request"`
	PerChange float64 `json:"per_change"`
	MeanMs    float64 `json:"mean_ms"`
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
	services, replicas, changes, steady := benchkit.EnvInt("BENCH_SERVICES", 100), benchkit.EnvInt("BENCH_REPLICAS", 2), benchkit.EnvInt("BENCH_CHANGES", 40), benchkit.EnvInt("BENCH_STEADY", 30)
	if os.Getenv("BENCH_QUICK") == "1" {
		services, changes, steady = 20, 10, 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	if err := mcsv1beta1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	step("Starting a hub and %d live members (3 nodes each)", len(members))
	opts := map[string]testbed.MemberOptions{}
	for _, m := range members {
		opts[m] = testbed.MemberOptions{Live: true, Nodes: 3}
	}
	bed, err := testbed.Start(ctx, testbed.Options{Members: members, MemberOptions: opts, Scheme: scheme})
	if bed != nil {
		defer func() { reterr = errors.Join(reterr, bed.Stop()) }()
	}
	if err != nil {
		return err
	}
	mgr, err := benchkit.StartManager(bed, "mcs-manager.log")
	if err != nil {
		return err
	}
	defer mgr.Stop()
	if err := bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{}, nil); err != nil {
		return err
	}
	clusters := append([]*testbed.Cluster{bed.Hub}, bed.Member("member-1"), bed.Member("member-2"), bed.Member("member-3"))
	// Idle means: the members joined and Meridian's writes have stopped for 3 s.
	if err := quiet(ctx, clusters); err != nil {
		return fmt.Errorf("manager idle after the members joined: %w", err)
	}
	r := result{Services: services, ReplicasPerService: replicas, Clusters: len(members), Changes: changes, SteadyStateSeconds: steady, Machine: benchkit.Machine()}
	r.ManagerRSSIdleMiB = mgr.RSSMiB()

	step("GlobalNamespace %q over all members; %d Services of %d pods exported round robin", namespace, services, replicas)
	if err := bed.Hub.Client.Create(ctx, &netv1alpha1.GlobalNamespace{
		ObjectMeta: metav1.ObjectMeta{Name: namespace},
		Spec:       netv1alpha1.GlobalNamespaceSpec{Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}}},
	}); err != nil {
		return err
	}
	if err := benchkit.WaitFor(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
		for _, m := range members {
			if err := bed.Member(m).Client.Get(ctx, client.ObjectKey{Name: namespace}, &corev1.Namespace{}); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			if err := bed.Member(m).Client.Get(ctx, client.ObjectKey{Name: "serviceexports.multicluster.x-k8s.io"}, &metav1.PartialObjectMetadata{
				TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"}}); err != nil {
				return false, client.IgnoreNotFound(err)
			}
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("namespace and MCS CRDs in the members: %w", err)
	}
	if err := benchkit.WaitFor(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
		for _, m := range members {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := bed.Member(m).Client.Get(ctx, client.ObjectKey{Name: "serviceexports.multicluster.x-k8s.io"}, crd); err != nil {
				return false, err
			}
			if !established(crd) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("MCS CRDs established in the members: %w", err)
	}
	hubWorks, err := watchImportWorks(ctx, bed.Hub)
	if err != nil {
		return err
	}
	watchers := map[string]*sliceWatch{}
	for _, m := range members {
		w, err := watchSlices(ctx, bed.Member(m))
		if err != nil {
			return err
		}
		watchers[m] = w
	}
	began := time.Now()
	for i := range services {
		if err := exportService(ctx, bed.Member(source(i)).Client, name(i), int32(replicas)); err != nil {
			return err
		}
	}
	if err := benchkit.WaitFor(ctx, 10*time.Minute, 20*time.Millisecond, func() (bool, error) {
		for i := range services {
			for _, m := range members {
				if watchers[m].imported(name(i), source(i)) != replicas {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("all imports with %d endpoints: %w", replicas, err)
	}
	r.ConvergeSeconds = time.Since(began).Seconds()
	r.ImportedEndpointsTotal = services * replicas * len(members)
	step("All %d Services imported into %d members with their endpoints in %.1f s", services, len(members), r.ConvergeSeconds)
	if err := quiet(ctx, clusters); err != nil {
		return fmt.Errorf("writes settling after the imports: %w", err)
	}
	r.ManagerRSSServicesMiB = mgr.RSSMiB()
	r.HubAPIServerRSSMiB = apiserverRSS(bed.Hub)

	step("%d endpoint changes (scaling a source Deployment up or down by one pod), one at a time", changes)
	before, err := benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	readsBefore, err := hubReads(ctx, bed.Hub)
	if err != nil {
		return err
	}
	var samples, toHub, fromHub []time.Duration
	current := map[int]int{}
	for k := range changes {
		i := (k * 7) % services
		want := replicas + 1
		if current[i] == replicas+1 {
			want = replicas
		}
		current[i] = want
		src := source(i)
		changed := time.Now()
		if err := scale(ctx, bed.Member(src).Client, name(i), int32(want)); err != nil {
			return err
		}
		var t0 time.Time
		times := map[string]time.Time{}
		if err := benchkit.WaitFor(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
			if t0.IsZero() {
				t0 = watchers[src].sourceReadyAt(name(i), want, changed)
			}
			for _, m := range members {
				if m != src && times[m].IsZero() {
					times[m] = watchers[m].importedAt(name(i), src, want, changed)
				}
			}
			for _, m := range members {
				if m != src && times[m].IsZero() {
					return false, nil
				}
			}
			return !t0.IsZero(), nil
		}); err != nil {
			return fmt.Errorf("change %d (%s in %s to %d pods): %w", k, name(i), src, want, err)
		}
		for m, t := range times {
			samples = append(samples, t.Sub(t0))
			_ = m
		}
		if h := hubWorks.specChangedAfter(name(i), changed); !h.IsZero() {
			toHub = append(toHub, h.Sub(t0))
			for _, t := range times {
				fromHub = append(fromHub, t.Sub(h))
			}
		}
	}
	after, err := benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	readsAfter, err := hubReads(ctx, bed.Hub)
	if err != nil {
		return err
	}
	r.HubReads = readsBetween(readsBefore, readsAfter, changes)
	hub, meridianMembers, sourceSlices := attribute(before, after)
	r.Samples = len(samples)
	r.P50Ms, r.P99Ms, r.MaxMs = benchkit.Percentile(samples, 50), benchkit.Percentile(samples, 99), benchkit.Percentile(samples, 100)
	r.ToHubP50Ms, r.HubToMemberP50 = benchkit.Percentile(toHub, 50), benchkit.Percentile(fromHub, 50)
	// Every member imports every service (its own exports included), so one change is written
	// to all members' imported slices.
	r.MemberWritesPerChange = meridianMembers / float64(changes*len(members))
	r.HubWritesPerChange = hub / float64(changes)
	r.SourceSliceWrites = sourceSlices / float64(changes)

	step("%d s of steady state", steady)
	if err := quiet(ctx, clusters); err != nil {
		return fmt.Errorf("writes settling after the changes: %w", err)
	}
	before, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	if err := benchkit.Window(ctx, time.Duration(steady)*time.Second); err != nil {
		return err
	}
	after, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	hub, meridianMembers, _ = attribute(before, after)
	r.SteadyStateWrites = hub + meridianMembers

	printTable(r)
	return benchkit.WriteJSON("mcs.json", r)
}

// quiet waits until Meridian's writes to hub and members (as attribute counts them) have
// stopped for 3 s, two minutes at most.
func quiet(ctx context.Context, clusters []*testbed.Cluster) error {
	base, err := benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	return benchkit.WaitQuiet(ctx, 2*time.Minute, 3*time.Second, 250*time.Millisecond, func(ctx context.Context) (float64, error) {
		now, err := benchkit.WriteSnapshot(ctx, clusters)
		if err != nil {
			return 0, err
		}
		hub, members, _ := attribute(base, now)
		return hub + members, nil
	})
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

func name(i int) string   { return fmt.Sprintf("svc-%03d", i) }
func source(i int) string { return members[i%len(members)] }

func exportService(ctx context.Context, c client.Client, svc string, replicas int32) error {
	labels := map[string]string{"app": svc}
	if err := c.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: svc},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			},
		},
	}); err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: svc},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}}},
	}); err != nil {
		return err
	}
	return c.Create(ctx, &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: svc}})
}

func scale(ctx context.Context, c client.Client, svc string, replicas int32) error {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: svc}}
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	return c.Patch(ctx, d, client.RawPatch("application/merge-patch+json", []byte(patch)))
}

// sliceWatch keeps, from a watch on one member's EndpointSlices, each slice's ready count and
// when it last changed, timestamped on arrival.
type sliceWatch struct {
	mu     sync.Mutex
	slices map[string]sliceState // by slice name
}

type sliceState struct {
	service, sourceCluster string
	own                    bool // made by the member's own EndpointSlice controller
	ready                  int
	at                     time.Time
}

func watchSlices(ctx context.Context, c *testbed.Cluster) (*sliceWatch, error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	w := &sliceWatch{slices: map[string]sliceState{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	record := func(o any) {
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		st := sliceState{at: time.Now()}
		switch s.Labels[discoveryv1.LabelManagedBy] {
		case mcs.EndpointSliceManager:
			st.service, st.sourceCluster = s.Labels[mcsv1beta1.LabelServiceName], s.Labels[mcsv1beta1.LabelSourceCluster]
		case "endpointslice-controller.k8s.io":
			st.service, st.own = s.Labels[discoveryv1.LabelServiceName], true
		default:
			return
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				st.ready++
			}
		}
		w.mu.Lock()
		w.slices[s.Name] = st
		w.mu.Unlock()
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, o any) { record(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if s, ok := o.(*discoveryv1.EndpointSlice); ok {
				w.mu.Lock()
				delete(w.slices, s.Name)
				w.mu.Unlock()
			}
		},
	})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, errors.New("EndpointSlice informer did not sync")
	}
	return w, nil
}

// imported counts the ready endpoints imported for service from sourceCluster.
func (w *sliceWatch) imported(service, sourceCluster string) int {
	n, _ := w.sum(func(s sliceState) bool { return !s.own && s.service == service && s.sourceCluster == sourceCluster })
	return n
}

// importedAt is when the imported ready count of service from src became want (zero if not yet,
// or not since after).
func (w *sliceWatch) importedAt(service, src string, want int, after time.Time) time.Time {
	n, at := w.sum(func(s sliceState) bool { return !s.own && s.service == service && s.sourceCluster == src })
	if n != want || at.Before(after) {
		return time.Time{}
	}
	return at
}

// sourceReadyAt is when the member's own slices of service reached want ready endpoints.
func (w *sliceWatch) sourceReadyAt(service string, want int, after time.Time) time.Time {
	n, at := w.sum(func(s sliceState) bool { return s.own && s.service == service })
	if n != want || at.Before(after) {
		return time.Time{}
	}
	return at
}

func (w *sliceWatch) sum(match func(sliceState) bool) (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, last := 0, time.Time{}
	for _, s := range w.slices {
		if match(s) {
			n += s.ready
			if s.at.After(last) {
				last = s.at
			}
		}
	}
	return n, last
}

// attribute splits the writes between two snapshots (hub first) into Meridian's on the hub (all
// but lease renewals and events), Meridian's in members (server-side applies, patches and deletes of the
// kinds service discovery writes; Kubernetes' own controllers create and update slices with
// POST/PUT), and the members' own EndpointSlice writes.
func attribute(before, after []map[string]float64) (hub, members, ownSlices float64) {
	for i := range after {
		for k, v := range testbed.DiffWrites(before[i], after[i]) {
			verb, resource, _ := strings.Cut(k, " ")
			if i == 0 {
				if resource != "coordination.k8s.io/leases" && !strings.HasSuffix(resource, "/events") {
					hub += v
				}
				continue
			}
			switch resource {
			case "discovery.k8s.io/endpointslices", "multicluster.x-k8s.io/serviceimports", "multicluster.x-k8s.io/serviceexports", "/services":
				if verb == "APPLY" || verb == "PATCH" || (verb == "DELETE" && resource != "discovery.k8s.io/endpointslices") {
					members += v
				} else if resource == "discovery.k8s.io/endpointslices" {
					ownSlices += v
				}
			}
		}
	}
	return hub, members, ownSlices
}

// readCounts are a cluster's reads served so far, and the seconds spent serving them, by
// "VERB group/resource".
type readCounts struct{ count, seconds map[string]float64 }

func hubReads(ctx context.Context, hub *testbed.Cluster) (readCounts, error) {
	count, seconds, err := hub.RequestsAndSecondsByVerb(ctx)
	return readCounts{count, seconds}, err
}

// readsBetween returns the GETs and LISTs between two readings, per change, the most frequent
// first; the ones under one in twenty changes are left out.
func readsBetween(before, after readCounts, changes int) []hubRead {
	var out []hubRead
	for k, n := range testbed.DiffWrites(before.count, after.count) {
		verb, _, _ := strings.Cut(k, " ")
		if (verb != "GET" && verb != "LIST") || n/float64(changes) < 0.05 {
			continue
		}
		out = append(out, hubRead{Request: k, PerChange: n / float64(changes),
			MeanMs: 1000 * (after.seconds[k] - before.seconds[k]) / n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PerChange != out[j].PerChange {
			return out[i].PerChange > out[j].PerChange
		}
		return out[i].Request < out[j].Request
	})
	return out
}

func apiserverRSS(c *testbed.Cluster) float64 {
	procs, err := c.Processes()
	if err != nil {
		return 0
	}
	for _, p := range procs {
		if p.Name == "kube-apiserver" {
			return benchkit.StatusMiB(p.PID, "VmRSS:")
		}
	}
	return 0
}

func printTable(r result) {
	fmt.Printf("\n%d exported Services x %d pods, %d live members (each imports every service)\n", r.Services, r.ReplicasPerService, r.Clusters)
	fmt.Printf("%-58s %10.1f\n", "seconds until every import has its endpoints", r.ConvergeSeconds)
	fmt.Printf("%-58s %10.0f\n", fmt.Sprintf("pod change -> imported slices, p50 ms (%d samples)", r.Samples), r.P50Ms)
	fmt.Printf("%-58s %10.0f\n", "pod change -> imported slices, p99 ms", r.P99Ms)
	fmt.Printf("%-58s %10.0f\n", "pod change -> imported slices, max ms", r.MaxMs)
	fmt.Printf("%-58s %10.0f\n", "  of which source slice -> import Work on the hub, p50 ms", r.ToHubP50Ms)
	fmt.Printf("%-58s %10.0f\n", "  of which import Work -> imported slices, p50 ms", r.HubToMemberP50)
	fmt.Printf("%-58s %10.2f\n", "Meridian member writes per change per importing cluster", r.MemberWritesPerChange)
	fmt.Printf("%-58s %10.2f\n", "Meridian hub writes per change", r.HubWritesPerChange)
	for _, h := range r.HubReads {
		fmt.Printf("%-58s %10.2f  (served in %.1f ms on average)\n", "  hub reads per change: "+h.Request, h.PerChange, h.MeanMs)
	}
	fmt.Printf("%-58s %10.2f\n", "the source member's own EndpointSlice writes per change", r.SourceSliceWrites)
	fmt.Printf("%-58s %10.0f\n", fmt.Sprintf("Meridian writes in %d s of steady state", r.SteadyStateSeconds), r.SteadyStateWrites)
	fmt.Printf("%-58s %10.1f\n", "manager RSS MiB, members joined, no services", r.ManagerRSSIdleMiB)
	fmt.Printf("%-58s %10.1f\n", fmt.Sprintf("manager RSS MiB, %d services imported", r.Services), r.ManagerRSSServicesMiB)
	fmt.Printf("%-58s %10.1f\n", "hub kube-apiserver RSS MiB", r.HubAPIServerRSSMiB)
}

// workWatch records when the hub's import ClusterWorks of each service got a new spec.
type workWatch struct {
	mu      sync.Mutex
	changes map[string][]time.Time // by service name
}

func watchImportWorks(ctx context.Context, hub *testbed.Cluster) (*workWatch, error) {
	wc, err := client.NewWithWatch(hub.Config, client.Options{Scheme: hub.Client.Scheme()})
	if err != nil {
		return nil, err
	}
	w, err := wc.Watch(ctx, &fleetv1alpha1.ClusterWorkList{}, client.HasLabels{netv1alpha1.ServiceNameLabel})
	if err != nil {
		return nil, err
	}
	ww := &workWatch{changes: map[string][]time.Time{}}
	generation := map[string]int64{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			cw, ok := ev.Object.(*fleetv1alpha1.ClusterWork)
			if !ok {
				continue
			}
			key := cw.Namespace + "/" + cw.Name
			if generation[key] == cw.Generation {
				continue
			}
			generation[key] = cw.Generation
			ww.mu.Lock()
			svc := cw.Labels[netv1alpha1.ServiceNameLabel]
			ww.changes[svc] = append(ww.changes[svc], time.Now())
			ww.mu.Unlock()
		}
	}()
	return ww, nil
}

// specChangedAfter is the first new spec of one of the service's import Works after t (zero
// if none).
func (w *workWatch) specChangedAfter(service string, t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.changes[service] {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}
