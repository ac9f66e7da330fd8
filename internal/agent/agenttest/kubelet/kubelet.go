// Package kubelet plays, in tests, the demo and benchmarks, the parts of a node's kubelet that
// kwok does not play for Meridian's node agent: it runs one real agent per DaemonSet pod.
package kubelet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/agent/agenttest"
)

// The agent install's names (internal/agentconfig), repeated here so that this package does not
// depend on the hub's compiler.
const (
	agentName     = "meridian-node-agent"
	configMapName = "meridian-node-agent-config"
)

// Kubelet plays, for one member of the test bed, the parts of each node's kubelet that kwok does
// not play for the node agent's DaemonSet: for every running agent pod it requests the pod's
// service account token (bound to the pod, so it carries the node, as a projected token volume
// does), mounts the agent's ConfigMap into a folder per node the way the kubelet's atomic writer
// does (and keeps it in sync when the ConfigMap changes), and runs the agent (internal/agent, as
// cmd/node-agent's main runs it) as the container runtime would; a replaced pod's agent is
// stopped and a new one started. Agents run in this process, one per node.
type Kubelet struct {
	// Config reaches the member as an administrator (for pods, ConfigMap and token requests).
	Config *rest.Config
	// Dir holds a folder per node for the mounted config.
	Dir string
	// HostPrefix prefixes each agent's metrics bind address (the agents share the host network
	// in a real node; here each gets its own loopback address): HostPrefix + 2, 3, ...
	HostPrefix string
	// KnownGates is passed to each agent (nil: every gate of this build).
	KnownGates []string
	// Log receives the agents' logs; default io.Discard.
	Log io.Writer
	// Period between two looks at the member's pods and ConfigMap; default 250 ms.
	Period time.Duration

	mu     sync.Mutex
	agents map[string]*running
	held   map[string]bool
	hosts  map[string]string
	starts map[string]int
}

type running struct {
	pod    types.UID
	files  [32]byte
	cancel context.CancelFunc
	// exited is closed when the agent's Run returned, with its error in err.
	exited chan struct{}
	err    error
}

// Run plays the kubelets until ctx ends, then stops every agent.
func (k *Kubelet) Run(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		return err
	}
	if k.Period == 0 {
		k.Period = 250 * time.Millisecond
	}
	if k.Log == nil {
		k.Log = io.Discard
	}
	k.mu.Lock()
	k.agents, k.hosts, k.starts = map[string]*running{}, map[string]string{}, map[string]int{}
	if k.held == nil {
		k.held = map[string]bool{}
	}
	k.mu.Unlock()
	defer k.stopAll()
	t := time.NewTicker(k.Period)
	defer t.Stop()
	for {
		if err := k.sync(ctx, cs); err != nil && ctx.Err() == nil {
			fmt.Fprintf(k.Log, "kubelet: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Kill stops the node's agent and keeps it stopped (a crashed container not restarted) until Restart.
func (k *Kubelet) Kill(node string) {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]bool{}
	}
	k.held[node] = true
	r := k.agents[node]
	delete(k.agents, node)
	k.mu.Unlock()
	if r != nil {
		r.stop()
	}
}

// Restart lets the node's agent start again at the next look.
func (k *Kubelet) Restart(node string) {
	k.mu.Lock()
	delete(k.held, node)
	k.mu.Unlock()
}

// Starts says how many times the node's agent was started (a new pod starts a new agent).
func (k *Kubelet) Starts(node string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.starts[node]
}

// Running lists the nodes whose agent runs, sorted.
func (k *Kubelet) Running() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for n := range k.agents {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (k *Kubelet) sync(ctx context.Context, cs kubernetes.Interface) error {
	pods, err := cs.CoreV1().Pods(memberv1alpha1.AgentNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + agentName})
	if err != nil {
		return err
	}
	cm, err := cs.CoreV1().ConfigMaps(memberv1alpha1.AgentNamespace).Get(ctx, configMapName, metav1.GetOptions{})
	if err != nil {
		cm = nil // no config yet: pods cannot start (a kubelet waits for the volume too)
	}
	byNode := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != "" && p.DeletionTimestamp.IsZero() && p.Status.Phase == corev1.PodRunning {
			byNode[p.Spec.NodeName] = p
		}
	}
	k.mu.Lock()
	var stop []*running
	for node, r := range k.agents {
		if p := byNode[node]; p == nil || p.UID != r.pod || k.held[node] {
			stop = append(stop, r)
			delete(k.agents, node)
		}
	}
	k.mu.Unlock()
	for _, r := range stop {
		r.stop()
	}
	if cm == nil {
		return nil
	}
	files := map[string][]byte{}
	h := sha256.New()
	keys := make([]string, 0, len(cm.Data))
	for key := range cm.Data {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		files[key] = []byte(cm.Data[key])
		fmt.Fprintf(h, "%s\x00%s\x00", key, cm.Data[key])
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	for node, p := range byNode {
		k.mu.Lock()
		r, held := k.agents[node], k.held[node]
		k.mu.Unlock()
		if held {
			continue
		}
		dir := filepath.Join(k.Dir, node)
		if r != nil {
			select {
			case <-r.exited: // the container exited: a kubelet starts it again
				fmt.Fprintf(k.Log, "kubelet: the agent of node %s exited (%v); starting it again\n", node, r.err)
				k.mu.Lock()
				delete(k.agents, node)
				k.mu.Unlock()
				r = nil
			default:
			}
		}
		if r != nil {
			if r.files != sum { // the kubelet updates a mounted ConfigMap in place
				if err := agenttest.WriteConfigMapDir(dir, files); err != nil {
					return err
				}
				r.files = sum
			}
			continue
		}
		if err := agenttest.WriteConfigMapDir(dir, files); err != nil {
			return err
		}
		if err := k.start(ctx, cs, node, p, dir, sum); err != nil {
			return fmt.Errorf("start the agent of node %s: %w", node, err)
		}
	}
	return nil
}

func (k *Kubelet) start(ctx context.Context, cs kubernetes.Interface, node string, p *corev1.Pod, dir string, files [32]byte) error {
	tr, err := cs.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, p.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	cfg := rest.AnonymousClientConfig(k.Config)
	cfg.BearerToken = tr.Status.Token
	c, err := agent.NewClient(cfg)
	if err != nil {
		return err
	}
	k.mu.Lock()
	host := k.hosts[node]
	if host == "" {
		host = fmt.Sprintf("%s%d", k.HostPrefix, len(k.hosts)+2)
		k.hosts[node] = host
	}
	k.mu.Unlock()
	a, err := agent.New(agent.Options{
		NodeName: node, ConfigPath: filepath.Join(dir, agentfile.FileName), Version: p.Labels["app.kubernetes.io/version"],
		Client: c, MetricsHost: host, LogOutput: k.Log, KnownGates: k.KnownGates,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &running{pod: p.UID, files: files, cancel: cancel, exited: make(chan struct{})}
	go func() { r.err = a.Run(runCtx); close(r.exited) }()
	k.mu.Lock()
	k.agents[node] = r
	k.starts[node]++
	k.mu.Unlock()
	return nil
}

func (r *running) stop() {
	r.cancel()
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
	}
}

func (k *Kubelet) stopAll() {
	k.mu.Lock()
	all := k.agents
	k.agents = map[string]*running{}
	k.mu.Unlock()
	for _, r := range all {
		r.stop()
	}
}
