package policy_test

// Evaluators of each member form's own semantics, written from that form's documentation, not
// from docs/policy.md: Meridian's MemberNetworkPolicy (its API docs), Antrea's ClusterNetworkPolicy
// (Antrea's docs), the upstream ClusterNetworkPolicy (network-policy-api v0.3.0's API docs), and
// Kubernetes NetworkPolicy through cyclonus, the community's simulator. Each sees one member as
// the member does: its own pods, and everything else as addresses.

import (
	"net/netip"
	"sort"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	npav1beta1 "sigs.k8s.io/network-policy-api/apis/v1beta1"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
)

// local is an endpoint as one member sees it: pod is set for the member's own pods only.
type local struct {
	addr     netip.Addr
	pod      *policy.Pod
	nsLabels map[string]string
}

type conn struct {
	proto string
	port  int32
}

// formRule matches on the member's view; action is Allow, Drop, Reject or Pass.
type formRule struct {
	action string
	match  func(other, dst local, c conn) bool
}

type formPolicy struct {
	applies         func(subject local) bool
	ingress, egress []formRule
}

// memberView is one member: its pods and namespace NetworkPolicies (cyclonus), and its tiered
// policies: admin before the NetworkPolicies, baseline after them.
type memberView struct {
	name            string
	byIP            map[netip.Addr]local
	np              *matcher.Policy
	admin, baseline []formPolicy
}

func newView(c policy.Cluster, extra []client.Object) *memberView {
	v := &memberView{name: c.Name, byIP: map[netip.Addr]local{}}
	ns := map[string]map[string]string{}
	for _, n := range c.Namespaces {
		ns[n.Name] = n.Labels
	}
	for i := range c.Pods {
		p := &c.Pods[i]
		a := netip.MustParseAddr(p.IP)
		v.byIP[a] = local{addr: a, pod: p, nsLabels: ns[p.Namespace]}
	}
	var nps []*networkingv1.NetworkPolicy
	for i := range c.NetworkPolicies {
		nps = append(nps, &c.NetworkPolicies[i])
	}
	for _, o := range extra {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok {
			nps = append(nps, np)
		}
	}
	v.np = matcher.BuildNetworkPolicies(false, nps)
	return v
}

func (v *memberView) see(a netip.Addr) local {
	if l, ok := v.byIP[a]; ok {
		return l
	}
	return local{addr: a}
}

// side evaluates one side in this member: admin policies, then NetworkPolicies for pods they
// select, then baseline policies, then allow.
func (v *memberView) side(subject, other, dst local, ingress bool, c conn) policy.Verdict {
	rulesOf := func(p formPolicy) []formRule {
		if ingress {
			return p.ingress
		}
		return p.egress
	}
admin:
	for _, p := range v.admin {
		if !p.applies(subject) {
			continue
		}
		for _, r := range rulesOf(p) {
			if r.match(other, dst, c) {
				if r.action == "Pass" {
					break admin
				}
				return policy.Verdict(r.action)
			}
		}
	}
	if targets := v.np.TargetsApplyingToPod(ingress, subject.pod.Namespace, subject.pod.Labels); len(targets) > 0 {
		t := &matcher.Traffic{Protocol: corev1.Protocol(c.proto), ResolvedPort: int(c.port)}
		peer := func(l local) *matcher.TrafficPeer {
			tp := &matcher.TrafficPeer{IP: l.addr.String()}
			if l.pod != nil {
				tp.Internal = &matcher.InternalPeer{PodLabels: l.pod.Labels, NamespaceLabels: l.nsLabels, Namespace: l.pod.Namespace}
			}
			return tp
		}
		if dst.pod != nil {
			for _, cp := range dst.pod.Ports {
				if cp.Port == c.port && string(cp.Protocol) == c.proto {
					t.ResolvedPortName = cp.Name
				}
			}
		}
		if ingress {
			t.Source, t.Destination = peer(other), peer(subject)
		} else {
			t.Source, t.Destination = peer(subject), peer(other)
		}
		if v.np.IsIngressOrEgressAllowed(t, ingress).IsAllowed() {
			return policy.Allow
		}
		return policy.Drop
	}
	for _, p := range v.baseline {
		if !p.applies(subject) {
			continue
		}
		for _, r := range rulesOf(p) {
			if r.match(other, dst, c) {
				if r.action == "Pass" || r.action == "Allow" {
					return policy.Allow
				}
				return policy.Verdict(r.action)
			}
		}
	}
	return policy.Allow
}

func everything(s *metav1.LabelSelector) labels.Selector {
	if s == nil {
		return labels.Everything()
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

func cidrMatch(cidr string, except []string, a netip.Addr) bool {
	p := netip.MustParsePrefix(cidr)
	if !p.Contains(a) {
		return false
	}
	for _, e := range except {
		if netip.MustParsePrefix(e).Contains(a) {
			return false
		}
	}
	return true
}

// portMatch: a number, a range, or a name resolved on the member's own destination pod.
func portMatch(proto string, port *intstr.IntOrString, end *int32, dst local, c conn) bool {
	if proto == "" {
		proto = "TCP"
	}
	if proto != c.proto {
		return false
	}
	switch {
	case port == nil:
		return true
	case port.Type == intstr.String:
		if dst.pod == nil {
			return false
		}
		for _, cp := range dst.pod.Ports {
			if cp.Name == port.StrVal && string(cp.Protocol) == c.proto && cp.Port == c.port {
				return true
			}
		}
		return false
	case end != nil:
		return c.port >= port.IntVal && c.port <= *end
	}
	return c.port == port.IntVal
}

// --- Meridian's MemberNetworkPolicy ---

func memberForm(v *memberView, objs []client.Object) {
	var mnps []*memberv1alpha1.MemberNetworkPolicy
	for _, o := range objs {
		mnps = append(mnps, o.(*memberv1alpha1.MemberNetworkPolicy))
	}
	sort.Slice(mnps, func(i, j int) bool {
		a, b := mnps[i].Spec, mnps[j].Spec
		if a.TierPriority != b.TierPriority {
			return a.TierPriority < b.TierPriority
		}
		if a.Tier != b.Tier {
			return a.Tier < b.Tier
		}
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		return a.Policy < b.Policy
	})
	rules := func(rs []memberv1alpha1.MemberRule, ingress bool) []formRule {
		var out []formRule
		for _, r := range rs {
			r := r
			out = append(out, formRule{action: string(r.Action), match: func(other, dst local, c conn) bool {
				peer := false
				for _, p := range r.Peers {
					switch {
					case p.IPBlock != nil:
						peer = cidrMatch(p.IPBlock.CIDR, p.IPBlock.Except, other.addr)
					case len(p.Addresses) > 0:
						for _, a := range p.Addresses {
							if netip.MustParseAddr(a) == other.addr {
								peer = true
							}
						}
					default:
						peer = other.pod != nil && everything(p.NamespaceSelector).Matches(labels.Set(other.nsLabels)) && everything(p.PodSelector).Matches(labels.Set(other.pod.Labels))
					}
					if peer {
						break
					}
				}
				if !peer {
					return false
				}
				if len(r.Ports) == 0 {
					return true
				}
				for _, p := range r.Ports {
					if portMatch(string(p.Protocol), p.Port, p.EndPort, dst, c) {
						return true
					}
				}
				return false
			}})
		}
		return out
	}
	for _, m := range mnps {
		m := m
		fp := formPolicy{
			applies: func(s local) bool {
				return everything(m.Spec.AppliedTo.NamespaceSelector).Matches(labels.Set(s.nsLabels)) && everything(m.Spec.AppliedTo.PodSelector).Matches(labels.Set(s.pod.Labels))
			},
			ingress: rules(m.Spec.Ingress, true), egress: rules(m.Spec.Egress, false),
		}
		if m.Spec.Baseline {
			v.baseline = append(v.baseline, fp)
		} else {
			v.admin = append(v.admin, fp)
		}
	}
}

// --- Antrea ClusterNetworkPolicy and Tier ---

func antreaForm(v *memberView, objs []client.Object) {
	tierPrio := map[string]int32{}
	for n, p := range antrea.StaticTiers {
		tierPrio[n] = p
	}
	var cnps []antrea.ClusterNetworkPolicy
	for _, o := range objs {
		u := o.(*unstructured.Unstructured)
		switch u.GetKind() {
		case "Tier":
			var t antrea.Tier
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &t); err != nil {
				panic(err)
			}
			tierPrio[t.Name] = t.Spec.Priority
		case "ClusterNetworkPolicy":
			var c antrea.ClusterNetworkPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
				panic(err)
			}
			cnps = append(cnps, c)
		}
	}
	sort.SliceStable(cnps, func(i, j int) bool {
		a, b := cnps[i].Spec, cnps[j].Spec
		if tierPrio[a.Tier] != tierPrio[b.Tier] {
			return tierPrio[a.Tier] < tierPrio[b.Tier]
		}
		return a.Priority < b.Priority
	})
	peerMatch := func(p antrea.Peer, l local) bool {
		if p.IPBlock != nil {
			return netip.MustParsePrefix(p.IPBlock.CIDR).Contains(l.addr)
		}
		// Antrea: podSelector alone selects in every namespace, namespaceSelector alone every pod.
		return l.pod != nil && everything(p.NamespaceSelector).Matches(labels.Set(l.nsLabels)) && everything(p.PodSelector).Matches(labels.Set(l.pod.Labels))
	}
	rules := func(rs []antrea.Rule, ingress bool) []formRule {
		var out []formRule
		for _, r := range rs {
			r := r
			peers := r.To
			if ingress {
				peers = r.From
			}
			out = append(out, formRule{action: r.Action, match: func(other, dst local, c conn) bool {
				ok := len(peers) == 0
				for _, p := range peers {
					ok = ok || peerMatch(p, other)
				}
				if !ok {
					return false
				}
				if len(r.Ports) == 0 {
					return true
				}
				for _, p := range r.Ports {
					if portMatch(p.Protocol, p.Port, p.EndPort, dst, c) {
						return true
					}
				}
				return false
			}})
		}
		return out
	}
	for _, c := range cnps {
		c := c
		fp := formPolicy{
			applies: func(s local) bool {
				for _, p := range c.Spec.AppliedTo {
					if peerMatch(p, s) {
						return true
					}
				}
				return false
			},
			ingress: rules(c.Spec.Ingress, true), egress: rules(c.Spec.Egress, false),
		}
		if c.Spec.Tier == "baseline" {
			v.baseline = append(v.baseline, fp)
		} else {
			v.admin = append(v.admin, fp)
		}
	}
}

// --- upstream ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1) ---

func cnpForm(v *memberView, objs []client.Object) {
	var cnps []*npav1beta1.ClusterNetworkPolicy
	for _, o := range objs {
		cnps = append(cnps, o.(*npav1beta1.ClusterNetworkPolicy))
	}
	sort.SliceStable(cnps, func(i, j int) bool { return cnps[i].Spec.Priority < cnps[j].Spec.Priority })
	nsPod := func(np *npav1beta1.NamespacedPod, l local) bool {
		return l.pod != nil && everything(&np.NamespaceSelector).Matches(labels.Set(l.nsLabels)) && everything(&np.PodSelector).Matches(labels.Set(l.pod.Labels))
	}
	nsOnly := func(s *metav1.LabelSelector, l local) bool {
		return l.pod != nil && everything(s).Matches(labels.Set(l.nsLabels))
	}
	protocols := func(ps []npav1beta1.ClusterNetworkPolicyProtocol, c conn) bool {
		if len(ps) == 0 {
			return true
		}
		for _, p := range ps {
			var proto string
			var dp *npav1beta1.Port
			switch {
			case p.TCP != nil:
				proto, dp = "TCP", p.TCP.DestinationPort
			case p.UDP != nil:
				proto, dp = "UDP", p.UDP.DestinationPort
			case p.SCTP != nil:
				proto, dp = "SCTP", p.SCTP.DestinationPort
			}
			if proto != c.proto || dp == nil {
				continue
			}
			if dp.Range != nil && c.port >= dp.Range.Start && c.port <= dp.Range.End || dp.Range == nil && dp.Number == c.port {
				return true
			}
		}
		return false
	}
	action := func(a npav1beta1.ClusterNetworkPolicyRuleAction) string {
		switch a {
		case npav1beta1.ClusterNetworkPolicyRuleActionAccept:
			return "Allow"
		case npav1beta1.ClusterNetworkPolicyRuleActionDeny:
			return "Drop"
		}
		return "Pass"
	}
	for _, c := range cnps {
		c := c
		fp := formPolicy{applies: func(s local) bool {
			if c.Spec.Subject.Namespaces != nil {
				return nsOnly(c.Spec.Subject.Namespaces, s)
			}
			return nsPod(c.Spec.Subject.Pods, s)
		}}
		for _, r := range c.Spec.Ingress {
			r := r
			fp.ingress = append(fp.ingress, formRule{action: action(r.Action), match: func(other, _ local, cn conn) bool {
				ok := false
				for _, p := range r.From {
					ok = ok || (p.Namespaces != nil && nsOnly(p.Namespaces, other)) || (p.Pods != nil && nsPod(p.Pods, other))
				}
				return ok && protocols(r.Protocols, cn)
			}})
		}
		for _, r := range c.Spec.Egress {
			r := r
			fp.egress = append(fp.egress, formRule{action: action(r.Action), match: func(other, _ local, cn conn) bool {
				ok := false
				for _, p := range r.To {
					ok = ok || (p.Namespaces != nil && nsOnly(p.Namespaces, other)) || (p.Pods != nil && nsPod(p.Pods, other))
					for _, n := range p.Networks {
						ok = ok || netip.MustParsePrefix(string(n)).Contains(other.addr)
					}
				}
				return ok && protocols(r.Protocols, cn)
			}})
		}
		if c.Spec.Tier == npav1beta1.BaselineTier {
			v.baseline = append(v.baseline, fp)
		} else {
			v.admin = append(v.admin, fp)
		}
	}
}

// netpolForm: Kubernetes NetworkPolicy alone; the translated objects joined the view's cyclonus
// policy when it was built.
func netpolForm(*memberView, []client.Object) {}
