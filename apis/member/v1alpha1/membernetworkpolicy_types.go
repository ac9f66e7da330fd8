package v1alpha1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// MemberPeer is a peer as one member enforces it: selectors over the member's own pods, an IP
// block, or addresses resolved by the hub (the pods of other members that a ClusterSet peer
// selects). Exactly one of the three is set. Only the hub writes these objects, so the schema
// carries no validation rules (they would cost the apiserver on every write for nothing).
type MemberPeer struct {
	// namespaceSelector selects the member's namespaces; omitted: every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// podSelector selects the member's pods; omitted: every pod of the selected namespaces.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// ipBlock matches addresses in a CIDR but not in its excepts.
	// +optional
	IPBlock *MemberIPBlock `json:"ipBlock,omitempty"`
	// addresses are single IPs, sorted: pods of other members selected by a ClusterSet peer. As
	// an egress destination an address never matches a named port (named ports resolve on the
	// member's own pods only).
	// +optional
	// +listType=set
	Addresses []string `json:"addresses,omitempty"`
}

// MemberIPBlock is a CIDR with excepted sub-ranges inside it.
type MemberIPBlock struct {
	CIDR string `json:"cidr"`
	// +optional
	// +listType=atomic
	Except []string `json:"except,omitempty"`
}

// MemberRule is one ordered rule; the first that matches decides.
type MemberRule struct {
	// name of the GlobalNetworkPolicy's rule.
	Name string `json:"name"`
	// action: Allow, Drop, Reject or Pass.
	Action policyv1alpha1.RuleAction `json:"action"`
	// peers: any of them.
	// +listType=atomic
	Peers []MemberPeer `json:"peers"`
	// ports: any of them; omitted: every port and protocol.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Ports []policyv1alpha1.Port `json:"ports,omitempty"`
}

// MemberNetworkPolicySpec is a GlobalNetworkPolicy's exact form in one member.
type MemberNetworkPolicySpec struct {
	// tier is the GlobalNetworkPolicy's tier; tierPriority its priority. Policies are evaluated by
	// (tierPriority, tier, priority, policy name); the baseline tier after the namespaces'
	// NetworkPolicies.
	Tier         string `json:"tier"`
	TierPriority int32  `json:"tierPriority"`
	// baseline marks the baseline tier.
	// +optional
	Baseline bool `json:"baseline,omitempty"`
	// priority of the policy within its tier.
	Priority int32 `json:"priority"`
	// policy is the GlobalNetworkPolicy's name (ties of priority are broken by it).
	Policy string `json:"policy"`
	// appliedTo selects the member's pods the policy applies to.
	AppliedTo policyv1alpha1.AppliedTo `json:"appliedTo"`
	// ingress rules, in order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Ingress []MemberRule `json:"ingress,omitempty"`
	// egress rules, in order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Egress []MemberRule `json:"egress,omitempty"`
}

// The Ready condition of a MemberNetworkPolicy and its reasons.
const (
	// PolicyReadyCondition is True when every node running a live agent enforces the policy's
	// current generation.
	PolicyReadyCondition = "Ready"
	// PolicyRealizedReason: every such node enforces it.
	PolicyRealizedReason = "Realized"
	// PolicyRealizingReason: some nodes do not enforce this generation yet (the message names them).
	PolicyRealizingReason = "Realizing"
	// PolicyNoAgentsReason: no node runs a live agent, so nothing enforces the policy.
	PolicyNoAgentsReason = "NoAgents"
)

// RealizationLeaseName is the Lease (in the agent's namespace) by which the agents of a member
// elect the one that writes every MemberNetworkPolicy's status.
const RealizationLeaseName = "meridian-realization"

// MemberNetworkPolicyStatus is written by one of Meridian's node agents (elected): it folds every
// node's NodeAgentInfo into one status per policy, at most one write per policy per interval.
type MemberNetworkPolicyStatus struct {
	// observedGeneration is the spec generation the counts are about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// nodesRealized counts the nodes that enforce this generation; nodesDesired those that should:
	// the nodes whose agent's Lease is current.
	// +optional
	NodesRealized int32 `json:"nodesRealized,omitempty"`
	// +optional
	NodesDesired int32 `json:"nodesDesired,omitempty"`
	// conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MemberNetworkPolicy is the exact form of one GlobalNetworkPolicy in one member, with ClusterSet
// peers resolved to addresses; Meridian's node agent enforces it. Written by the hub only.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mnp,categories=meridian
// +kubebuilder:printcolumn:name="Tier",type=string,JSONPath=`.spec.tier`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Realized",type=integer,JSONPath=`.status.nodesRealized`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.nodesDesired`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MemberNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MemberNetworkPolicySpec   `json:"spec"`
	Status MemberNetworkPolicyStatus `json:"status,omitempty"`
}

// MemberNetworkPolicyList is a list of MemberNetworkPolicies.
// +kubebuilder:object:root=true
type MemberNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MemberNetworkPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MemberNetworkPolicy{}, &MemberNetworkPolicyList{})
}

// AgentRuleName is the name Meridian's node agent gives the dataplane rule of a
// MemberNetworkPolicy's rule: "<tier>/<policy>/<direction>/<index of the rule in its direction>",
// direction "ingress" or "egress". Rule counters, metrics and `kubectl meridian trace` read it.
func AgentRuleName(tier, policy, direction string, index int) string {
	return fmt.Sprintf("%s/%s/%s/%d", tier, policy, direction, index)
}
