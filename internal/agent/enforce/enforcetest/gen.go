// Package enforcetest turns one member of a random fleet (internal/policy/policytest) into the
// objects that member holds: its MemberNetworkPolicies (by the real translator),
// NetworkPolicies, Namespaces and Pods. The enforce unit tests and the dataplane end-to-end test
// use it to compare the node's model and real packets with internal/policy.Evaluate.
package enforcetest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/placement"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/translate"
	"github.com/meridian-io/meridian/internal/policy/translate/member"
)

// Member is what one member of a fleet holds, as the agent's informers would list it.
type Member struct {
	Policies        []memberv1alpha1.MemberNetworkPolicy
	NetworkPolicies []networkingv1.NetworkPolicy
	Namespaces      []corev1.Namespace
	Pods            []corev1.Pod
}

// MemberOf translates the fleet's policies for the named member with the real translator
// (translate.Resolve, then the MemberNetworkPolicy form) and returns the member's objects; pod
// i of the member is put on node nodeOf(i).
func MemberOf(f policy.Fleet, name string, nodeOf func(i int) string) (Member, error) {
	var members []fleetv1alpha1.MemberCluster
	for _, c := range f.Clusters {
		m := fleetv1alpha1.MemberCluster{}
		m.Name, m.Labels = c.Name, c.Labels
		members = append(members, m)
	}
	placements := map[string][]string{}
	for _, g := range f.Policies {
		names, err := placement.Select(g.Spec.Placement, members)
		if err != nil {
			return Member{}, err
		}
		placements[g.Name] = names
	}
	var pods []translate.InventoryPod
	for _, c := range f.Clusters {
		ns := map[string]map[string]string{}
		for _, n := range c.Namespaces {
			ns[n.Name] = n.Labels
		}
		for _, p := range c.Pods {
			pods = append(pods, translate.InventoryPod{Cluster: c.Name, Namespace: p.Namespace, NamespaceLabels: ns[p.Namespace], Labels: p.Labels, IP: p.IP})
		}
	}
	var out Member
	for _, c := range f.Clusters {
		if c.Name != name {
			continue
		}
		in := translate.Input{Cluster: c.Name, Tiers: f.Tiers, Placements: placements, Pods: pods}
		for _, n := range c.Namespaces {
			in.Namespaces = append(in.Namespaces, translate.Namespace{Name: n.Name, Labels: n.Labels})
			ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels}}
			out.Namespaces = append(out.Namespaces, ns)
		}
		for _, g := range f.Policies {
			for _, n := range placements[g.Name] {
				if n == c.Name {
					in.Policies = append(in.Policies, g)
				}
			}
		}
		ps, err := translate.Resolve(in)
		if err != nil {
			return Member{}, err
		}
		for _, o := range member.Translate(ps).Objects {
			out.Policies = append(out.Policies, *o.(*memberv1alpha1.MemberNetworkPolicy))
		}
		out.NetworkPolicies = append(out.NetworkPolicies, c.NetworkPolicies...)
		for i, p := range c.Pods {
			out.Pods = append(out.Pods, K8sPod(p, nodeOf(i)))
		}
		return out, nil
	}
	return Member{}, fmt.Errorf("no member %q in the fleet", name)
}

// K8sPod is the Pod object of a fleet pod, running on node with its IP.
func K8sPod(p policy.Pod, node string) corev1.Pod {
	c := corev1.Container{Name: "app", Image: "registry.invalid/none:0"}
	for _, cp := range p.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: cp.Name, Protocol: corev1.Protocol(cp.Protocol), ContainerPort: cp.Port})
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.IP},
	}
}
