package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// Verdict on a connection or one side of it.
type Verdict string

const (
	Allow  Verdict = "Allow"
	Drop   Verdict = "Drop"
	Reject Verdict = "Reject"
)

// Denied says whether the verdict refuses the connection.
func (v Verdict) Denied() bool { return v != Allow }

// Endpoint is one end of a connection: a pod (Cluster, Namespace, Name) or an address. An address
// that a fleet pod holds is that pod.
type Endpoint struct {
	Cluster, Namespace, Name string
	IP                       string
}

func (e Endpoint) String() string {
	if e.Name != "" {
		return e.Cluster + "/" + e.Namespace + "/" + e.Name
	}
	return e.IP
}

// Connection is what is evaluated (docs/policy.md rule 1).
type Connection struct {
	From, To Endpoint
	Protocol policyv1alpha1.Protocol
	Port     int32
}

func (c Connection) String() string {
	return fmt.Sprintf("%s -> %s %d/%s", c.From, c.To, c.Port, c.Protocol)
}

// DecidedBy says what decided a side.
type DecidedBy string

const (
	// ByRule: a rule of a GlobalNetworkPolicy (rules 3 and 9).
	ByRule DecidedBy = "Rule"
	// ByNetworkPolicy: the namespace's NetworkPolicies (rule 8).
	ByNetworkPolicy DecidedBy = "NetworkPolicy"
	// ByDefault: nothing decided; allowed (rule 10).
	ByDefault DecidedBy = "Default"
	// NoSide: the endpoint is not a pod of a member (rule 1).
	NoSide DecidedBy = "NotAPod"
)

// Step is one rule on the path: the deciding rule, or a Pass that handed the decision on.
type Step struct {
	Tier, Policy, Rule string
	Action             policyv1alpha1.RuleAction
}

func (s Step) String() string {
	return fmt.Sprintf("tier %s, policy %s, rule %s: %s", s.Tier, s.Policy, s.Rule, s.Action)
}

// Side is the decision of one side.
type Side struct {
	Cluster   string
	Verdict   Verdict
	DecidedBy DecidedBy
	// Path: a Pass if one matched, then the deciding rule if a rule decided.
	Path []Step
	// NetworkPolicies that selected the pod when they decided.
	NetworkPolicies []string
}

// Decision is the verdict on a connection with both sides' paths.
type Decision struct {
	Verdict         Verdict
	Egress, Ingress Side
}

// String prints the decision as `kubectl meridian trace` shows it.
func (d Decision) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", d.Verdict)
	for _, s := range []struct {
		name string
		side Side
	}{{"egress", d.Egress}, {"ingress", d.Ingress}} {
		fmt.Fprintf(&b, "  %s: %s", s.name, s.side.Verdict)
		if s.side.Cluster != "" {
			fmt.Fprintf(&b, " in %s", s.side.Cluster)
		}
		fmt.Fprintf(&b, " by %s\n", s.side.DecidedBy)
		for _, st := range s.side.Path {
			fmt.Fprintf(&b, "    %s\n", st)
		}
		if len(s.side.NetworkPolicies) > 0 {
			fmt.Fprintf(&b, "    NetworkPolicies: %s\n", strings.Join(s.side.NetworkPolicies, ", "))
		}
	}
	return b.String()
}

// end is a resolved endpoint: a pod of the fleet or a bare address.
type end struct {
	pod  *PodRef
	addr netip.Addr
}

func (m *Model) resolve(e Endpoint) (end, error) {
	if e.Name != "" {
		p := m.Pod(e.Cluster, e.Namespace, e.Name)
		if p == nil {
			return end{}, fmt.Errorf("no pod %s in the fleet", e)
		}
		return end{pod: p, addr: p.Addr}, nil
	}
	a, err := netip.ParseAddr(e.IP)
	if err != nil {
		return end{}, fmt.Errorf("endpoint %q: %w", e.IP, err)
	}
	return end{pod: m.byIP[a], addr: a}, nil
}

// Evaluate decides a connection by docs/policy.md.
func (m *Model) Evaluate(c Connection) (Decision, error) {
	src, err := m.resolve(c.From)
	if err != nil {
		return Decision{}, err
	}
	dst, err := m.resolve(c.To)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{
		Egress:  Side{Verdict: Allow, DecidedBy: NoSide},
		Ingress: Side{Verdict: Allow, DecidedBy: NoSide},
	}
	if src.pod != nil {
		d.Egress = m.side(src.pod, dst, dst, false, c)
	}
	if dst.pod != nil {
		d.Ingress = m.side(dst.pod, src, dst, true, c)
	}
	switch {
	case d.Egress.Verdict.Denied():
		d.Verdict = d.Egress.Verdict
	case d.Ingress.Verdict.Denied():
		d.Verdict = d.Ingress.Verdict
	default:
		d.Verdict = Allow
	}
	return d, nil
}

// side evaluates one side (rules 2-10) for subject, the pod whose side it is; other is the
// connection's other end and dst its destination.
func (m *Model) side(subject *PodRef, other, dst end, ingress bool, c Connection) Side {
	s := Side{Cluster: subject.Cluster}
	decide := func(p *compiled, r *policyv1alpha1.Rule) {
		s.Path = append(s.Path, Step{Tier: p.tier, Policy: p.gnp.Name, Rule: r.Name, Action: r.Action})
	}
	// Rule 3: non-baseline tiers; a Pass (rule 7) leaves them for rule 8.
	for _, p := range m.ordered {
		if r := m.firstMatch(p, subject, other, dst, ingress, c); r != nil {
			decide(p, r)
			if r.Action == policyv1alpha1.ActionPass {
				break
			}
			s.Verdict, s.DecidedBy = actionVerdict(r.Action), ByRule
			return s
		}
	}
	// Rule 8: the namespace's NetworkPolicies.
	if selecting, allowed := m.networkPolicies(subject, other, dst, ingress, c); len(selecting) > 0 {
		s.NetworkPolicies, s.DecidedBy = selecting, ByNetworkPolicy
		s.Verdict = Drop
		if allowed {
			s.Verdict = Allow
		}
		return s
	}
	// Rule 9: the baseline tier.
	for _, p := range m.baseline {
		if r := m.firstMatch(p, subject, other, dst, ingress, c); r != nil {
			decide(p, r)
			s.Verdict, s.DecidedBy = actionVerdict(r.Action), ByRule
			return s
		}
	}
	// Rule 10.
	s.Verdict, s.DecidedBy = Allow, ByDefault
	return s
}

// actionVerdict: Pass only decides in the baseline tier, where it allows (rule 9).
func actionVerdict(a policyv1alpha1.RuleAction) Verdict {
	switch a {
	case policyv1alpha1.ActionDrop:
		return Drop
	case policyv1alpha1.ActionReject:
		return Reject
	default:
		return Allow
	}
}

// firstMatch returns the first rule of p that matches on this side, or nil (rules 2-6).
func (m *Model) firstMatch(p *compiled, subject *PodRef, other, dst end, ingress bool, c Connection) *policyv1alpha1.Rule {
	if !p.clusters[subject.Cluster] || !p.nsSel.Matches(labels.Set(subject.NamespaceLabels)) || !p.podSel.Matches(labels.Set(subject.Pod.Labels)) {
		return nil
	}
	rules := p.egress
	if ingress {
		rules = p.ingress
	}
	for i := range rules {
		r := &rules[i]
		if m.peersMatch(p, r.peers, subject.Cluster, other) && portsMatch(r.rule.Ports, subject.Cluster, dst, c) {
			return r.rule
		}
	}
	return nil
}

// peersMatch implements rule 5 for a side evaluated in cluster.
func (m *Model) peersMatch(p *compiled, peers []compiledPeer, cluster string, other end) bool {
	for _, peer := range peers {
		if peer.block != nil {
			if peer.block.Contains(other.addr) {
				return true
			}
			continue
		}
		o := other.pod
		if o == nil {
			continue
		}
		if peer.clusterSet {
			if !p.clusters[o.Cluster] {
				continue
			}
		} else if o.Cluster != cluster {
			continue
		}
		if peer.nsSel.Matches(labels.Set(o.NamespaceLabels)) && peer.podSel.Matches(labels.Set(o.Pod.Labels)) {
			return true
		}
	}
	return false
}

// portsMatch implements rule 6: named ports resolve on a destination pod of the evaluating cluster.
func portsMatch(ports []policyv1alpha1.Port, cluster string, dst end, c Connection) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.ProtocolOrDefault() != c.Protocol {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			if dst.pod != nil && dst.pod.Cluster == cluster {
				if n, ok := dst.pod.Pod.NamedPort(p.Port.StrVal, c.Protocol); ok && n == c.Port {
					return true
				}
			}
		case p.EndPort != nil:
			if c.Port >= p.Port.IntVal && c.Port <= *p.EndPort {
				return true
			}
		default:
			if c.Port == p.Port.IntVal {
				return true
			}
		}
	}
	return false
}
