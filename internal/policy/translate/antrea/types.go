package antrea

import (
	_ "embed"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The fields of Antrea's crd.antrea.io/v1beta1 API that Meridian writes and reads, from Antrea's
// documented API (docs/antrea-network-policy.md); Antrea's Go module is not served. The CRD schema
// of the same fields is crds.yaml next to this file.

// GroupVersion of Antrea's policy CRDs.
const (
	Group   = "crd.antrea.io"
	Version = "v1beta1"
)

// ClusterNetworkPolicy is Antrea's cluster-wide, tiered policy.
type ClusterNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ClusterNetworkPolicySpec `json:"spec"`
	Status            NetworkPolicyStatus      `json:"status,omitempty"`
}

// ClusterNetworkPolicySpec: policies of a tier are evaluated by priority (lower first), their
// rules in order.
type ClusterNetworkPolicySpec struct {
	Tier      string  `json:"tier,omitempty"`
	Priority  float64 `json:"priority"`
	AppliedTo []Peer  `json:"appliedTo,omitempty"`
	Ingress   []Rule  `json:"ingress,omitempty"`
	Egress    []Rule  `json:"egress,omitempty"`
}

// Rule is one ordered rule: Allow, Drop, Reject or Pass.
type Rule struct {
	Name   string              `json:"name,omitempty"`
	Action string              `json:"action"`
	Ports  []NetworkPolicyPort `json:"ports,omitempty"`
	From   []Peer              `json:"from,omitempty"`
	To     []Peer              `json:"to,omitempty"`
}

// Peer selects pods (podSelector alone: in every namespace) or addresses.
type Peer struct {
	PodSelector       *metav1.LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *IPBlock              `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR; Antrea's has no excepts.
type IPBlock struct {
	CIDR string `json:"cidr"`
}

// NetworkPolicyPort is a port, a range (port..endPort) or a named container port.
type NetworkPolicyPort struct {
	Protocol string              `json:"protocol,omitempty"`
	Port     *intstr.IntOrString `json:"port,omitempty"`
	EndPort  *int32              `json:"endPort,omitempty"`
}

// NetworkPolicyStatus is Antrea's realization report.
type NetworkPolicyStatus struct {
	Phase                string             `json:"phase,omitempty"`
	ObservedGeneration   int64              `json:"observedGeneration,omitempty"`
	CurrentNodesRealized int32              `json:"currentNodesRealized,omitempty"`
	DesiredNodesRealized int32              `json:"desiredNodesRealized,omitempty"`
	Conditions           []metav1.Condition `json:"conditions,omitempty"`
}

// Tier is an Antrea tier.
type Tier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TierSpec `json:"spec"`
}

// TierSpec of an Antrea tier.
type TierSpec struct {
	Priority    int32  `json:"priority"`
	Description string `json:"description,omitempty"`
}

// StaticTiers are the tiers Antrea creates itself, with their priorities; they cannot be changed.
var StaticTiers = map[string]int32{
	"emergency": 50, "securityops": 100, "networkops": 150, "platform": 200, "application": 250, "baseline": 253,
}

// CRDs is the CRD schema of the fields above (ClusterNetworkPolicy and Tier), for tests and test
// members that stand in for Antrea.
//
//go:embed crds.yaml
var CRDs []byte
