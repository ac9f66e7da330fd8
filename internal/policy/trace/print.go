package trace

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
)

// Print writes the verdict and, per side, the path that decided it, as `kubectl meridian trace`
// shows it.
func (r *Result) Print(w io.Writer) {
	d := r.Decision
	fmt.Fprintf(w, "%s: %s (%s) -> %s (%s) on %s\n", d.Verdict, r.Request.From, r.FromIP, r.Request.To, r.ToIP, r.Request.Port)
	switch {
	case d.Egress.Verdict.Denied():
		fmt.Fprintf(w, "Denied on the egress side, in %s.\n", d.Egress.Cluster)
	case d.Ingress.Verdict.Denied():
		fmt.Fprintf(w, "Denied on the ingress side, in %s.\n", d.Ingress.Cluster)
	default:
		fmt.Fprintln(w, "Allowed by both sides.")
	}
	r.side(w, "egress", d.Egress, r.FromNamespace, r.EgressAgent, r.EgressAgentDecision)
	r.side(w, "ingress", d.Ingress, r.ToNamespace, r.IngressAgent, r.IngressAgentDecision)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "\nNot evaluated (the manager does not enforce them either):\n")
		for _, s := range r.Skipped {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
}

func (r *Result) side(w io.Writer, name string, s policy.Side, namespace string, agents []AgentRule, decision *AgentRule) {
	fmt.Fprintf(w, "\n%s side", strings.ToUpper(name[:1])+name[1:])
	if s.Cluster != "" {
		fmt.Fprintf(w, ", in %s", s.Cluster)
	}
	fmt.Fprintf(w, ": %s\n", s.Verdict)
	for i, st := range s.Path {
		fmt.Fprintf(w, "  %s\n", r.step(name, st))
		r.enforcement(w, name, st, s.Cluster)
		if i < len(agents) {
			agents[i].print(w)
		}
		if st.Action == policyv1alpha1.ActionPass && !r.isBaseline(st.Tier) {
			fmt.Fprintf(w, "  Pass hands the decision to the NetworkPolicies of namespace %s, then to the baseline tier\n", namespace)
		}
	}
	switch s.DecidedBy {
	case policy.ByRule:
		if n := len(s.Path); n > 0 && s.Path[n-1].Action == policyv1alpha1.ActionPass {
			fmt.Fprintf(w, "  decided by the baseline tier's Pass: allowed\n")
		}
	case policy.ByNetworkPolicy:
		verdict := "one of them allows the connection"
		if s.Verdict.Denied() {
			verdict = "none of them allows the connection: denied"
		}
		fmt.Fprintf(w, "  NetworkPolicies of namespace %s select the pod for %s (%s): %s\n", namespace, name, strings.Join(s.NetworkPolicies, ", "), verdict)
	case policy.ByDefault:
		lead := "no rule of any tier matched, "
		if len(s.Path) > 0 {
			lead = ""
		}
		fmt.Fprintf(w, "  %sno NetworkPolicy of namespace %s selects the pod for %s and no baseline rule matched: allowed (nothing decided)\n", lead, namespace, name)
	case policy.NoSide:
		fmt.Fprintf(w, "  not a pod of a member: no %s side\n", name)
	}
	if decision != nil { // a side the NetworkPolicies or the default decided
		decision.print(w)
	}
}

func (r *Result) isBaseline(tier string) bool { return tier == policyv1alpha1.TierBaseline }

func (r *Result) step(side string, st policy.Step) string {
	tier := "tier " + st.Tier
	if t := r.Tiers[st.Tier]; t != nil {
		tier = fmt.Sprintf("tier %s (priority %d)", st.Tier, t.Spec.Priority)
	}
	pol := "policy " + st.Policy
	if g := r.Policies[st.Policy]; g != nil {
		pol = fmt.Sprintf("policy %s (priority %d)", st.Policy, g.Spec.PriorityValue())
	}
	return fmt.Sprintf("%s > %s > %s rule %s: %s", tier, pol, side, st.Rule, st.Action)
}

// enforcement prints how the member enforces the deciding policy, from the policy's status: the
// verdict above is the policy's meaning; a Restricted or Unsupported form may enforce less.
func (r *Result) enforcement(w io.Writer, side string, st policy.Step, cluster string) {
	g := r.Policies[st.Policy]
	if g == nil {
		return
	}
	for _, c := range g.Status.Clusters {
		if c.Cluster != cluster {
			continue
		}
		fmt.Fprintf(w, "    in %s: form %s, %s, %s", cluster, c.Form, c.Enforcement, c.Phase)
		var reasons []string
		for _, rule := range c.Rules {
			if rule.Rule != st.Rule || !strings.EqualFold(string(rule.Direction), side) {
				continue
			}
			reasons = append(reasons, fmt.Sprintf("rule %s: %s %s", rule.Rule, rule.Enforcement, rule.Reason))
		}
		if len(reasons) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(reasons, "; "))
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "    in %s: the policy's status does not report this cluster yet\n", cluster)
}

// print writes the node agent's rule for a step: what its table holds and counted, or why not.
func (a AgentRule) print(w io.Writer) {
	where := "node " + a.Node
	if a.AgentPod != "" {
		where = fmt.Sprintf("agent %s on node %s", a.AgentPod, a.Node)
	}
	if !a.Found {
		rule := ""
		if a.Rule != "" {
			rule = " " + a.Rule
		}
		fmt.Fprintf(w, "    nftables rule%s (%s): %s\n", rule, where, a.Note)
		return
	}
	mode := ""
	if a.Mode != "" && a.Mode != "Enforce" {
		mode = ", " + a.Mode + " mode: counted, let through"
	}
	rule, which := a.Rule, fmt.Sprintf("%s rule #%d", a.Stage, a.Index)
	if a.Index < 0 { // a stage's closing rule, named by what it does
		rule, which = strconv.Quote(a.Rule), fmt.Sprintf("%s stage's closing rule", a.Stage)
	}
	fmt.Fprintf(w, "    nftables rule %s (%s): %s, %s, matched %d packets, %d bytes%s\n", rule, where, which, a.Action, a.Packets, a.Bytes, mode)
	if a.Note != "" {
		fmt.Fprintf(w, "      %s\n", a.Note)
	}
}
