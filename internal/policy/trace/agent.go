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

// AgentRule is, for one step of the path (or for a side the namespace's NetworkPolicies or the
// default decided), the rule of the node agent's nftables table that stands for it, with what it
// counted, or why there is none.
type AgentRule struct {
	// Node is the pod's node; AgentPod the agent's pod there (namespace/name) when one was found.
	Node     string `json:"node,omitempty"`
	AgentPod string `json:"agentPod,omitempty"`
	// Mode is the agent's enforcement mode (Enforce or Audit).
	Mode string `json:"mode,omitempty"`
	// Rule is the agent's name of the rule: <tier>/<policy>/<direction>/<index> for a Meridian
	// rule, networkpolicy/<namespace>/<name>/<direction>/<index> for a NetworkPolicy's rule, and
	// for a stage's closing rule (Index -1) what it does ("selected by a NetworkPolicy, no rule
	// allows", "nothing matched: allow").
	Rule string `json:"rule"`
	// Found: the table holds the rule; Stage, Index, Action, Packets and Bytes are then the
	// table's (Index is the rule's position in its stage, -1 for the stage's closing rule;
	// Action as the table enforces it).
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
	Node     string             `json:"node"`
	Mode     string             `json:"mode"`
	Pod      string             `json:"pod"`
	Rules    []agentRuleCounter `json:"rules"`
	Decision *agentDecision     `json:"decision"`
}

// agentRuleCounter is one rule of the agent's answer (dataplane.RuleCounter).
type agentRuleCounter struct {
	Direction, Stage string
	Index            int
	Name             string
	Action           string
	Packets, Bytes   uint64
}

// agentDecision is the rule of the agent's table that decides the connection the request named
// (dataplane.Decision).
type agentDecision struct {
	Verdict, Stage string
	Index          int
	Name           string
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

// readAgents fills, for each side with a pod, from the agent on that pod's node: for each step
// of the side's path the agent's rule and counter, and for a side decided by the namespace's
// NetworkPolicies or by the default the rule of the agent's table that decides it. It never
// fails the trace: what it cannot read, it says in the AgentRule's Note.
func (r *Result) readAgents(ctx context.Context, members map[string]*Member) {
	for _, s := range []struct {
		dir      string
		side     policy.Side
		pod      PodName
		peer     string
		path     *[]AgentRule
		decision **AgentRule
	}{
		{"egress", r.Decision.Egress, r.Request.From, r.ToIP, &r.EgressAgent, &r.EgressAgentDecision},
		{"ingress", r.Decision.Ingress, r.Request.To, r.FromIP, &r.IngressAgent, &r.IngressAgentDecision},
	} {
		byStage := s.side.DecidedBy == policy.ByNetworkPolicy || s.side.DecidedBy == policy.ByDefault
		if s.side.Cluster == "" || (len(s.side.Path) == 0 && !byStage) {
			continue
		}
		q := url.Values{"pod": {s.pod.Namespace + "/" + s.pod.Name}}
		if s.peer != "" {
			q.Set("direction", s.dir)
			q.Set("peer", s.peer)
			q.Set("protocol", string(r.Request.Port.Protocol))
			q.Set("port", strconv.Itoa(int(r.Request.Port.Number)))
		}
		a := readAgent(ctx, members[s.pod.Cluster], s.pod, r.nodes[s.pod], q)
		if len(s.side.Path) > 0 {
			var names []string
			for _, st := range s.side.Path {
				name := ""
				if g := r.Policies[st.Policy]; g != nil {
					name = agentRuleName(g, st.Tier, s.dir, st.Rule)
				}
				names = append(names, name)
			}
			*s.path = a.pathRules(s.dir, s.side.Path, names)
		}
		if byStage {
			d := a.decisionRule(s.dir, s.side)
			*s.decision = &d
		}
	}
}

// agentAnswer is what the agent of one pod's node answered, or why nothing was read.
type agentAnswer struct {
	node, agentPod string
	counters       *agentCounters
	note           string
}

func (a agentAnswer) rule(name string) AgentRule {
	r := AgentRule{Node: a.node, AgentPod: a.agentPod, Rule: name, Note: a.note}
	if a.counters != nil {
		r.Mode = a.counters.Mode
	}
	return r
}

func (r *AgentRule) found(c agentRuleCounter) {
	r.Found, r.Stage, r.Index, r.Action, r.Packets, r.Bytes = true, c.Stage, c.Index, c.Action, c.Packets, c.Bytes
}

// readAgent asks the agent of node for pod's rules (and, with a connection in query, the rule
// that decides it).
func readAgent(ctx context.Context, m *Member, pod PodName, node string, query url.Values) agentAnswer {
	a := agentAnswer{node: node}
	fail := func(note string) agentAnswer { a.note = note; return a }
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
	a.agentPod = agent.Namespace + "/" + agent.Name
	if port == 0 {
		return fail(fmt.Sprintf("the agent's pod %s names no %q port", a.agentPod, agentPortName))
	}
	body, err := m.ProxyGet(ctx, agent.Namespace, agent.Name, port, agentCountersPath, query)
	if err != nil {
		return fail(fmt.Sprintf("could not read the agent %s through %s's apiserver (pods/proxy, port %d): %v", a.agentPod, pod.Cluster, port, err))
	}
	var pc agentCounters
	if err := json.Unmarshal(body, &pc); err != nil {
		return fail(fmt.Sprintf("the agent %s answered what is not its counters: %v", a.agentPod, err))
	}
	a.counters = &pc
	return a
}

// pathRules picks, for each step of a side's path, the agent's rule of that name.
func (a agentAnswer) pathRules(dir string, path []policy.Step, names []string) []AgentRule {
	out := make([]AgentRule, len(path))
	for i, st := range path {
		out[i] = a.rule(names[i])
		if a.counters == nil {
			continue
		}
		if names[i] == "" {
			out[i].Note = fmt.Sprintf("policy %s has no %s rule %s on the hub now", st.Policy, dir, st.Rule)
			continue
		}
		j := slices.IndexFunc(a.counters.Rules, func(c agentRuleCounter) bool { return c.Direction == dir && c.Name == names[i] })
		if j < 0 {
			out[i].Note = "the agent's table holds no such rule for the pod (it lags the member's objects, or the member's policy differs)"
			continue
		}
		out[i].found(a.counters.Rules[j])
		if a.counters.Rules[j].Action != string(st.Action) {
			out[i].Note = fmt.Sprintf("the table's rule does %s where the policy says %s (it lags the member's objects, or differs)", a.counters.Rules[j].Action, st.Action)
		}
	}
	return out
}

// decisionRule is, for a side the namespace's NetworkPolicies or the default decided, the rule
// of the agent's table that decides the connection, as the agent says: one of the pod's
// NetworkPolicy allow rules, its NetworkPolicy isolation drop, or its default accept.
func (a agentAnswer) decisionRule(dir string, side policy.Side) AgentRule {
	out := a.rule("")
	if a.counters == nil {
		return out
	}
	d := a.counters.Decision
	if d == nil {
		out.Note = "the agent did not say which of its rules decides this connection (its table is being rebuilt after a failed change, or the agent is older than this trace)"
		return out
	}
	out.Rule = d.Name
	j := slices.IndexFunc(a.counters.Rules, func(c agentRuleCounter) bool {
		return c.Direction == dir && c.Stage == d.Stage && c.Index == d.Index
	})
	if j < 0 {
		out.Note = fmt.Sprintf("the agent decides this connection by its %s rule %d, but its table holds no counted rule of that stage and index for the pod", d.Stage, d.Index)
		return out
	}
	c := a.counters.Rules[j]
	out.found(c)
	if out.Rule == "" {
		out.Rule = c.Name
	}
	want := "default"
	if side.DecidedBy == policy.ByNetworkPolicy {
		want = "networkpolicy"
	}
	if d.Stage != want || d.Verdict != string(side.Verdict) {
		out.Note = fmt.Sprintf("the table decides this side by its %s stage (%s) where the reference says %s by the %s stage (it lags the member's objects, or differs)", d.Stage, d.Verdict, side.Verdict, want)
	}
	return out
}
