// Package translate turns the GlobalNetworkPolicies placed on one member into that member's form
// (docs/policy.md, "How each member gets its form"). Resolve does what every form shares: order
// the policies and resolve ClusterSet peers into the member's own selectors plus the addresses of
// the other members' pods. Each form is a small package of its own (member, antrea, cnp, netpol),
// a function from Resolve's output to the member's objects and the enforcement of every policy.
package translate

import (
	"fmt"
	"net/netip"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// InventoryPod is a pod of some member as the hub's policy inventory keeps it.
type InventoryPod struct {
	Cluster         string
	Namespace       string
	NamespaceLabels map[string]string
	Labels          map[string]string
	IP              string
}

// Namespace is one of the member's namespaces.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Input is everything a translator knows of one member.
type Input struct {
	// Cluster is the member's name.
	Cluster string
	// Namespaces of the member (the NetworkPolicy form writes one object per selected namespace).
	Namespaces []Namespace
	// Tiers are the hub's tiers.
	Tiers []policyv1alpha1.Tier
	// Policies are the GlobalNetworkPolicies whose placement selects the member.
	Policies []policyv1alpha1.GlobalNetworkPolicy
	// Placements maps each policy's name to the clusters its placement selects.
	Placements map[string][]string
	// Pods of every member; ClusterSet peers resolve to those of the other members.
	Pods []InventoryPod
}

// Policy is one GlobalNetworkPolicy resolved for the member.
type Policy struct {
	GNP          *policyv1alpha1.GlobalNetworkPolicy
	Tier         string
	TierPriority int32
	Baseline     bool
	Ingress      []Rule
	Egress       []Rule
}

// Rule is a rule with its peers resolved for the member: it matches when the other end matches a
// selector peer (the member's own pods), a block, or an address, and a port.
type Rule struct {
	Name      string
	Action    policyv1alpha1.RuleAction
	Ports     []policyv1alpha1.Port
	Selectors []Selectors
	Blocks    []policyv1alpha1.IPBlock
	// Addresses of the other members' pods that ClusterSet peers select, sorted.
	Addresses []netip.Addr
}

// Selectors is a selector peer over the member's own pods; nil selects everything on its level.
type Selectors struct {
	NamespaceSelector *metav1.LabelSelector
	PodSelector       *metav1.LabelSelector
}

// Result is a form's translation of the member's policies.
type Result struct {
	// Objects to write to the member (the work engine applies them).
	Objects []client.Object
	// Policies reports every policy's enforcement, in evaluation order.
	Policies []Enforcement
}

// Enforcement of one policy in the member.
type Enforcement struct {
	Policy      string
	Enforcement policyv1alpha1.Enforcement
	Rules       []policyv1alpha1.RuleEnforcement
}

// Note records a rule that is not held exactly; the policy's enforcement becomes the weakest.
func (e *Enforcement) Note(dir policyv1alpha1.Direction, rule string, enf policyv1alpha1.Enforcement, reason, msg string) {
	e.Rules = append(e.Rules, policyv1alpha1.RuleEnforcement{Direction: dir, Rule: rule, Enforcement: enf, Reason: reason, Message: msg})
	if rank(enf) > rank(e.Enforcement) {
		e.Enforcement = enf
	}
}

func rank(e policyv1alpha1.Enforcement) int {
	switch e {
	case policyv1alpha1.EnforcementUnsupported:
		return 2
	case policyv1alpha1.EnforcementRestricted:
		return 1
	}
	return 0
}

// Supported says whether the policy was written to the member.
func (e Enforcement) Supported() bool { return e.Enforcement != policyv1alpha1.EnforcementUnsupported }

// Resolve orders the member's policies as docs/policy.md evaluates them (see Before) and
// resolves their ClusterSet peers.
func Resolve(in Input) ([]Policy, error) {
	tiers := Tiers(in.Tiers)
	out := make([]Policy, 0, len(in.Policies))
	for i := range in.Policies {
		p, err := ResolvePolicy(in, &in.Policies[i], tiers)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return Before(&out[i], &out[j]) })
	return out, nil
}

// Tiers indexes tiers by name, for ResolvePolicy.
func Tiers(tiers []policyv1alpha1.Tier) map[string]*policyv1alpha1.Tier {
	out := make(map[string]*policyv1alpha1.Tier, len(tiers))
	for i := range tiers {
		out[tiers[i].Name] = &tiers[i]
	}
	return out
}

// ResolvePolicy resolves one of the input's policies alone: its tier and its ClusterSet peers
// over the input's pods. Where it stands among the member's other policies is Before's to say.
func ResolvePolicy(in Input, g *policyv1alpha1.GlobalNetworkPolicy, tiers map[string]*policyv1alpha1.Tier) (Policy, error) {
	t, ok := tiers[g.TierName()]
	if !ok {
		return Policy{}, fmt.Errorf("GlobalNetworkPolicy %s: tier %q does not exist", g.Name, g.TierName())
	}
	p := Policy{GNP: g, Tier: t.Name, TierPriority: t.Spec.Priority, Baseline: t.IsBaseline()}
	placed := map[string]bool{}
	for _, c := range in.Placements[g.Name] {
		placed[c] = true
	}
	var err error
	if p.Ingress, err = resolveRules(in, placed, g.Spec.Ingress); err != nil {
		return Policy{}, fmt.Errorf("GlobalNetworkPolicy %s ingress: %w", g.Name, err)
	}
	if p.Egress, err = resolveRules(in, placed, g.Spec.Egress); err != nil {
		return Policy{}, fmt.Errorf("GlobalNetworkPolicy %s egress: %w", g.Name, err)
	}
	return p, nil
}

// Before says whether a is evaluated before b: non-baseline tiers by priority and name,
// policies by priority and name; then the baseline tier.
func Before(a, b *Policy) bool {
	if a.Baseline != b.Baseline {
		return b.Baseline
	}
	if a.TierPriority != b.TierPriority {
		return a.TierPriority < b.TierPriority
	}
	if a.Tier != b.Tier {
		return a.Tier < b.Tier
	}
	if pa, pb := a.GNP.Spec.PriorityValue(), b.GNP.Spec.PriorityValue(); pa != pb {
		return pa < pb
	}
	return a.GNP.Name < b.GNP.Name
}

// Place is a policy's position in a form's priority numbering (Antrea's priorities within a
// tier, the upstream ClusterNetworkPolicy's within its Admin or Baseline tier). Numbering needs
// every policy of the member in evaluation order; translating a policy needs only its own
// Place, so a policy whose Place did not change translates alone, to the same objects. Forms
// without a numbering use the zero Place.
type Place struct {
	// Tier is the form's tier the policy is written to.
	Tier string
	// Priority is the first of the priorities the policy takes in Tier.
	Priority int32
	// Reason and Message say why the form has no place for the policy (it is Unsupported);
	// empty when it is placed.
	Reason, Message string
}

// Placed says whether the form has a place for the policy.
func (p Place) Placed() bool { return p.Reason == "" }

// Refuse marks every rule of the policy Unsupported for the place's reason.
func (p Place) Refuse(pol Policy, e *Enforcement) {
	for _, r := range pol.Ingress {
		e.Note(policyv1alpha1.DirectionIngress, r.Name, policyv1alpha1.EnforcementUnsupported, p.Reason, p.Message)
	}
	for _, r := range pol.Egress {
		e.Note(policyv1alpha1.DirectionEgress, r.Name, policyv1alpha1.EnforcementUnsupported, p.Reason, p.Message)
	}
}

func resolveRules(in Input, placed map[string]bool, rules []policyv1alpha1.Rule) ([]Rule, error) {
	out := make([]Rule, 0, len(rules))
	for _, r := range rules {
		rr := Rule{Name: r.Name, Action: r.Action, Ports: r.Ports}
		addrs := map[netip.Addr]bool{}
		for _, p := range r.Peers {
			if p.IPBlock != nil {
				rr.Blocks = append(rr.Blocks, *p.IPBlock)
				continue
			}
			rr.Selectors = append(rr.Selectors, Selectors{NamespaceSelector: p.NamespaceSelector, PodSelector: p.PodSelector})
			if p.ScopeOrDefault() != policyv1alpha1.ScopeClusterSet {
				continue
			}
			nsSel, err := selector(p.NamespaceSelector)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
			podSel, err := selector(p.PodSelector)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
			for _, pod := range in.Pods {
				if pod.Cluster == in.Cluster || !placed[pod.Cluster] {
					continue
				}
				if nsSel.Matches(labels.Set(pod.NamespaceLabels)) && podSel.Matches(labels.Set(pod.Labels)) {
					a, err := netip.ParseAddr(pod.IP)
					if err != nil {
						return nil, fmt.Errorf("pod %s/%s in %s: %w", pod.Namespace, pod.IP, pod.Cluster, err)
					}
					addrs[a] = true
				}
			}
		}
		for a := range addrs {
			rr.Addresses = append(rr.Addresses, a)
		}
		sort.Slice(rr.Addresses, func(i, j int) bool { return rr.Addresses[i].Less(rr.Addresses[j]) })
		out = append(out, rr)
	}
	return out, nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// HostPrefix is the single-address prefix of an address (/32 or /128).
func HostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// EveryPod is the selector that matches everything on its level, for forms where nil means none.
func EveryPod(s *metav1.LabelSelector) *metav1.LabelSelector {
	if s == nil {
		return &metav1.LabelSelector{}
	}
	return s.DeepCopy()
}
