// Package enforce compiles what a member holds — its MemberNetworkPolicies, its namespace
// NetworkPolicies, its namespaces and pods — into the dataplane Model of one node: for every pod
// on the node and each direction, the tiered rules in final order (docs/policy.md rule 3), the
// NetworkPolicy stage (rule 8), the baseline rules (rule 9), with selectors resolved to pod
// addresses, ipBlock excepts cut out and named ports resolved to numbers (rule 6). It is pure:
// the node agent feeds it from informers and hands the Model to dataplane.Programmer.
package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/dataplane"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
)

// Input is what the member holds, as the agent's informers see it.
type Input struct {
	// Node is the node whose pods are enforced.
	Node            string
	Policies        []memberv1alpha1.MemberNetworkPolicy
	NetworkPolicies []networkingv1.NetworkPolicy
	Namespaces      []corev1.Namespace
	// Pods of the whole member: selectors resolve over all of them.
	Pods []corev1.Pod
}

// Result is the node's Model and what to report about it.
type Result struct {
	Model dataplane.Model
	// Policies are the MemberNetworkPolicies in force, in evaluation order (baseline last).
	Policies []string
	// Rules is the number of rules in the Model over every local pod and direction.
	Rules int
	// Errors name the objects that could not be compiled and why; those objects are left out.
	Errors []string
}

// pod is a member pod with an address, as policy sees it.
type pod struct {
	obj    *corev1.Pod
	ip     netip.Addr
	nsLabs labels.Set
}

// PodIP returns the IPv4 address a pod is enforced at, or false for pods that are not
// enforced: without an address yet, on the host network, or finished.
func PodIP(p *corev1.Pod) (netip.Addr, bool) {
	if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// namedPort returns the number of p's container port with that name and protocol.
func namedPort(p *corev1.Pod, name string, proto corev1.Protocol) (uint16, bool) {
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			cpProto := cp.Protocol
			if cpProto == "" {
				cpProto = corev1.ProtocolTCP
			}
			if cp.Name == name && cpProto == proto {
				return uint16(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// port is a port entry before named ports are resolved.
type port struct {
	proto      dataplane.Protocol
	num, end   uint16
	name       string
	everyPorts bool
}

type compiler struct {
	pods   []pod
	nsLabs map[string]labels.Set
	errs   []string
}

// Compile builds the Model for in.Node. Objects that cannot be compiled (bad selectors or
// CIDRs, which the webhook and schema refuse) are left out and named in Result.Errors.
func Compile(in Input) Result {
	c := &compiler{nsLabs: map[string]labels.Set{}}
	for i := range in.Namespaces {
		c.nsLabs[in.Namespaces[i].Name] = labels.Set(in.Namespaces[i].Labels)
	}
	seen := map[netip.Addr]string{}
	pods := append([]corev1.Pod(nil), in.Pods...)
	sort.Slice(pods, func(i, j int) bool {
		return pods[i].Namespace+"/"+pods[i].Name < pods[j].Namespace+"/"+pods[j].Name
	})
	for i := range pods {
		p := &pods[i]
		ip, ok := PodIP(p)
		if !ok {
			continue
		}
		if other, dup := seen[ip]; dup {
			c.errs = append(c.errs, fmt.Sprintf("pod %s/%s: address %s is also pod %s's; left out", p.Namespace, p.Name, ip, other))
			continue
		}
		seen[ip] = p.Namespace + "/" + p.Name
		c.pods = append(c.pods, pod{obj: p, ip: ip, nsLabs: c.nsLabs[p.Namespace]})
	}

	tiered, baseline := c.policies(in.Policies)
	var res Result
	for _, ps := range [][]*compiledPolicy{tiered, baseline} {
		for _, p := range ps {
			res.Policies = append(res.Policies, p.obj.Name)
		}
	}
	nps := c.netpols(in.NetworkPolicies)
	for i := range c.pods {
		p := &c.pods[i]
		if p.obj.Spec.NodeName != in.Node {
			continue
		}
		dp := dataplane.Pod{Name: p.obj.Namespace + "/" + p.obj.Name, IP: p.ip}
		for _, ingress := range []bool{true, false} {
			var d dataplane.Direction
			for _, cp := range tiered {
				d.Tiered = append(d.Tiered, c.policyRules(cp, p, ingress)...)
			}
			d.NetworkPolicy = c.netpolStage(nps, p, ingress)
			for _, cp := range baseline {
				for _, r := range c.policyRules(cp, p, ingress) {
					if r.Action == dataplane.Pass {
						r.Action = dataplane.Allow // rule 9: a baseline Pass ends the evaluation, allowed
					}
					d.Baseline = append(d.Baseline, r)
				}
			}
			res.Rules += len(d.Tiered) + len(d.NetworkPolicy.Allow) + len(d.Baseline)
			if ingress {
				dp.Ingress = d
			} else {
				dp.Egress = d
			}
		}
		res.Model.Pods = append(res.Model.Pods, dp)
	}
	res.Errors = c.errs
	return res
}

// compiledPolicy is a MemberNetworkPolicy with its selectors parsed.
type compiledPolicy struct {
	obj           *memberv1alpha1.MemberNetworkPolicy
	nsSel, podSel labels.Selector
	ingress       []compiledRule
	egress        []compiledRule
}

type compiledRule struct {
	name   string
	action dataplane.Action
	peers  dataplane.AddrSet
	ports  []port
	egress egressCache
}

// egressCache holds an egress rule's resolution: it does not depend on the pod the rule applies
// to (a named port resolves on the destinations), so it is done once per Compile, not once per
// pod of the node; the pods' models then share its peer sets.
type egressCache struct {
	done bool
	out  []resolved
}

// resolveEgress is resolve for an egress rule, once.
func (c *compiler) resolveEgress(cache *egressCache, name string, peers *dataplane.AddrSet, ports []port) []resolved {
	if !cache.done {
		cache.out, cache.done = c.resolve(name, peers, ports, nil, false), true
	}
	return cache.out
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

func (c *compiler) policies(in []memberv1alpha1.MemberNetworkPolicy) (tiered, baseline []*compiledPolicy) {
	for i := range in {
		mnp := &in[i]
		cp, err := c.policy(mnp)
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("MemberNetworkPolicy %s: %v; not enforced", mnp.Name, err))
			continue
		}
		if mnp.Spec.Baseline {
			baseline = append(baseline, cp)
		} else {
			tiered = append(tiered, cp)
		}
	}
	sortPolicies(tiered)
	sortPolicies(baseline)
	return tiered, baseline
}

// sortPolicies orders by docs/policy.md rule 3: tier priority, tier name, priority, policy name.
func sortPolicies(ps []*compiledPolicy) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].obj.Spec, ps[j].obj.Spec
		switch {
		case a.TierPriority != b.TierPriority:
			return a.TierPriority < b.TierPriority
		case a.Tier != b.Tier:
			return a.Tier < b.Tier
		case a.Priority != b.Priority:
			return a.Priority < b.Priority
		case policyName(ps[i].obj) != policyName(ps[j].obj):
			return policyName(ps[i].obj) < policyName(ps[j].obj)
		}
		return ps[i].obj.Name < ps[j].obj.Name
	})
}

func policyName(m *memberv1alpha1.MemberNetworkPolicy) string {
	if m.Spec.Policy != "" {
		return m.Spec.Policy
	}
	return m.Name
}

func (c *compiler) policy(m *memberv1alpha1.MemberNetworkPolicy) (*compiledPolicy, error) {
	cp := &compiledPolicy{obj: m}
	var err error
	if cp.nsSel, err = selector(m.Spec.AppliedTo.NamespaceSelector); err != nil {
		return nil, fmt.Errorf("appliedTo.namespaceSelector: %w", err)
	}
	if cp.podSel, err = selector(m.Spec.AppliedTo.PodSelector); err != nil {
		return nil, fmt.Errorf("appliedTo.podSelector: %w", err)
	}
	tier := m.Spec.Tier
	for _, d := range []struct {
		name  string
		rules []memberv1alpha1.MemberRule
		out   *[]compiledRule
	}{{"ingress", m.Spec.Ingress, &cp.ingress}, {"egress", m.Spec.Egress, &cp.egress}} {
		for i := range d.rules {
			r := &d.rules[i]
			cr, err := c.rule(r)
			if err != nil {
				return nil, fmt.Errorf("%s rule %d (%s): %w", d.name, i, r.Name, err)
			}
			// Unique per policy, direction and index: the dataplane shares sets by name and peers.
			cr.name = memberv1alpha1.AgentRuleName(tier, m.Name, d.name, i)
			*d.out = append(*d.out, cr)
		}
	}
	return cp, nil
}

func (c *compiler) rule(r *memberv1alpha1.MemberRule) (compiledRule, error) {
	cr := compiledRule{}
	switch r.Action {
	case policyv1alpha1.ActionAllow:
		cr.action = dataplane.Allow
	case policyv1alpha1.ActionDrop:
		cr.action = dataplane.Drop
	case policyv1alpha1.ActionReject:
		cr.action = dataplane.Reject
	case policyv1alpha1.ActionPass:
		cr.action = dataplane.Pass
	default:
		return cr, fmt.Errorf("action %q is not one of Allow, Drop, Reject, Pass", r.Action)
	}
	var prefixes []netip.Prefix
	for j, p := range r.Peers {
		switch {
		case p.IPBlock != nil:
			b, err := ipblock.Parse(p.IPBlock.CIDR, p.IPBlock.Except)
			if err != nil {
				return cr, fmt.Errorf("peer %d: %w", j, err)
			}
			if b.Prefix.Addr().Is4() {
				prefixes = append(prefixes, b.Prefixes()...)
			}
		case len(p.Addresses) > 0:
			for _, s := range p.Addresses {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return cr, fmt.Errorf("peer %d: address %q: %w", j, s, err)
				}
				if a.Is4() {
					prefixes = append(prefixes, netip.PrefixFrom(a, 32))
				}
			}
		default:
			nsSel, err := selector(p.NamespaceSelector)
			if err != nil {
				return cr, fmt.Errorf("peer %d namespaceSelector: %w", j, err)
			}
			podSel, err := selector(p.PodSelector)
			if err != nil {
				return cr, fmt.Errorf("peer %d podSelector: %w", j, err)
			}
			for _, mp := range c.pods {
				if nsSel.Matches(mp.nsLabs) && podSel.Matches(labels.Set(mp.obj.Labels)) {
					prefixes = append(prefixes, netip.PrefixFrom(mp.ip, 32))
				}
			}
		}
	}
	set, err := dataplane.NewAddrSet(prefixes, nil)
	if err != nil {
		return cr, err
	}
	cr.peers = set
	for _, p := range r.Ports {
		pp, err := convertPort(corev1.Protocol(p.ProtocolOrDefault()), p.Port, p.EndPort)
		if err != nil {
			return cr, err
		}
		cr.ports = append(cr.ports, pp)
	}
	return cr, nil
}

func convertPort(proto corev1.Protocol, p *intstr.IntOrString, end *int32) (port, error) {
	out := port{proto: dataplane.Protocol(proto)}
	switch {
	case p == nil:
		out.everyPorts = true
	case p.Type == intstr.String:
		out.name = p.StrVal
	default:
		if p.IntVal < 1 || p.IntVal > 65535 {
			return out, fmt.Errorf("port %d is outside 1-65535", p.IntVal)
		}
		out.num = uint16(p.IntVal)
		if end != nil {
			if *end < p.IntVal || *end > 65535 {
				return out, fmt.Errorf("endPort %d is below port %d or above 65535", *end, p.IntVal)
			}
			out.end = uint16(*end)
		}
	}
	return out, nil
}

// resolve turns a rule's peers and ports into dataplane rules for subject (docs/policy.md rule
// 6; subject is not read on egress). Numeric ports keep the rule's peers. A named port resolves on the destination pod: on
// ingress that is subject itself; on egress it is each member pod among the peers, so the rule
// is split into consecutive rules with the same action, one per resolved number. A rule that
// can match nothing is left out (an empty port list would match every port).
func (c *compiler) resolve(name string, peers *dataplane.AddrSet, ports []port, subject *pod, ingress bool) []resolved {
	if len(ports) == 0 {
		return []resolved{{name: name, peers: peers}}
	}
	var numeric []dataplane.Port
	byNumber := map[dataplane.Port][]netip.Addr{}
	var order []dataplane.Port
	for _, p := range ports {
		switch {
		case p.everyPorts:
			numeric = append(numeric, dataplane.Port{Protocol: p.proto})
		case p.name == "":
			numeric = append(numeric, dataplane.Port{Protocol: p.proto, Port: p.num, EndPort: p.end})
		case ingress:
			if n, ok := namedPort(subject.obj, p.name, corev1.Protocol(p.proto)); ok {
				numeric = append(numeric, dataplane.Port{Protocol: p.proto, Port: n})
			}
		default:
			for _, mp := range c.pods {
				if peers != nil && !peers.Contains(mp.ip) {
					continue
				}
				n, ok := namedPort(mp.obj, p.name, corev1.Protocol(p.proto))
				if !ok {
					continue
				}
				k := dataplane.Port{Protocol: p.proto, Port: n}
				if _, ok := byNumber[k]; !ok {
					order = append(order, k)
				}
				byNumber[k] = append(byNumber[k], mp.ip)
			}
		}
	}
	var out []resolved
	if len(numeric) > 0 {
		out = append(out, resolved{name: name, peers: peers, ports: numeric})
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].Protocol != order[j].Protocol {
			return order[i].Protocol < order[j].Protocol
		}
		return order[i].Port < order[j].Port
	})
	for _, k := range order {
		set, err := dataplane.AddrSetOf(byNumber[k]...)
		if err != nil {
			continue // pod addresses are IPv4 by construction
		}
		out = append(out, resolved{name: fmt.Sprintf("%s/%s-%d", name, k.Protocol, k.Port), peers: &set, ports: []dataplane.Port{k}})
	}
	return out
}

type resolved struct {
	name  string
	peers *dataplane.AddrSet
	ports []dataplane.Port
}

func (c *compiler) policyRules(cp *compiledPolicy, subject *pod, ingress bool) []dataplane.Rule {
	if !cp.nsSel.Matches(subject.nsLabs) || !cp.podSel.Matches(labels.Set(subject.obj.Labels)) {
		return nil
	}
	rules := cp.egress
	if ingress {
		rules = cp.ingress
	}
	var out []dataplane.Rule
	for i := range rules {
		r := &rules[i]
		var rs []resolved
		if ingress {
			peers := r.peers
			rs = c.resolve(r.name, &peers, r.ports, subject, true)
		} else {
			rs = c.resolveEgress(&r.egress, r.name, &r.peers, r.ports)
		}
		for _, res := range rs {
			out = append(out, dataplane.Rule{Name: res.name, Action: r.action, Peers: res.peers, Ports: res.ports})
		}
	}
	return out
}

// compiledNetpol is a NetworkPolicy with its rules' peers resolved.
type compiledNetpol struct {
	obj     *networkingv1.NetworkPolicy
	sel     labels.Selector
	ingress []compiledNPRule
	egress  []compiledNPRule
}

type compiledNPRule struct {
	name   string
	peers  *dataplane.AddrSet // nil: every address
	ports  []port
	egress egressCache
}

func (c *compiler) netpols(in []networkingv1.NetworkPolicy) []*compiledNetpol {
	var out []*compiledNetpol
	for i := range in {
		np := &in[i]
		cn, err := c.netpol(np)
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("NetworkPolicy %s/%s: %v; not enforced", np.Namespace, np.Name, err))
			continue
		}
		out = append(out, cn)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].obj.Namespace+"/"+out[i].obj.Name < out[j].obj.Namespace+"/"+out[j].obj.Name
	})
	return out
}

func (c *compiler) netpol(np *networkingv1.NetworkPolicy) (*compiledNetpol, error) {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("podSelector: %w", err)
	}
	cn := &compiledNetpol{obj: np, sel: sel}
	mk := func(dir string, i int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (compiledNPRule, error) {
		r := compiledNPRule{name: fmt.Sprintf("networkpolicy/%s/%s/%s/%d", np.Namespace, np.Name, dir, i)}
		if len(peers) > 0 {
			set, err := c.npPeers(np, peers)
			if err != nil {
				return r, err
			}
			r.peers = &set
		}
		for _, p := range ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			pp, err := convertPort(proto, p.Port, p.EndPort)
			if err != nil {
				return r, err
			}
			r.ports = append(r.ports, pp)
		}
		return r, nil
	}
	for i, r := range np.Spec.Ingress {
		cr, err := mk("ingress", i, r.From, r.Ports)
		if err != nil {
			return nil, fmt.Errorf("ingress rule %d: %w", i, err)
		}
		cn.ingress = append(cn.ingress, cr)
	}
	for i, r := range np.Spec.Egress {
		cr, err := mk("egress", i, r.To, r.Ports)
		if err != nil {
			return nil, fmt.Errorf("egress rule %d: %w", i, err)
		}
		cn.egress = append(cn.egress, cr)
	}
	return cn, nil
}

func (c *compiler) npPeers(np *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer) (dataplane.AddrSet, error) {
	var prefixes []netip.Prefix
	for j, p := range peers {
		if p.IPBlock != nil {
			b, err := ipblock.Parse(p.IPBlock.CIDR, p.IPBlock.Except)
			if err != nil {
				return dataplane.AddrSet{}, fmt.Errorf("peer %d: %w", j, err)
			}
			if b.Prefix.Addr().Is4() {
				prefixes = append(prefixes, b.Prefixes()...)
			}
			continue
		}
		var nsSel labels.Selector
		if p.NamespaceSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
			if err != nil {
				return dataplane.AddrSet{}, fmt.Errorf("peer %d namespaceSelector: %w", j, err)
			}
			nsSel = s
		}
		podSel := labels.Everything()
		if p.PodSelector != nil {
			s, err := metav1.LabelSelectorAsSelector(p.PodSelector)
			if err != nil {
				return dataplane.AddrSet{}, fmt.Errorf("peer %d podSelector: %w", j, err)
			}
			podSel = s
		}
		for _, mp := range c.pods {
			if nsSel == nil && mp.obj.Namespace != np.Namespace || nsSel != nil && !nsSel.Matches(mp.nsLabs) {
				continue
			}
			if podSel.Matches(labels.Set(mp.obj.Labels)) {
				prefixes = append(prefixes, netip.PrefixFrom(mp.ip, 32))
			}
		}
	}
	return dataplane.NewAddrSet(prefixes, nil)
}

// hasType: policyTypes, or Ingress plus Egress when egress rules exist (Kubernetes' default).
func hasType(np *networkingv1.NetworkPolicy, ingress bool) bool {
	want := networkingv1.PolicyTypeEgress
	if ingress {
		want = networkingv1.PolicyTypeIngress
	}
	if len(np.Spec.PolicyTypes) == 0 {
		return ingress || len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == want {
			return true
		}
	}
	return false
}

func (c *compiler) netpolStage(nps []*compiledNetpol, subject *pod, ingress bool) dataplane.NetworkPolicyStage {
	var st dataplane.NetworkPolicyStage
	for _, cn := range nps {
		if cn.obj.Namespace != subject.obj.Namespace || !hasType(cn.obj, ingress) || !cn.sel.Matches(labels.Set(subject.obj.Labels)) {
			continue
		}
		st.Selected = true
		rules := cn.egress
		if ingress {
			rules = cn.ingress
		}
		for i := range rules {
			r := &rules[i]
			var rs []resolved
			if ingress {
				rs = c.resolve(r.name, r.peers, r.ports, subject, true)
			} else {
				rs = c.resolveEgress(&r.egress, r.name, r.peers, r.ports)
			}
			for _, res := range rs {
				st.Allow = append(st.Allow, dataplane.AllowRule{Name: res.name, Peers: res.peers, Ports: res.ports})
			}
		}
	}
	return st
}

// Err joins Result.Errors into one error, or nil.
func (r Result) Err() error {
	var errs []error
	for _, e := range r.Errors {
		errs = append(errs, errors.New(e))
	}
	return errors.Join(errs...)
}
