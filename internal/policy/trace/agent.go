package trace

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/agentconfig"
	"github.com/meridian-io/meridian/internal/policy"
)

// The node agent's side: its pods as the AgentConfig's DaemonSet labels and names them
// (internal/agentconfig), and its endpoint as the agent serves it (internal/agent: CountersPath,
// PodCounters), repeated here so that the plugin does not link the agent's dataplane.
const (
	agentCountersPath = "/dataplane/counters"
	agentLabel        = agentconfig.AppLabel
	agentName         = agentconfig.AgentName
	agentPortName     = "metrics"
)

// Member is what trace uses of a member cluster: a reader of its objects and, through its
// apiserver's pods/proxy, GET requests to its pods.
type Member struct {
	client.Reader
	// ProxyGet GETs path?query on a pod's port through the member apiserver's pods/proxy and
	// returns the body of a 2xx answer. Nil: the member's agents are not asked.
	ProxyGet func(ctx context.Context, namespace, pod string, port int32, path string, query url.Values) ([]byte, error)
}

// proxyGetter is ProxyGet through cfg's apiserver.
func proxyGetter(cfg *rest.Config) (func(context.Context, string, string, int32, string, url.Values) ([]byte, error), error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, namespace, pod string, port int32, path string, query url.Values) ([]byte, error) {
		params := map[string]string{}
		for k := range query {
			params[k] = query.Get(k)
		}
		return cs.CoreV1().Pods(namespace).ProxyGet("http", pod, strconv.Itoa(int(port)), path, params).DoRaw(ctx)
	}, nil
}

// AgentRule is, for one step of the path, the rule of the node agent's nftables table that
// stands for it, with what it counted, or why there is none.
type AgentRule struct {
	// Node is the pod's node; AgentPod the agent's pod there (namespace/name) when one was found.
	Node     string `json:"node,omitempty"`
	AgentPod string `json:"agentPod,omitempty"`
	// Mode is the agent's enforcement mode (Enforce or Audit).
	Mode string `json:"mode,omitempty"`
	// Rule is the agent's name of the step's rule: <tier>/<policy>/<direction>/<index>.
	Rule string `json:"rule"`
	// Found: the table holds the rule; Stage, Index, Action, Packets and Bytes are then the
	// table's (Index is the rule's position in its stage; Action as the table enforces it).
	Found   bool   `json:"found"`
	Stage   string `json:"stage,omitempty"`
	Index   int    `json:"index,omitempty"`
	Action  string `json:"action,omitempty"`
	Packets uint64 `json:"packets,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
	// Note says why nothing was read (no agent on the node, unreachable, no such rule) or how
	// the table disagrees with the reference.
	Note string `json:"note,omitempty"`
}

// agentCounters is the agent's answer (agent.PodCounters, its rules dataplane.RuleCounter).
type agentCounters struct {
	Node  string             `json:"node"`
	Mode  string             `json:"mode"`
	Pod   string             `json:"pod"`
	Rules []agentRuleCounter `json:"rules"`
}

// agentRuleCounter is one rule of the agent's answer (dataplane.RuleCounter).
type agentRuleCounter struct {
	Direction, Stage string
	Index            int
	Name             string
	Action           string
	Packets, Bytes   uint64
}

// agentRuleName is the name the node agent gives a GlobalNetworkPolicy's rule on a member
// (internal/agent/enforce: <tier>/<MemberNetworkPolicy>/<direction>/<index>; the
// MemberNetworkPolicy is named after the policy and keeps its rules in order), or "" when the
// policy has no rule of that name in that direction.
func agentRuleName(g *policyv1alpha1.GlobalNetworkPolicy, tier, direction, rule string) string {
	rules := g.Spec.Egress
	if direction == "ingress" {
		rules = g.Spec.Ingress
	}
	i := slices.IndexFunc(rules, func(r policyv1alpha1.Rule) bool { return r.Name == rule })
	if i < 0 {
		return ""
	}
	return memberv1alpha1.AgentRuleName(tier, g.Name, direction, i)
}

// readAgents fills, for each step of each side's path, the agent's rule and counter from the
// agent on the node of that side's pod. It never fails the trace: what it cannot read, it says in
// the AgentRule's Note.
func (r *Result) readAgents(ctx context.Context, members map[string]*Member) {
	for _, s := range []struct {
		dir  string
		side policy.Side
		pod  PodName
		out  *[]AgentRule
	}{{"egress", r.Decision.Egress, r.Request.From, &r.EgressAgent}, {"ingress", r.Decision.Ingress, r.Request.To, &r.IngressAgent}} {
		if len(s.side.Path) == 0 || s.side.Cluster == "" {
			continue
		}
		var names []string
		for _, st := range s.side.Path {
			name := ""
			if g := r.Policies[st.Policy]; g != nil {
				name = agentRuleName(g, st.Tier, s.dir, st.Rule)
			}
			names = append(names, name)
		}
		*s.out = readPodRules(ctx, members[s.pod.Cluster], s.pod, r.nodes[s.pod], s.dir, s.side.Path, names)
	}
}

// readPodRules asks the agent of node for pod's rules and picks those named.
func readPodRules(ctx context.Context, m *Member, pod PodName, node, dir string, path []policy.Step, names []string) []AgentRule {
	out := make([]AgentRule, len(path))
	for i := range out {
		out[i] = AgentRule{Node: node, Rule: names[i]}
	}
	fail := func(note string) []AgentRule {
		for i := range out {
			out[i].Note = note
		}
		return out
	}
	switch {
	case m == nil || m.ProxyGet == nil:
		return fail("the member's agents are not asked by this trace")
	case node == "":
		return fail(fmt.Sprintf("pod %s is on no node", pod))
	}
	agents := &corev1.PodList{}
	if err := m.List(ctx, agents, client.InNamespace(memberv1alpha1.AgentNamespace), client.MatchingLabels{agentLabel: agentName}); err != nil {
		return fail(fmt.Sprintf("list the node agents' pods in %s of %s: %v", memberv1alpha1.AgentNamespace, pod.Cluster, err))
	}
	var agent *corev1.Pod
	for i := range agents.Items {
		p := &agents.Items[i]
		if p.Spec.NodeName == node && p.DeletionTimestamp.IsZero() && (agent == nil || p.Status.Phase == corev1.PodRunning) {
			agent = p
		}
	}
	if agent == nil {
		return fail(fmt.Sprintf("%s runs no Meridian node agent on node %s (no pod %s=%s in %s there): no nftables rule to show", pod.Cluster, node, agentLabel, agentName, memberv1alpha1.AgentNamespace))
	}
	var port int32
	for _, c := range agent.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == agentPortName {
				port = p.ContainerPort
			}
		}
	}
	agentPod := agent.Namespace + "/" + agent.Name
	for i := range out {
		out[i].AgentPod = agentPod
	}
	if port == 0 {
		return fail(fmt.Sprintf("the agent's pod %s names no %q port", agentPod, agentPortName))
	}
	body, err := m.ProxyGet(ctx, agent.Namespace, agent.Name, port, agentCountersPath, url.Values{"pod": {pod.Namespace + "/" + pod.Name}})
	if err != nil {
		return fail(fmt.Sprintf("could not read the agent %s through %s's apiserver (pods/proxy, port %d): %v", agentPod, pod.Cluster, port, err))
	}
	var pc agentCounters
	if err := json.Unmarshal(body, &pc); err != nil {
		return fail(fmt.Sprintf("the agent %s answered what is not its counters: %v", agentPod, err))
	}
	for i, st := range path {
		out[i].Mode = pc.Mode
		if names[i] == "" {
			out[i].Note = fmt.Sprintf("policy %s has no %s rule %s on the hub now", st.Policy, dir, st.Rule)
			continue
		}
		j := slices.IndexFunc(pc.Rules, func(c agentRuleCounter) bool { return c.Direction == dir && c.Name == names[i] })
		if j < 0 {
			out[i].Note = "the agent's table holds no such rule for the pod (it lags the member's objects, or the member's policy differs)"
			continue
		}
		c := pc.Rules[j]
		out[i].Found, out[i].Stage, out[i].Index, out[i].Action, out[i].Packets, out[i].Bytes = true, c.Stage, c.Index, c.Action, c.Packets, c.Bytes
		if c.Action != string(st.Action) {
			out[i].Note = fmt.Sprintf("the table's rule does %s where the policy says %s (it lags the member's objects, or differs)", c.Action, st.Action)
		}
	}
	return out
}
