package policy

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/ipblock"
)

// networkPolicies evaluates rule 8: the Kubernetes NetworkPolicies of the subject's namespace in
// its cluster. It returns the names of those that select the subject for this direction and
// whether one of them allows the connection. Pods of other members are addresses to them.
func (m *Model) networkPolicies(subject *PodRef, other, dst end, ingress bool, c Connection) ([]string, bool) {
	cl := m.clusters[subject.Cluster]
	var selecting []string
	allowed := false
	for i := range cl.NetworkPolicies {
		np := &cl.NetworkPolicies[i]
		if np.Namespace != subject.Pod.Namespace || !hasType(np, ingress) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(subject.Pod.Labels)) {
			continue
		}
		selecting = append(selecting, np.Name)
		if allowed {
			continue
		}
		if ingress {
			for _, r := range np.Spec.Ingress {
				if m.npPeers(np, r.From, subject.Cluster, other) && npPorts(r.Ports, subject.Cluster, dst, c) {
					allowed = true
					break
				}
			}
		} else {
			for _, r := range np.Spec.Egress {
				if m.npPeers(np, r.To, subject.Cluster, other) && npPorts(r.Ports, subject.Cluster, dst, c) {
					allowed = true
					break
				}
			}
		}
	}
	return selecting, allowed
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

func (m *Model) npPeers(np *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, cluster string, other end) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			b, err := ipblock.Parse(p.IPBlock.CIDR, p.IPBlock.Except)
			if err == nil && b.Contains(other.addr) {
				return true
			}
			continue
		}
		o := other.pod
		if o == nil || o.Cluster != cluster {
			continue
		}
		if p.NamespaceSelector == nil {
			if o.Pod.Namespace != np.Namespace {
				continue
			}
		} else if s, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector); err != nil || !s.Matches(labels.Set(o.NamespaceLabels)) {
			continue
		}
		if p.PodSelector != nil {
			if s, err := metav1.LabelSelectorAsSelector(p.PodSelector); err != nil || !s.Matches(labels.Set(o.Pod.Labels)) {
				continue
			}
		}
		return true
	}
	return false
}

func npPorts(ports []networkingv1.NetworkPolicyPort, cluster string, dst end, c Connection) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if string(proto) != string(c.Protocol) {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			if dst.pod != nil && dst.pod.Cluster == cluster {
				if n, ok := dst.pod.Pod.NamedPort(p.Port.StrVal, policyv1alpha1.Protocol(proto)); ok && n == c.Port {
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
