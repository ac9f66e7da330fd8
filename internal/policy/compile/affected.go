package compile

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// PeersMatch says whether a pod, before or after a change, is selected by one of the policy's
// ClusterSet peers: only then can the pod's churn change what the policy resolves to in the
// other members. Policies without ClusterSet peers never follow pods on the hub (their members
// resolve their own pods).
func PeersMatch(g *policyv1alpha1.GlobalNetworkPolicy, pods ...*translate.InventoryPod) bool {
	for _, rules := range [][]policyv1alpha1.Rule{g.Spec.Ingress, g.Spec.Egress} {
		for _, r := range rules {
			for _, p := range r.Peers {
				if p.IPBlock != nil || p.ScopeOrDefault() != policyv1alpha1.ScopeClusterSet {
					continue
				}
				for _, pod := range pods {
					if pod != nil && matches(p.NamespaceSelector, pod.NamespaceLabels) && matches(p.PodSelector, pod.Labels) {
						return true
					}
				}
			}
		}
	}
	return false
}

func matches(s *metav1.LabelSelector, l map[string]string) bool {
	if s == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return true // an invalid selector is reported by the pass itself; let it run
	}
	return sel.Matches(labels.Set(l))
}
