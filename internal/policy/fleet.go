// Package policy holds the reference evaluator of docs/policy.md: a pure function from a
// connection over a fleet model to a verdict and the path through tiers, policies and rules that
// decided it. It is written from the document alone, independently of the translators in
// policy/translate, which the differential oracle tests against it.
package policy

import (
	"fmt"
	"net/netip"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/placement"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
)

// Fleet is what the evaluator knows: the members with their namespaces, pods and namespace
// NetworkPolicies, and the hub's tiers and global policies.
type Fleet struct {
	Clusters []Cluster
	Tiers    []policyv1alpha1.Tier
	Policies []policyv1alpha1.GlobalNetworkPolicy
}

// Cluster is one member as the policy inventory sees it.
type Cluster struct {
	Name            string
	Labels          map[string]string
	Namespaces      []Namespace
	Pods            []Pod
	NetworkPolicies []networkingv1.NetworkPolicy
}

// Namespace of a member.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Pod of a member: the fields policy needs.
type Pod struct {
	Namespace string
	Name      string
	Labels    map[string]string
	IP        string
	Ports     []ContainerPort
}

// ContainerPort is a named container port of a pod.
type ContainerPort struct {
	Name     string
	Protocol policyv1alpha1.Protocol
	Port     int32
}

// NamedPort returns the number of the pod's container port with that name and protocol.
func (p *Pod) NamedPort(name string, proto policyv1alpha1.Protocol) (int32, bool) {
	for _, c := range p.Ports {
		if c.Name == name && c.Protocol == proto {
			return c.Port, true
		}
	}
	return 0, false
}

// PodRef is a pod of the fleet, as the model indexes it.
type PodRef struct {
	Cluster         string
	Pod             *Pod
	NamespaceLabels map[string]string
	Addr            netip.Addr
}

// Model is a Fleet indexed for evaluation. Build it with NewModel; it is read-only afterwards.
type Model struct {
	clusters map[string]*Cluster
	byIP     map[netip.Addr]*PodRef
	byName   map[string]*PodRef // cluster/namespace/name
	nsLabels map[string]map[string]string
	tiers    map[string]*policyv1alpha1.Tier
	// ordered: non-baseline policies in evaluation order; baseline: the baseline tier's.
	ordered  []*compiled
	baseline []*compiled
}

type compiled struct {
	gnp           *policyv1alpha1.GlobalNetworkPolicy
	tier          string
	tierPriority  int32
	clusters      map[string]bool
	nsSel, podSel labels.Selector
	ingress       []compiledRule
	egress        []compiledRule
}

type compiledRule struct {
	rule  *policyv1alpha1.Rule
	peers []compiledPeer
}

type compiledPeer struct {
	nsSel, podSel labels.Selector
	clusterSet    bool
	block         *ipblock.Block
}

// Selector converts a label selector where an omitted selector matches everything.
func Selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// NewModel indexes a fleet. It fails on what the webhook refuses (unknown tiers, bad selectors or
// CIDRs), naming the object.
func NewModel(f Fleet) (*Model, error) {
	m := &Model{
		clusters: map[string]*Cluster{},
		byIP:     map[netip.Addr]*PodRef{},
		byName:   map[string]*PodRef{},
		nsLabels: map[string]map[string]string{},
		tiers:    map[string]*policyv1alpha1.Tier{},
	}
	members := make([]fleetv1alpha1.MemberCluster, 0, len(f.Clusters))
	for i := range f.Clusters {
		c := &f.Clusters[i]
		m.clusters[c.Name] = c
		mc := fleetv1alpha1.MemberCluster{}
		mc.Name, mc.Labels = c.Name, c.Labels
		members = append(members, mc)
		for _, ns := range c.Namespaces {
			m.nsLabels[c.Name+"/"+ns.Name] = ns.Labels
		}
		for j := range c.Pods {
			p := &c.Pods[j]
			addr, err := netip.ParseAddr(p.IP)
			if err != nil {
				return nil, fmt.Errorf("pod %s/%s/%s: IP %q: %w", c.Name, p.Namespace, p.Name, p.IP, err)
			}
			ref := &PodRef{Cluster: c.Name, Pod: p, NamespaceLabels: m.nsLabels[c.Name+"/"+p.Namespace], Addr: addr}
			if other, dup := m.byIP[addr]; dup {
				return nil, fmt.Errorf("pods %s/%s/%s and %s/%s/%s share the address %s", c.Name, p.Namespace, p.Name, other.Cluster, other.Pod.Namespace, other.Pod.Name, p.IP)
			}
			m.byIP[addr] = ref
			m.byName[c.Name+"/"+p.Namespace+"/"+p.Name] = ref
		}
	}
	for i := range f.Tiers {
		m.tiers[f.Tiers[i].Name] = &f.Tiers[i]
	}
	for i := range f.Policies {
		g := &f.Policies[i]
		c, err := m.compile(g, members)
		if err != nil {
			return nil, fmt.Errorf("GlobalNetworkPolicy %s: %w", g.Name, err)
		}
		if c.tier == policyv1alpha1.TierBaseline {
			m.baseline = append(m.baseline, c)
		} else {
			m.ordered = append(m.ordered, c)
		}
	}
	sortPolicies(m.ordered)
	sortPolicies(m.baseline)
	return m, nil
}

func sortPolicies(ps []*compiled) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.tierPriority != b.tierPriority {
			return a.tierPriority < b.tierPriority
		}
		if a.tier != b.tier {
			return a.tier < b.tier
		}
		if pa, pb := a.gnp.Spec.PriorityValue(), b.gnp.Spec.PriorityValue(); pa != pb {
			return pa < pb
		}
		return a.gnp.Name < b.gnp.Name
	})
}

func (m *Model) compile(g *policyv1alpha1.GlobalNetworkPolicy, members []fleetv1alpha1.MemberCluster) (*compiled, error) {
	tier, ok := m.tiers[g.TierName()]
	if !ok {
		return nil, fmt.Errorf("tier %q does not exist", g.TierName())
	}
	names, err := placement.Select(g.Spec.Placement, members)
	if err != nil {
		return nil, err
	}
	c := &compiled{gnp: g, tier: tier.Name, tierPriority: tier.Spec.Priority, clusters: map[string]bool{}}
	for _, n := range names {
		c.clusters[n] = true
	}
	if c.nsSel, err = Selector(g.Spec.AppliedTo.NamespaceSelector); err != nil {
		return nil, fmt.Errorf("appliedTo.namespaceSelector: %w", err)
	}
	if c.podSel, err = Selector(g.Spec.AppliedTo.PodSelector); err != nil {
		return nil, fmt.Errorf("appliedTo.podSelector: %w", err)
	}
	if c.ingress, err = compileRules(g.Spec.Ingress); err != nil {
		return nil, fmt.Errorf("ingress: %w", err)
	}
	if c.egress, err = compileRules(g.Spec.Egress); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	return c, nil
}

func compileRules(rules []policyv1alpha1.Rule) ([]compiledRule, error) {
	out := make([]compiledRule, len(rules))
	for i := range rules {
		r := &rules[i]
		out[i].rule = r
		for j, p := range r.Peers {
			var cp compiledPeer
			var err error
			if p.IPBlock != nil {
				if cp.block, err = ipblock.Parse(p.IPBlock.CIDR, p.IPBlock.Except); err != nil {
					return nil, fmt.Errorf("rule %s peer %d: %w", r.Name, j, err)
				}
			} else {
				if cp.nsSel, err = Selector(p.NamespaceSelector); err != nil {
					return nil, fmt.Errorf("rule %s peer %d: %w", r.Name, j, err)
				}
				if cp.podSel, err = Selector(p.PodSelector); err != nil {
					return nil, fmt.Errorf("rule %s peer %d: %w", r.Name, j, err)
				}
				cp.clusterSet = p.ScopeOrDefault() == policyv1alpha1.ScopeClusterSet
			}
			out[i].peers = append(out[i].peers, cp)
		}
	}
	return out, nil
}

// Pod finds a pod by cluster, namespace and name.
func (m *Model) Pod(cluster, namespace, name string) *PodRef {
	return m.byName[cluster+"/"+namespace+"/"+name]
}

// PodByIP finds the pod that holds an address, if any.
func (m *Model) PodByIP(a netip.Addr) *PodRef { return m.byIP[a] }
