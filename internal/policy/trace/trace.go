package trace

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
	"github.com/meridian-io/meridian/internal/placement"
	"github.com/meridian-io/meridian/internal/policy"
)

// NewScheme knows what trace reads: Kubernetes' kinds and Meridian's fleet and policy kinds.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, fleetv1alpha1.AddToScheme, policyv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Connector gives what trace uses of a member.
type Connector func(ctx context.Context, mc *fleetv1alpha1.MemberCluster) (*Member, error)

// MemberTimeout bounds each request to a member, so that one that is down fails the trace
// quickly with its name instead of hanging.
const MemberTimeout = 15 * time.Second

// SecretConnector reaches a member the way the manager does: with the kubeconfig in the Secret
// its MemberCluster names on the hub, read with the user's hub credentials. The same credentials
// read the node agents' counters through the member apiserver's pods/proxy.
func SecretConnector(hub client.Reader, scheme *runtime.Scheme) Connector {
	return func(ctx context.Context, mc *fleetv1alpha1.MemberCluster) (*Member, error) {
		ns, name, key := mc.KubeconfigSecret()
		if name == "" {
			return nil, fmt.Errorf("MemberCluster %s names no kubeconfig Secret", mc.Name)
		}
		s := &corev1.Secret{}
		if err := hub.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			if apierrors.IsForbidden(err) {
				return nil, fmt.Errorf("read the kubeconfig Secret %s/%s of MemberCluster %s: your hub user may not get Secrets in %s (see docs/policy.md, Trace): %w", ns, name, mc.Name, ns, err)
			}
			return nil, fmt.Errorf("read the kubeconfig Secret %s/%s of MemberCluster %s: %w", ns, name, mc.Name, err)
		}
		cfg, err := membercache.RESTConfigFromKubeconfig(s.Data[key])
		if err != nil {
			return nil, fmt.Errorf("MemberCluster %s: Secret %s/%s key %q: %w", mc.Name, ns, name, key, err)
		}
		cfg.Timeout = MemberTimeout
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, fmt.Errorf("connect to MemberCluster %s: %w", mc.Name, err)
		}
		get, err := proxyGetter(cfg)
		if err != nil {
			return nil, fmt.Errorf("connect to MemberCluster %s: %w", mc.Name, err)
		}
		return &Member{Reader: c, ProxyGet: get}, nil
	}
}

// Result is a traced connection.
type Result struct {
	Request      Request
	FromIP, ToIP string
	Decision     policy.Decision
	// Tiers and Policies that were evaluated, by name, for the path's priorities and the
	// deciding policies' status in the members.
	Tiers    map[string]*policyv1alpha1.Tier                `json:"-"`
	Policies map[string]*policyv1alpha1.GlobalNetworkPolicy `json:"-"`
	// Skipped lists the policies not evaluated (the manager does not enforce them either), with why.
	Skipped []string `json:",omitempty"`
	// Namespaces of the two pods, for the NetworkPolicy lines.
	FromNamespace, ToNamespace string `json:"-"`
	// EgressAgent and IngressAgent are, step by step of each side's path, the rule of the
	// nftables table of the node agent on that side's pod's node, with its counter, or why there
	// is none (docs/dataplane.md).
	EgressAgent  []AgentRule `json:",omitempty"`
	IngressAgent []AgentRule `json:",omitempty"`
	// EgressAgentDecision and IngressAgentDecision are, for a side the namespace's
	// NetworkPolicies or the default decided (no Meridian rule), the rule of the agent's table
	// that decides it (a NetworkPolicy allow rule, the NetworkPolicy isolation drop, the default
	// accept) with its counter, or why there is none.
	EgressAgentDecision  *AgentRule `json:",omitempty"`
	IngressAgentDecision *AgentRule `json:",omitempty"`
	// nodes are the two pods' nodes.
	nodes map[PodName]string
}

// Run traces one connection: it reads the hub's MemberClusters, Tiers and GlobalNetworkPolicies,
// and from the members of the two pods those pods, their namespaces and the NetworkPolicies of
// those namespaces, and decides the connection with the reference evaluator.
func Run(ctx context.Context, hub client.Reader, connect Connector, req Request) (*Result, error) {
	members, tiers, gnps := &fleetv1alpha1.MemberClusterList{}, &policyv1alpha1.TierList{}, &policyv1alpha1.GlobalNetworkPolicyList{}
	for _, l := range []struct {
		list client.ObjectList
		what string
	}{{members, "MemberClusters"}, {tiers, "Tiers"}, {gnps, "GlobalNetworkPolicies"}} {
		if err := hub.List(ctx, l.list); err != nil {
			return nil, fmt.Errorf("list %s on the hub: %w", l.what, err)
		}
	}
	res := &Result{Request: req, Tiers: map[string]*policyv1alpha1.Tier{}, Policies: map[string]*policyv1alpha1.GlobalNetworkPolicy{},
		FromNamespace: req.From.Namespace, ToNamespace: req.To.Namespace, nodes: map[PodName]string{}}
	connected := map[string]*Member{}

	fleet := policy.Fleet{}
	byName := map[string]*fleetv1alpha1.MemberCluster{}
	for i := range members.Items {
		mc := &members.Items[i]
		byName[mc.Name] = mc
		fleet.Clusters = append(fleet.Clusters, policy.Cluster{Name: mc.Name, Labels: mc.Labels})
	}
	for _, p := range []PodName{req.From, req.To} {
		if byName[p.Cluster] == nil {
			names := make([]string, 0, len(byName))
			for n := range byName {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("no MemberCluster %q on the hub (members: %s)", p.Cluster, strings.Join(names, ", "))
		}
	}
	for i := range tiers.Items {
		res.Tiers[tiers.Items[i].Name] = &tiers.Items[i]
	}
	fleet.Tiers = tiers.Items
	// The policies the manager compiles: not being deleted, in a tier that exists, with a valid
	// placement.
	for i := range gnps.Items {
		g := &gnps.Items[i]
		switch _, err := placement.Select(g.Spec.Placement, members.Items); {
		case !g.DeletionTimestamp.IsZero():
			res.Skipped = append(res.Skipped, g.Name+": being deleted")
		case res.Tiers[g.TierName()] == nil:
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: tier %q does not exist", g.Name, g.TierName()))
		case err != nil:
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: invalid placement: %v", g.Name, err))
		default:
			fleet.Policies = append(fleet.Policies, *g)
			res.Policies[g.Name] = g
		}
	}

	ends := []*PodName{&req.From, &req.To}
	for ci := range fleet.Clusters {
		c := &fleet.Clusters[ci]
		var here []*PodName
		for _, e := range ends {
			if e.Cluster == c.Name {
				here = append(here, e)
			}
		}
		if len(here) == 0 {
			continue
		}
		member, err := connect(ctx, byName[c.Name])
		if err != nil {
			return nil, err
		}
		connected[c.Name] = member
		if err := gather(ctx, member, c, here, res.nodes); err != nil {
			return nil, err
		}
	}
	for _, c := range fleet.Clusters {
		for _, p := range c.Pods {
			if c.Name == req.From.Cluster && p.Namespace == req.From.Namespace && p.Name == req.From.Name {
				res.FromIP = p.IP
			}
			if c.Name == req.To.Cluster && p.Namespace == req.To.Namespace && p.Name == req.To.Name {
				res.ToIP = p.IP
			}
		}
	}

	model, err := policy.NewModel(fleet)
	if err != nil {
		return nil, fmt.Errorf("build the fleet model: %w", err)
	}
	d, err := model.Evaluate(policy.Connection{
		From:     policy.Endpoint{Cluster: req.From.Cluster, Namespace: req.From.Namespace, Name: req.From.Name},
		To:       policy.Endpoint{Cluster: req.To.Cluster, Namespace: req.To.Namespace, Name: req.To.Name},
		Protocol: req.Port.Protocol,
		Port:     req.Port.Number,
	})
	if err != nil {
		return nil, err
	}
	res.Decision = d
	res.readAgents(ctx, connected)
	return res, nil
}

// gather reads from one member its pods among ends, their namespaces and those namespaces'
// NetworkPolicies into c, and the pods' nodes into nodes.
func gather(ctx context.Context, member *Member, c *policy.Cluster, ends []*PodName, nodes map[PodName]string) error {
	var namespaces []string
	for _, e := range ends {
		if slices.ContainsFunc(c.Pods, func(p policy.Pod) bool { return p.Namespace == e.Namespace && p.Name == e.Name }) {
			continue // the same pod at both ends
		}
		pod := &corev1.Pod{}
		if err := member.Get(ctx, client.ObjectKey{Namespace: e.Namespace, Name: e.Name}, pod); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("no pod %s in namespace %s of member cluster %s", e.Name, e.Namespace, e.Cluster)
			}
			return fmt.Errorf("get pod %s from member cluster %s: %w", e, e.Cluster, err)
		}
		switch {
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			return fmt.Errorf("pod %s has finished (phase %s): it holds no address", e, pod.Status.Phase)
		case pod.Status.PodIP == "":
			return fmt.Errorf("pod %s has no IP yet (phase %s): trace it once it is running", e, pod.Status.Phase)
		}
		c.Pods = append(c.Pods, podOf(pod))
		nodes[*e] = pod.Spec.NodeName
		if !slices.Contains(namespaces, e.Namespace) {
			namespaces = append(namespaces, e.Namespace)
		}
	}
	for _, name := range namespaces {
		ns := &corev1.Namespace{}
		if err := member.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			return fmt.Errorf("get namespace %s from member cluster %s: %w", name, c.Name, err)
		}
		c.Namespaces = append(c.Namespaces, policy.Namespace{Name: name, Labels: ns.Labels})
		nps := &networkingv1.NetworkPolicyList{}
		if err := member.List(ctx, nps, client.InNamespace(name)); err != nil {
			return fmt.Errorf("list NetworkPolicies of namespace %s in member cluster %s: %w", name, c.Name, err)
		}
		c.NetworkPolicies = append(c.NetworkPolicies, nps.Items...)
	}
	return nil
}

// podOf keeps of a pod what the evaluator reads: labels, address and named container ports.
func podOf(p *corev1.Pod) policy.Pod {
	out := policy.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, IP: p.Status.PodIP}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "" {
				continue
			}
			proto := policyv1alpha1.Protocol(cp.Protocol)
			if proto == "" {
				proto = policyv1alpha1.ProtocolTCP
			}
			out.Ports = append(out.Ports, policy.ContainerPort{Name: cp.Name, Protocol: proto, Port: cp.ContainerPort})
		}
	}
	return out
}
