// Command policy measures GlobalNetworkPolicy over three live members, each with a different
// exact form (member-1 Antrea, member-2 the upstream ClusterNetworkPolicy, member-3 Meridian's
// MemberNetworkPolicy): P pods in all (default 1,000, Deployments spread round robin) and N
// policies (default 100, every fourth with a ClusterSet peer). It measures, each beside a baseline
// taken in the same run:
//   - a hub policy change (a rule's port) to the translated object updated in every member,
//     p50/p99 per member, beside the same kind of change written directly as a ClusterWork (one
//     per member, a ConfigMap): the work engine's own floor;
//   - pod churn (a peer Deployment scaled up or down by one) to the ClusterSet peers updated in
//     the other members, from the pod's address appearing (or the pod going) in its member;
//   - Meridian's writes per change per member, and on the hub, beside the ClusterWork baseline's;
//   - Meridian's writes over a steady-state window (expected 0);
//   - the manager's memory: members joined (idle), with the pods, with the pods and policies.
//
// It prints a table and writes bench/out/policy.json.
//
// Environment: BENCH_PODS, BENCH_POLICIES, BENCH_CHANGES (policy changes, default 40),
// BENCH_CHURN (pod changes, default 20), BENCH_STEADY (seconds, default 30), BENCH_QUICK=1
// (150 pods, 20 policies, 10 changes, 6 pod changes, 10 s of steady state).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/test/bench/benchkit"
	"github.com/meridian-io/meridian/test/testbed"
)

const namespace = "bench"

var members = []string{"member-1", "member-2", "member-3"}

// forms: the resource each member's policies are written as.
var forms = map[string]schema.GroupVersionResource{
	"member-1": {Group: antrea.Group, Version: antrea.Version, Resource: "clusternetworkpolicies"},
	"member-2": {Group: "policy.networking.k8s.io", Version: "v1beta1", Resource: "clusternetworkpolicies"},
	"member-3": {Group: "member.meridian.io", Version: "v1alpha1", Resource: "membernetworkpolicies"},
}

type result struct {
	Pods     int `json:"pods"`
	Policies int `json:"policies"`
	// ClusterSetPolicies have a ClusterSet peer (resolved to the other members' pod addresses).
	ClusterSetPolicies int     `json:"clusterset_policies"`
	Clusters           int     `json:"clusters"`
	Forms              string  `json:"forms"`
	ConvergeSeconds    float64 `json:"policies_converge_seconds"`

	Changes           int     `json:"policy_changes"`
	PolicyP50Ms       float64 `json:"policy_change_p50_ms"`
	PolicyP99Ms       float64 `json:"policy_change_p99_ms"`
	PolicyMaxMs       float64 `json:"policy_change_max_ms"`
	BaselineP50Ms     float64 `json:"baseline_clusterwork_p50_ms"`
	BaselineP99Ms     float64 `json:"baseline_clusterwork_p99_ms"`
	BaselineMaxMs     float64 `json:"baseline_clusterwork_max_ms"`
	MemberWrites      float64 `json:"member_writes_per_policy_change_per_member"`
	HubWrites         float64 `json:"hub_writes_per_policy_change"`
	BaselineMemberW   float64 `json:"baseline_member_writes_per_change_per_member"`
	BaselineHubWrites float64 `json:"baseline_hub_writes_per_change"`

	Churn            int     `json:"pod_changes"`
	ChurnSamples     int     `json:"pod_change_samples"`
	ChurnP50Ms       float64 `json:"pod_change_p50_ms"`
	ChurnP99Ms       float64 `json:"pod_change_p99_ms"`
	ChurnMaxMs       float64 `json:"pod_change_max_ms"`
	ChurnMemberW     float64 `json:"member_writes_per_pod_change_per_member"`
	ChurnHubWrites   float64 `json:"hub_writes_per_pod_change"`
	SteadySeconds    int     `json:"steady_state_seconds"`
	SteadyHubWrites  float64 `json:"steady_state_hub_writes"`
	SteadyMemberW    float64 `json:"steady_state_member_writes"`
	RSSIdleMiB       float64 `json:"manager_rss_mib_idle"`
	RSSPodsMiB       float64 `json:"manager_rss_mib_with_pods"`
	RSSPoliciesMiB   float64 `json:"manager_rss_mib_with_pods_and_policies"`
	ManagerCPUSecond float64 `json:"manager_cpu_seconds_during_policy_changes"`
	// BaselineCPUSecond: the manager's CPU over the baseline's ClusterWork changes.
	BaselineCPUSecond float64 `json:"manager_cpu_seconds_during_baseline_changes"`
	Load              string  `json:"load_average"`
	Machine           string  `json:"machine"`
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
	pods, policies, changes, churn, steady := benchkit.EnvInt("BENCH_PODS", 1000), benchkit.EnvInt("BENCH_POLICIES", 100),
		benchkit.EnvInt("BENCH_CHANGES", 40), benchkit.EnvInt("BENCH_CHURN", 20), benchkit.EnvInt("BENCH_STEADY", 30)
	if os.Getenv("BENCH_QUICK") == "1" {
		pods, policies, changes, churn, steady = 150, 20, 10, 6, 10
	}
	apps := max(pods/25, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	step("Starting a hub and %d live members (4 nodes each)", len(members))
	opts := map[string]testbed.MemberOptions{}
	for _, m := range members {
		opts[m] = testbed.MemberOptions{Live: true, Nodes: 4}
	}
	bed, err := testbed.Start(ctx, testbed.Options{Members: members, MemberOptions: opts, Scheme: scheme})
	if bed != nil {
		defer func() { reterr = errors.Join(reterr, bed.Stop()) }()
	}
	if err != nil {
		return err
	}
	if err := installForms(bed); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pprofAddr := l.Addr().String()
	l.Close()
	mgr, err := benchkit.StartManager(bed, "policy-manager.log", "--pprof-bind-address="+pprofAddr)
	if err != nil {
		return err
	}
	defer mgr.Stop()
	if err := bed.JoinMembers(ctx, fleetv1alpha1.ProbeSettings{}, nil); err != nil {
		return err
	}
	time.Sleep(10 * time.Second)
	r := result{Pods: pods, Policies: policies, Clusters: len(members), Changes: changes, Churn: churn, SteadySeconds: steady,
		Forms: "member-1=Antrea,member-2=ClusterNetworkPolicy,member-3=Meridian", Machine: benchkit.Machine()}
	r.RSSIdleMiB = mgr.RSSMiB()

	step("%d pods: %d Deployments spread round robin over the members", pods, apps)
	watches := map[string]*memberWatch{}
	for _, m := range members {
		w, err := watch(ctx, bed.Member(m), forms[m])
		if err != nil {
			return err
		}
		watches[m] = w
	}
	replicas := map[int]int{}
	for a := range apps {
		replicas[a] = pods / apps
		if a < pods%apps {
			replicas[a]++
		}
		if err := deployment(ctx, bed.Member(home(a)).Client, app(a), int32(replicas[a])); err != nil {
			return err
		}
	}
	if err := benchkit.WaitFor(ctx, 15*time.Minute, 500*time.Millisecond, func() (bool, error) {
		n := 0
		for _, w := range watches {
			n += w.runningPods()
		}
		return n == pods, nil
	}); err != nil {
		return fmt.Errorf("%d pods running: %w", pods, err)
	}
	time.Sleep(10 * time.Second)
	r.RSSPodsMiB = mgr.RSSMiB()

	step("%d GlobalNetworkPolicies over all members", policies)
	began := time.Now()
	for i := range policies {
		g := gnp(i, apps)
		if hasClusterSet(i) {
			r.ClusterSetPolicies++
		}
		if err := bed.Hub.Client.Create(ctx, g); err != nil {
			return err
		}
	}
	if err := benchkit.WaitFor(ctx, 15*time.Minute, 200*time.Millisecond, func() (bool, error) {
		list := &policyv1alpha1.GlobalNetworkPolicyList{}
		if err := bed.Hub.Client.List(ctx, list); err != nil {
			return false, err
		}
		ready := 0
		for _, g := range list.Items {
			if g.Status.ObservedGeneration == g.Generation && len(g.Status.Clusters) == len(members) && appliedEverywhere(g.Status.Clusters) {
				ready++
			}
		}
		return ready == policies, nil
	}); err != nil {
		return fmt.Errorf("every policy applied in every member: %w", err)
	}
	r.ConvergeSeconds = time.Since(began).Seconds()
	step("Every policy applied in every member in %.1f s (member-3 runs no agents: Pending there, awaiting their reports)", r.ConvergeSeconds)
	time.Sleep(10 * time.Second)
	r.RSSPoliciesMiB = mgr.RSSMiB()

	clusters := []*testbed.Cluster{bed.Hub, bed.Member("member-1"), bed.Member("member-2"), bed.Member("member-3")}

	step("%d policy changes, one at a time (a rule's port)", changes)
	before, err := benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	cpu0 := benchkit.CPUSeconds(mgr.PID())
	profiled := profile(ctx, pprofAddr, 20*time.Second, "policy-manager-cpu.pprof")
	var policySamples []time.Duration
	for k := range changes {
		i := (k * 7) % policies
		port := int32(20000 + k)
		changed := time.Now()
		if err := setPort(ctx, bed.Hub.Client, policyName(i), port); err != nil {
			return err
		}
		marker := fmt.Sprint(port)
		got, err := waitAll(ctx, func(m string) time.Time { return watches[m].policyAt(policyName(i), marker, true, changed) })
		if err != nil {
			return fmt.Errorf("policy change %d (%s to port %d): %w", k, policyName(i), port, err)
		}
		for _, t := range got {
			policySamples = append(policySamples, t.Sub(changed))
		}
	}
	r.ManagerCPUSecond = benchkit.CPUSeconds(mgr.PID()) - cpu0
	if err := <-profiled; err != nil {
		step("No CPU profile of the manager: %v", err)
	}
	time.Sleep(3 * time.Second) // status writes of the last change
	after, err := benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	hub, member := attribute(before, after)
	r.MemberWrites, r.HubWrites = member/float64(changes*len(members)), hub/float64(changes)
	r.PolicyP50Ms, r.PolicyP99Ms, r.PolicyMaxMs = benchkit.Percentile(policySamples, 50), benchkit.Percentile(policySamples, 99), benchkit.Percentile(policySamples, 100)

	step("Baseline: %d changes written directly as ClusterWorks (a ConfigMap in each member)", changes)
	if err := baselineWorks(ctx, bed.Hub.Client, 0); err != nil {
		return err
	}
	if _, err := waitAll(ctx, func(m string) time.Time { return watches[m].configMapAt("0", time.Time{}) }); err != nil {
		return fmt.Errorf("baseline ConfigMaps: %w", err)
	}
	time.Sleep(3 * time.Second)
	before, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	cpu0 = benchkit.CPUSeconds(mgr.PID())
	var baseSamples []time.Duration
	for k := 1; k <= changes; k++ {
		changed := time.Now()
		if err := baselineWorks(ctx, bed.Hub.Client, k); err != nil {
			return err
		}
		got, err := waitAll(ctx, func(m string) time.Time { return watches[m].configMapAt(fmt.Sprint(k), changed) })
		if err != nil {
			return fmt.Errorf("baseline change %d: %w", k, err)
		}
		for _, t := range got {
			baseSamples = append(baseSamples, t.Sub(changed))
		}
	}
	r.BaselineCPUSecond = benchkit.CPUSeconds(mgr.PID()) - cpu0
	time.Sleep(3 * time.Second)
	after, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	hubAll, memberAll := attributeBaseline(before, after)
	r.BaselineHubWrites, r.BaselineMemberW = hubAll/float64(changes), memberAll/float64(changes*len(members))
	r.BaselineP50Ms, r.BaselineP99Ms, r.BaselineMaxMs = benchkit.Percentile(baseSamples, 50), benchkit.Percentile(baseSamples, 99), benchkit.Percentile(baseSamples, 100)

	step("%d pod changes in ClusterSet peers (a Deployment scaled up or down by one)", churn)
	before, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	var churnSamples []time.Duration
	peers := peerApps(policies, apps)
	for k := range churn {
		a := peers[k%len(peers)]
		src := home(a)
		up := replicas[a] == pods/apps || replicas[a] < pods/apps
		want := replicas[a] + 1
		if !up {
			want = replicas[a] - 1
		}
		changed := time.Now()
		if err := scale(ctx, bed.Member(src).Client, app(a), int32(want)); err != nil {
			return err
		}
		replicas[a] = want
		var ip string
		var t0 time.Time
		if err := benchkit.WaitFor(ctx, 2*time.Minute, 20*time.Millisecond, func() (bool, error) {
			ip, t0 = watches[src].podChange(app(a), up, changed)
			return ip != "", nil
		}); err != nil {
			return fmt.Errorf("pod change %d (%s in %s): %w", k, app(a), src, err)
		}
		var others []string
		for _, m := range members {
			if m != src {
				others = append(others, m)
			}
		}
		// Every policy whose ClusterSet peer selects the app follows the pod in the other members.
		for _, i := range policiesPeering(a, policies, apps) {
			for _, m := range others {
				var at time.Time
				if err := benchkit.WaitFor(ctx, 2*time.Minute, 20*time.Millisecond, func() (bool, error) {
					at = watches[m].addressAt(policyName(i), ip, up, t0)
					return !at.IsZero(), nil
				}); err != nil {
					return fmt.Errorf("pod change %d: %s in %s %s %s: %w", k, policyName(i), m, map[bool]string{true: "gains", false: "loses"}[up], ip, err)
				}
				churnSamples = append(churnSamples, at.Sub(t0))
			}
		}
	}
	time.Sleep(3 * time.Second)
	after, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	hub, member = attribute(before, after)
	r.ChurnHubWrites, r.ChurnMemberW = hub/float64(churn), member/float64(churn*len(members))
	r.ChurnSamples = len(churnSamples)
	r.ChurnP50Ms, r.ChurnP99Ms, r.ChurnMaxMs = benchkit.Percentile(churnSamples, 50), benchkit.Percentile(churnSamples, 99), benchkit.Percentile(churnSamples, 100)

	step("%d s of steady state", steady)
	time.Sleep(5 * time.Second)
	before, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	time.Sleep(time.Duration(steady) * time.Second)
	after, err = benchkit.WriteSnapshot(ctx, clusters)
	if err != nil {
		return err
	}
	r.SteadyHubWrites, r.SteadyMemberW = attribute(before, after)
	r.Load = loadAverage()

	printTable(r)
	return benchkit.WriteJSON("policy.json", r)
}

// profile fetches a CPU profile of the manager over d into bench/out/<name>, in the background.
func profile(ctx context.Context, addr string, d time.Duration, name string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("pprof answered %s", resp.Status)
			}
			dir, err := benchkit.OutDir()
			if err != nil {
				return err
			}
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(f, resp.Body)
			return err
		}()
	}()
	return done
}

func app(a int) string         { return fmt.Sprintf("app-%02d", a) }
func home(a int) string        { return members[a%len(members)] }
func policyName(i int) string  { return fmt.Sprintf("pol-%03d", i) }
func hasClusterSet(i int) bool { return i%4 == 0 }

// peerOf is the app policy i's rule names as its peer.
func peerOf(i, apps int) int { return (i + 1) % apps }

// gnp i applies to app i%apps in every member, in one of three tiers, with one rule on one port:
// every fourth an egress Allow to a ClusterSet peer, the others an ingress Allow from, or an
// egress Drop to, a peer of the member's own pods.
func gnp(i, apps int) *policyv1alpha1.GlobalNetworkPolicy {
	tiers := []string{policyv1alpha1.TierSecurityOps, policyv1alpha1.TierPlatform, policyv1alpha1.TierApplication}
	peer := policyv1alpha1.Peer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app(peerOf(i, apps))}}}
	rule := policyv1alpha1.Rule{Name: "r", Action: policyv1alpha1.ActionAllow, Ports: []policyv1alpha1.Port{{Port: ptr.To(intstr.FromInt32(int32(1000 + i)))}}}
	g := &policyv1alpha1.GlobalNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName(i)},
		Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Tier: tiers[i%3], Priority: ptr.To(int32(i)),
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app(i % apps)}}},
		},
	}
	switch {
	case hasClusterSet(i):
		peer.Scope = policyv1alpha1.ScopeClusterSet
		rule.Peers = []policyv1alpha1.Peer{peer}
		g.Spec.Egress = []policyv1alpha1.Rule{rule}
	case i%4 == 1:
		rule.Action = policyv1alpha1.ActionDrop
		rule.Peers = []policyv1alpha1.Peer{peer}
		g.Spec.Egress = []policyv1alpha1.Rule{rule}
	default:
		rule.Peers = []policyv1alpha1.Peer{peer}
		g.Spec.Ingress = []policyv1alpha1.Rule{rule}
	}
	return g
}

// peerApps are the apps some ClusterSet peer selects.
func peerApps(policies, apps int) []int {
	seen := map[int]bool{}
	var out []int
	for i := range policies {
		if hasClusterSet(i) && !seen[peerOf(i, apps)] {
			seen[peerOf(i, apps)] = true
			out = append(out, peerOf(i, apps))
		}
	}
	return out
}

func policiesPeering(a, policies, apps int) []int {
	var out []int
	for i := range policies {
		if hasClusterSet(i) && peerOf(i, apps) == a {
			out = append(out, i)
		}
	}
	return out
}

func setPort(ctx context.Context, c client.Client, name string, port int32) error {
	g := &policyv1alpha1.GlobalNetworkPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, g); err != nil {
		return err
	}
	for _, rules := range [][]policyv1alpha1.Rule{g.Spec.Ingress, g.Spec.Egress} {
		for i := range rules {
			rules[i].Ports = []policyv1alpha1.Port{{Port: ptr.To(intstr.FromInt32(port))}}
		}
	}
	return c.Update(ctx, g)
}

// installForms gives each member its policy API: Antrea's CRDs, the upstream
// ClusterNetworkPolicy's, Meridian's MemberNetworkPolicy's.
func installForms(bed *testbed.Bed) error {
	dir := filepath.Join(bed.Dir(), "policy-crds")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	antreaCRDs := filepath.Join(dir, "antrea.yaml")
	if err := os.WriteFile(antreaCRDs, antrea.CRDs, 0o600); err != nil {
		return err
	}
	npa, err := testbed.ModuleDir("sigs.k8s.io/network-policy-api")
	if err != nil {
		return err
	}
	for m, path := range map[string]string{
		"member-1": antreaCRDs,
		"member-2": filepath.Join(npa, "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml"),
		"member-3": filepath.Join(testbed.RepoRoot(), "config", "crd", "member", "member.meridian.io_membernetworkpolicies.yaml"),
	} {
		if _, err := envtest.InstallCRDs(bed.Member(m).Config, envtest.CRDInstallOptions{Paths: []string{path}, ErrorIfPathMissing: true}); err != nil {
			return fmt.Errorf("install %s in %s: %w", filepath.Base(path), m, err)
		}
	}
	return nil
}

// baselineWorks writes, in every member's hub namespace, a ClusterWork holding a ConfigMap whose
// value is v: the same path a policy's objects take, without the policy controller.
func baselineWorks(ctx context.Context, c client.Client, v int) error {
	for _, m := range members {
		cm := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"default","name":"bench-baseline"},"data":{"v":"%d"}}`, v)
		w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + m, Name: "bench-baseline"}}
		spec := fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{{RawExtension: runtime.RawExtension{Raw: []byte(cm)}}}}
		if v == 0 {
			w.Spec = spec
			if err := c.Create(ctx, w); err != nil {
				return err
			}
			continue
		}
		// A merge patch: the work engine writes the Work's finalizer and status meanwhile.
		patch := fmt.Sprintf(`{"spec":{"objects":[%s]}}`, cm)
		if err := c.Patch(ctx, w, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
			return err
		}
	}
	return nil
}

// waitAll waits until at(member) is set for every member and returns those times.
func waitAll(ctx context.Context, at func(member string) time.Time) ([]time.Time, error) {
	got := map[string]time.Time{}
	err := benchkit.WaitFor(ctx, 2*time.Minute, 10*time.Millisecond, func() (bool, error) {
		for _, m := range members {
			if got[m].IsZero() {
				got[m] = at(m)
			}
		}
		for _, m := range members {
			if got[m].IsZero() {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var missing []string
		for _, m := range members {
			if got[m].IsZero() {
				missing = append(missing, m)
			}
		}
		return nil, fmt.Errorf("not in %s: %w", strings.Join(missing, ", "), err)
	}
	out := make([]time.Time, 0, len(got))
	for _, t := range got {
		out = append(out, t)
	}
	return out, nil
}

func deployment(ctx context.Context, c client.Client, name string, replicas int32) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})
	if client.IgnoreAlreadyExists(err) != nil {
		return err
	}
	labels := map[string]string{"app": name}
	return c.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	})
}

func scale(ctx context.Context, c client.Client, name string, replicas int32) error {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	return c.Patch(ctx, d, client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))))
}

// memberWatch keeps, from watches on one member, every version of the policy objects and of
// the baseline ConfigMap, and the pods' addresses, timestamped on arrival.
type memberWatch struct {
	mu       sync.Mutex
	objects  map[string][]version // policy object name -> versions
	config   []version
	pods     map[string]podState // namespace/name
	podsGone []podState
}

type version struct {
	at   time.Time
	spec string
}

type podState struct {
	app, ip string
	seen    time.Time // when the address was first seen
	gone    time.Time
}

func watch(ctx context.Context, c *testbed.Cluster, form schema.GroupVersionResource) (*memberWatch, error) {
	w := &memberWatch{objects: map[string][]version{}, pods: map[string]podState{}}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	pol := dynamicinformer.NewFilteredDynamicInformer(dyn, form, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	recordPolicy := func(o any) {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return
		}
		spec := fmt.Sprint(u.Object["spec"])
		w.mu.Lock()
		w.objects[u.GetName()] = append(w.objects[u.GetName()], version{at: time.Now(), spec: spec})
		w.mu.Unlock()
	}
	_, _ = pol.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: recordPolicy, UpdateFunc: func(_, o any) { recordPolicy(o) }})
	f := informers.NewSharedInformerFactory(cs, 0)
	cms := f.Core().V1().ConfigMaps().Informer()
	recordCM := func(o any) {
		cm, ok := o.(*corev1.ConfigMap)
		if !ok || cm.Name != "bench-baseline" {
			return
		}
		w.mu.Lock()
		w.config = append(w.config, version{at: time.Now(), spec: cm.Data["v"]})
		w.mu.Unlock()
	}
	_, _ = cms.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: recordCM, UpdateFunc: func(_, o any) { recordCM(o) }})
	podInf := f.Core().V1().Pods().Informer()
	recordPod := func(o any) {
		p, ok := o.(*corev1.Pod)
		if !ok || p.Namespace != namespace || p.Status.PodIP == "" {
			return
		}
		w.mu.Lock()
		if _, ok := w.pods[p.Name]; !ok {
			w.pods[p.Name] = podState{app: p.Labels["app"], ip: p.Status.PodIP, seen: time.Now()}
		}
		w.mu.Unlock()
	}
	_, _ = podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: recordPod, UpdateFunc: func(_, o any) { recordPod(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			p, ok := o.(*corev1.Pod)
			if !ok {
				return
			}
			w.mu.Lock()
			if s, ok := w.pods[p.Name]; ok {
				s.gone = time.Now()
				w.podsGone = append(w.podsGone, s)
				delete(w.pods, p.Name)
			}
			w.mu.Unlock()
		},
	})
	go pol.Run(ctx.Done())
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pol.HasSynced, cms.HasSynced, podInf.HasSynced) {
		return nil, errors.New("member informers did not sync")
	}
	return w, nil
}

func (w *memberWatch) runningPods() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pods)
}

// owned says whether a member object belongs to the policy: meridian-<policy>, its chunks
// meridian-<policy>-<n>, or <policy> for Meridian's own form.
func owned(object, policy string) bool {
	return object == policy || object == "meridian-"+policy || strings.HasPrefix(object, "meridian-"+policy+"-")
}

// policyAt is the first time after `after` that an object of the policy had (want) or no longer
// had (!want) marker in its spec; zero if not yet.
func (w *memberWatch) policyAt(policy, marker string, want bool, after time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	for name, versions := range w.objects {
		if !owned(name, policy) {
			continue
		}
		for _, v := range versions {
			if !v.at.Before(after) && strings.Contains(v.spec, marker) == want {
				if first.IsZero() || v.at.Before(first) {
					first = v.at
				}
				break
			}
		}
	}
	return first
}

// addressAt is when the policy's objects gained (or lost) ip after `after`.
func (w *memberWatch) addressAt(policy, ip string, gained bool, after time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var latest []version
	for name, versions := range w.objects {
		if owned(name, policy) {
			latest = append(latest, versions...)
		}
	}
	sort.Slice(latest, func(a, b int) bool { return latest[a].at.Before(latest[b].at) })
	for _, v := range latest {
		if !v.at.Before(after) && hasIP(v.spec, ip) == gained {
			return v.at
		}
	}
	return time.Time{}
}

// hasIP finds ip in a printed spec as a whole address (not the prefix of a longer one).
func hasIP(spec, ip string) bool {
	for i := 0; ; {
		j := strings.Index(spec[i:], ip)
		if j < 0 {
			return false
		}
		end := i + j + len(ip)
		if end == len(spec) || spec[end] < '0' || spec[end] > '9' {
			return true
		}
		i = end
	}
}

func (w *memberWatch) configMapAt(v string, after time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.config {
		if !c.at.Before(after) && c.spec == v {
			return c.at
		}
	}
	return time.Time{}
}

// podChange finds, after `after`, a new pod address of app (up) or a pod of app that went; it
// returns the address and when.
func (w *memberWatch) podChange(app string, up bool, after time.Time) (string, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if up {
		for _, p := range w.pods {
			if p.app == app && p.seen.After(after) {
				return p.ip, p.seen
			}
		}
		return "", time.Time{}
	}
	for _, p := range w.podsGone {
		if p.app == app && p.gone.After(after) {
			return p.ip, p.gone
		}
	}
	return "", time.Time{}
}

// policyResources are what the policy controller writes in members.
var policyResources = map[string]bool{
	antrea.Group + "/clusternetworkpolicies": true, antrea.Group + "/tiers": true,
	"policy.networking.k8s.io/clusternetworkpolicies": true, "member.meridian.io/membernetworkpolicies": true,
	"networking.k8s.io/networkpolicies": true,
}

// attribute counts the policy path's writes between two snapshots (hub first): on the hub the
// ClusterWorks (their spec and status) and the policies' status, in members the policy objects.
func attribute(before, after []map[string]float64) (hub, members float64) {
	for i := range after {
		for k, v := range testbed.DiffWrites(before[i], after[i]) {
			_, resource, _ := strings.Cut(k, " ")
			if i == 0 {
				if resource == "fleet.meridian.io/clusterworks" || resource == "policy.meridian.io/globalnetworkpolicies" {
					hub += v
				}
				continue
			}
			if policyResources[resource] {
				members += v
			}
		}
	}
	return hub, members
}

// attributeBaseline counts the baseline's writes: ClusterWorks on the hub, ConfigMaps in members.
func attributeBaseline(before, after []map[string]float64) (hub, members float64) {
	for i := range after {
		for k, v := range testbed.DiffWrites(before[i], after[i]) {
			_, resource, _ := strings.Cut(k, " ")
			if i == 0 && resource == "fleet.meridian.io/clusterworks" {
				hub += v
			}
			if i > 0 && resource == "/configmaps" {
				members += v
			}
		}
	}
	return hub, members
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func printTable(r result) {
	fmt.Printf("\n%d pods, %d GlobalNetworkPolicies (%d with ClusterSet peers), %d live members (%s); load average %s\n",
		r.Pods, r.Policies, r.ClusterSetPolicies, r.Clusters, r.Forms, r.Load)
	row := func(what string, v, base string) { fmt.Printf("%-56s %12s %12s\n", what, v, base) }
	ms := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	f2 := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	row("", "policy", "baseline")
	row("seconds until every policy is applied everywhere", fmt.Sprintf("%.1f", r.ConvergeSeconds), "")
	row(fmt.Sprintf("hub change -> member object, p50 ms (%d changes x %d)", r.Changes, r.Clusters), ms(r.PolicyP50Ms), ms(r.BaselineP50Ms))
	row("hub change -> member object, p99 ms (target 500)", ms(r.PolicyP99Ms), ms(r.BaselineP99Ms))
	row("hub change -> member object, max ms", ms(r.PolicyMaxMs), ms(r.BaselineMaxMs))
	row("member writes per change per member", f2(r.MemberWrites), f2(r.BaselineMemberW))
	row("hub writes per change (ClusterWorks, policy status)", f2(r.HubWrites), f2(r.BaselineHubWrites))
	row("manager CPU seconds over the changes", f2(r.ManagerCPUSecond), f2(r.BaselineCPUSecond))
	row(fmt.Sprintf("pod change -> peers in other members, p50 ms (%d)", r.ChurnSamples), ms(r.ChurnP50Ms), ms(r.BaselineP50Ms))
	row("pod change -> peers in other members, p99 ms", ms(r.ChurnP99Ms), ms(r.BaselineP99Ms))
	row("pod change -> peers in other members, max ms", ms(r.ChurnMaxMs), ms(r.BaselineMaxMs))
	row("member writes per pod change per member", f2(r.ChurnMemberW), "")
	row("hub writes per pod change", f2(r.ChurnHubWrites), "")
	row(fmt.Sprintf("writes in %d s of steady state (hub / members)", r.SteadySeconds), fmt.Sprintf("%.0f / %.0f", r.SteadyHubWrites, r.SteadyMemberW), "0 / 0")
	row("manager RSS MiB: idle / with pods / with policies", fmt.Sprintf("%.0f / %.0f / %.0f", r.RSSIdleMiB, r.RSSPodsMiB, r.RSSPoliciesMiB), "")
}

// appliedEverywhere: every member holds the translated objects. Antrea's and the upstream
// ClusterNetworkPolicy's members are Realized once applied (no implementation runs to report);
// member-3's Meridian form waits for agents, which this bench does not run, so applied there reads
// as Pending with the agents awaited.
func appliedEverywhere(clusters []policyv1alpha1.ClusterPolicyStatus) bool {
	for _, c := range clusters {
		if c.Phase != policyv1alpha1.PhaseRealized && !compile.AwaitingAgents(c) {
			return false
		}
	}
	return true
}
