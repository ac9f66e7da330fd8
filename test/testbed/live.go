package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// MemberOptions set up one member. A member without options is bare: an apiserver and etcd only.
type MemberOptions struct {
	// Live makes the member behave like a cluster: beside its apiserver and etcd it runs
	// kube-controller-manager, kube-scheduler and kwok, which simulates the kubelets of Nodes
	// the test bed creates. Deployments, DaemonSets, pod IPs, EndpointSlices and node heartbeats
	// then come from Kubernetes' own controllers.
	Live bool
	// Nodes is the number of Nodes of a live member; default 3.
	Nodes int
	// NodeLabels are set on every Node of a live member, beside kubernetes.io/hostname, os and arch.
	NodeLabels map[string]string
	// PodCIDR holds every pod IP of a live member; default the member's own /20 of
	// 198.18.0.0/16, by its place among the bed's live members. Set it for more than 4,096 pods.
	PodCIDR string
}

// Live is what a live member runs and simulates.
type Live struct {
	// PodCIDR holds every pod IP of the member; the node-ipam controller gives each Node a part.
	PodCIDR netip.Prefix
	// ServiceCIDR holds the member's Service cluster IPs.
	ServiceCIDR netip.Prefix
	// NodeCIDR holds the InternalIPs of the member's Nodes.
	NodeCIDR netip.Prefix
	// Nodes names the member's simulated Nodes.
	Nodes []string

	labels   map[string]string
	nodeMask int
	dir      string
	out      io.Writer
	procs    []*process
}

// Live members' networks, each member a slot of these ranges inside 198.18.0.0/15 (reserved for
// benchmarking, RFC 2544), so that no address collides across members or with the host.
var (
	livePodRange     = netip.MustParsePrefix("198.18.0.0/16")   // a /20 per member
	liveServiceRange = netip.MustParsePrefix("198.19.0.0/20")   // a /24 per member
	liveNodeRange    = netip.MustParsePrefix("198.19.128.0/17") // a /21 per member
)

const (
	maxLiveMembers = 16
	maxLiveNodes   = 2000 // a /21 of node addresses

	// kwokNodeAnnotation marks the Nodes kwok simulates (kwok's own convention), so that a real
	// kubelet could join the same member later without kwok taking its Node.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// notReadyLabel turns on kwok's node-not-ready chaos stage for a Node.
	notReadyLabel = "node-not-ready.stage.kwok.x-k8s.io"

	// The client rates of the member's controller-manager and scheduler, so that a member with
	// 1,000 Nodes and 10,000 pods is bound by CPU rather than by their defaults (20 and 50 QPS).
	liveQPS   = 100
	liveBurst = 200
)

// liveControllers are the controllers a live member runs: the ones that turn workloads into pods,
// pods into endpoints, and heartbeats into node health, and the ones that clean up after them.
var liveControllers = []string{
	"node-lifecycle-controller", "node-ipam-controller", "taint-eviction-controller",
	"daemonset-controller", "deployment-controller", "replicaset-controller",
	"statefulset-controller", "job-controller",
	"endpointslice-controller", "endpoints-controller",
	"namespace-controller", "garbage-collector-controller", "pod-garbage-collector-controller",
	"serviceaccount-controller", "serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
}

// planLive checks the member options and the binaries live members run, and gives each live
// member its networks and Node names.
func planLive(opts Options, dir string) (map[string]*Live, error) {
	out, err := planNetworks(opts, dir)
	if err != nil || len(out) == 0 {
		return out, err
	}
	for _, bin := range []string{"kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(BinDir(), bin)); err != nil {
			return nil, fmt.Errorf("%s is not built in %s; live members need it: run `make test-tools` first: %w", bin, BinDir(), err)
		}
	}
	return out, nil
}

func planNetworks(opts Options, dir string) (map[string]*Live, error) {
	out := map[string]*Live{}
	for name := range opts.MemberOptions {
		if !slices.Contains(opts.Members, name) {
			return nil, fmt.Errorf("MemberOptions name %q, which is not in Members %v", name, opts.Members)
		}
	}
	slot := 0
	for _, name := range opts.Members {
		mo, ok := opts.MemberOptions[name]
		if !ok || !mo.Live {
			if ok && (mo.Nodes != 0 || len(mo.NodeLabels) != 0 || mo.PodCIDR != "") {
				return nil, fmt.Errorf("member %s: Nodes, NodeLabels and PodCIDR need Live", name)
			}
			continue
		}
		if slot == maxLiveMembers {
			return nil, fmt.Errorf("member %s: the test bed gives networks to at most %d live members", name, maxLiveMembers)
		}
		if mo.Nodes == 0 {
			mo.Nodes = 3
		}
		if mo.Nodes < 0 || mo.Nodes > maxLiveNodes {
			return nil, fmt.Errorf("member %s: Nodes must be within 1..%d, not %d", name, maxLiveNodes, mo.Nodes)
		}
		l := &Live{
			PodCIDR:     subPrefix(livePodRange, 20, slot),
			ServiceCIDR: subPrefix(liveServiceRange, 24, slot),
			NodeCIDR:    subPrefix(liveNodeRange, 21, slot),
			labels:      mo.NodeLabels,
			dir:         filepath.Join(dir, name),
			out:         opts.Output,
		}
		slot++
		if mo.PodCIDR != "" {
			p, err := netip.ParsePrefix(mo.PodCIDR)
			if err != nil || !p.Addr().Is4() || p != p.Masked() {
				return nil, fmt.Errorf("member %s: PodCIDR %q is not an IPv4 network address with a prefix length", name, mo.PodCIDR)
			}
			l.PodCIDR = p
		}
		// Each Node gets the largest power-of-two share of the pod range, at most a /24 as
		// kube-controller-manager's default, and at least 16 addresses.
		l.nodeMask = max(24, l.PodCIDR.Bits()+bits.Len(uint(mo.Nodes-1)))
		if l.nodeMask > 28 {
			return nil, fmt.Errorf("member %s: PodCIDR %s is too small for %d Nodes with 16 pod IPs each; set a larger MemberOptions.PodCIDR", name, l.PodCIDR, mo.Nodes)
		}
		for i := 1; i <= mo.Nodes; i++ {
			l.Nodes = append(l.Nodes, fmt.Sprintf("%s-node-%d", name, i))
		}
		out[name] = l
	}
	for a, la := range out {
		for b, lb := range out {
			if a < b && la.PodCIDR.Overlaps(lb.PodCIDR) {
				return nil, fmt.Errorf("the pod CIDRs of members %s (%s) and %s (%s) overlap", a, la.PodCIDR, b, lb.PodCIDR)
			}
		}
	}
	return out, nil
}

// subPrefix returns the i-th network of the given length inside p.
func subPrefix(p netip.Prefix, length, i int) netip.Prefix {
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(i) << (32 - length)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), length)
}

// nodeIP is the InternalIP of the i-th (0-based) Node.
func (l *Live) nodeIP(i int) netip.Addr {
	a := l.NodeCIDR.Addr()
	for range i + 1 {
		a = a.Next()
	}
	return a
}

// configure sets the apiserver flags a live member needs.
func (l *Live) configure(env *envtest.Environment) {
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("service-cluster-ip-range", l.ServiceCIDR.String())
	// By default a stopping apiserver waits up to a minute for its clients' watches to end, and
	// the controller-manager, scheduler and kwok never end theirs: StopAPIServer would time out.
	// In this mode it drains the short requests, then closes the connections within 2 s.
	args.Set("shutdown-send-retry-after", "true")
}

// startLive creates the member's Nodes, starts its controller-manager, scheduler and kwok, and
// returns when every Node is Ready, has its pod CIDR and is free of the not-ready taint.
func (c *Cluster) startLive(ctx context.Context) error {
	l := c.Live
	stages, err := kwokStages()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(l.dir, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfig, c.Kubeconfig, 0o600); err != nil {
		return err
	}
	caFile := filepath.Join(l.dir, "ca.crt")
	if err := os.WriteFile(caFile, c.Config.CAData, 0o600); err != nil {
		return err
	}
	if err := c.createNodes(ctx); err != nil {
		return err
	}

	apiCertDir := c.env.ControlPlane.APIServer.CertDir
	kcm := []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=" + strings.Join(liveControllers, ","),
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + l.PodCIDR.String(),
		"--node-cidr-mask-size=" + strconv.Itoa(l.nodeMask),
		"--service-cluster-ip-range=" + l.ServiceCIDR.String(),
		// envtest writes the key the apiserver verifies service-account tokens with.
		"--service-account-private-key-file=" + filepath.Join(apiCertDir, "sa-signer.key"),
		"--root-ca-file=" + caFile,
		"--kube-api-qps=" + strconv.Itoa(liveQPS),
		"--kube-api-burst=" + strconv.Itoa(liveBurst),
	}
	schedulerConfig := filepath.Join(l.dir, "kube-scheduler.yaml")
	if err := os.WriteFile(schedulerConfig, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: %d
  burst: %d
leaderElection:
  leaderElect: false
`, kubeconfig, liveQPS, liveBurst), 0o600); err != nil {
		return err
	}
	scheduler := []string{"--config=" + schedulerConfig, "--secure-port=0"}
	kwok := []string{
		"--kubeconfig=" + kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		// Pods get IPs from their Node's spec.podCIDR; this is the fallback before it is set.
		"--cidr=" + l.PodCIDR.String(),
		"--node-lease-duration-seconds=40",
	}
	for _, s := range stages {
		kwok = append(kwok, "--config="+s)
	}
	// KWOK_WORKDIR keeps kwok from reading a kwok.yaml in the user's home.
	kwokEnv := []string{"KWOK_WORKDIR=" + filepath.Join(l.dir, "kwok")}

	for _, p := range []struct {
		name string
		args []string
		env  []string
	}{
		{"kube-controller-manager", kcm, nil},
		{"kube-scheduler", scheduler, nil},
		{"kwok", kwok, kwokEnv},
	} {
		proc, err := startProcess(c.Name, filepath.Join(BinDir(), p.name), p.args, p.env, l.out)
		if err != nil {
			return err
		}
		l.procs = append(l.procs, proc)
	}
	return c.waitNodesReady(ctx)
}

// createNodes creates the Node objects kwok simulates, with the InternalIPs a kubelet would report.
func (c *Cluster) createNodes(ctx context.Context) error {
	l := c.Live
	cl, err := c.unthrottledClient()
	if err != nil {
		return err
	}
	return forEach(ctx, len(l.Nodes), func(i int) error {
		name := l.Nodes[i]
		labels := map[string]string{
			corev1.LabelHostname:   name,
			corev1.LabelOSStable:   "linux",
			corev1.LabelArchStable: "amd64",
		}
		for k, v := range l.labels {
			labels[k] = v
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{kwokNodeAnnotation: "fake"},
		}}
		if err := cl.Create(ctx, node); err != nil {
			return fmt.Errorf("create Node %s in %s: %w", name, c.Name, err)
		}
		// A kubelet reports its addresses and capacity; kwok keeps what is already there.
		node.Status = corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: l.nodeIP(i).String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("16"),
				corev1.ResourceMemory: resource.MustParse("64Gi"),
				corev1.ResourcePods:   resource.MustParse("110"),
			},
		}
		node.Status.Allocatable = node.Status.Capacity
		if err := cl.Status().Update(ctx, node); err != nil {
			return fmt.Errorf("set the addresses of Node %s in %s: %w", name, c.Name, err)
		}
		return nil
	})
}

// waitNodesReady waits until every Node is Ready, untainted and has its pod CIDR, or a process
// of the member exits.
func (c *Cluster) waitNodesReady(ctx context.Context) error {
	l := c.Live
	timeout := time.Minute + time.Duration(len(l.Nodes))*100*time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := map[string]bool{}
	for _, n := range l.Nodes {
		want[n] = true
	}
	var last string
	for {
		for _, p := range l.procs {
			if err := p.exited(); err != nil {
				return fmt.Errorf("start live member %s: %w", c.Name, err)
			}
		}
		list := &corev1.NodeList{}
		if err := c.Client.List(ctx, list); err == nil {
			ready := 0
			for i := range list.Items {
				if want[list.Items[i].Name] && nodeUsable(&list.Items[i]) {
					ready++
				}
			}
			if ready == len(l.Nodes) {
				return nil
			}
			last = fmt.Sprintf("%d of %d Nodes are Ready, untainted and have a pod CIDR", ready, len(l.Nodes))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start live member %s: not ready within %s: %s", c.Name, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func nodeUsable(n *corev1.Node) bool {
	if n.Spec.PodCIDR == "" {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// SetNodeReady makes a Node of a live member NotReady (ready false) or Ready again. kwok's
// node-not-ready chaos stage turns the Node's Ready condition False within about 2 s, as a
// kubelet does when its node fails; the node-lifecycle controller then taints the Node
// not-ready (NoSchedule and NoExecute). Back to ready, kwok's node-initialize stage reports Ready
// again and the taints go.
func (c *Cluster) SetNodeReady(ctx context.Context, node string, ready bool) error {
	if c.Live == nil {
		return fmt.Errorf("make Node %s of %s NotReady: %w", node, c.Name, errNotLive)
	}
	value := `"true"`
	if ready {
		value = "null"
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%s}}}`, notReadyLabel, value)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := c.Client.Patch(ctx, n, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("set Node %s of %s ready=%t: %w", node, c.Name, ready, err)
	}
	return nil
}

// stopLive stops the member's controller-manager, scheduler and kwok.
func (c *Cluster) stopLive() error {
	if c.Live == nil {
		return nil
	}
	errs := make([]error, len(c.Live.procs))
	var wg sync.WaitGroup
	for i, p := range c.Live.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.stop()
		}()
	}
	wg.Wait()
	c.Live.procs = nil
	return errors.Join(errs...)
}

// unthrottledClient is a client of the cluster without client-side rate limits, to create many
// Nodes quickly.
func (c *Cluster) unthrottledClient() (client.Client, error) {
	cfg := *c.Config
	cfg.QPS, cfg.Burst = -1, 0
	return client.New(&cfg, client.Options{Scheme: c.Client.Scheme()})
}

// forEach runs f for 0..n-1 on a few goroutines and returns the first error.
func forEach(ctx context.Context, n int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(n, 16) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}
