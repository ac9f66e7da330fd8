package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Limits that keep every member form able to carry a policy (the upstream ClusterNetworkPolicy
// splits at 25 rules and peers; a member object must stay far below etcd's size limit).
const (
	MaxRulesPerDirection = 100
	MaxPeersPerRule      = 100
	MaxPortsPerRule      = 100
	MaxExceptsPerBlock   = 25
)

// RuleAction is what a rule does with the connections it matches.
// +kubebuilder:validation:Enum=Allow;Drop;Reject;Pass
type RuleAction string

const (
	// ActionAllow allows the connection on this side; nothing after the rule is evaluated.
	ActionAllow RuleAction = "Allow"
	// ActionDrop silently discards the connection.
	ActionDrop RuleAction = "Drop"
	// ActionReject refuses the connection: a TCP reset, or ICMP unreachable for UDP and SCTP.
	ActionReject RuleAction = "Reject"
	// ActionPass skips every remaining non-baseline rule and hands the decision to the namespace's
	// NetworkPolicies, then to the baseline tier. In the baseline tier it ends the evaluation: allowed.
	ActionPass RuleAction = "Pass"
)

// PeerScope says which clusters' pods a peer's selectors match.
// +kubebuilder:validation:Enum=Cluster;ClusterSet
type PeerScope string

const (
	// ScopeCluster matches pods of the cluster that evaluates the rule (the default).
	ScopeCluster PeerScope = "Cluster"
	// ScopeClusterSet matches pods in every cluster of the policy's placement.
	ScopeClusterSet PeerScope = "ClusterSet"
)

// Protocol of a port.
// +kubebuilder:validation:Enum=TCP;UDP;SCTP
type Protocol string

const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
)

// AppliedTo selects the pods a policy applies to: pods matching podSelector in namespaces matching
// namespaceSelector, in every cluster of the placement. An omitted selector selects everything on
// its level; at least one must be set, and {} must be written explicitly to mean every pod.
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || has(self.podSelector)",message="appliedTo must set namespaceSelector or podSelector; write podSelector: {} to apply the policy to every pod"
type AppliedTo struct {
	// namespaceSelector selects namespaces by their labels; omitted: every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// podSelector selects pods by their labels; omitted: every pod of the selected namespaces.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// IPBlock is a CIDR with optional excepted sub-ranges. It matches any address in it, pods' included.
type IPBlock struct {
	// cidr such as 10.0.0.0/8 or fd00::/8 (host bits zero).
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="cidr must be a CIDR with the host bits zero, such as 10.0.0.0/8"
	CIDR string `json:"cidr"`
	// except lists CIDRs inside cidr that the block does not match.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=25
	// +kubebuilder:validation:items:MaxLength=43
	Except []string `json:"except,omitempty"`
}

// Peer is the other end of a connection: pods chosen by selectors, or addresses in an IP block.
// Selectors: pods matching podSelector in namespaces matching namespaceSelector (an omitted
// selector matches everything on its level) in the clusters that scope names.
// +kubebuilder:validation:XValidation:rule="has(self.ipBlock) != (has(self.namespaceSelector) || has(self.podSelector))",message="a peer sets either ipBlock or namespaceSelector/podSelector (write podSelector: {} for every pod), not both and not neither"
// +kubebuilder:validation:XValidation:rule="!has(self.ipBlock) || !has(self.scope) || self.scope == 'Cluster'",message="scope applies to selector peers only; remove it from the ipBlock peer"
type Peer struct {
	// namespaceSelector selects the peer pods' namespaces; omitted: every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// podSelector selects the peer pods; omitted: every pod of the selected namespaces.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// ipBlock matches addresses; not combined with selectors.
	// +optional
	IPBlock *IPBlock `json:"ipBlock,omitempty"`
	// scope of the selectors: Cluster (the evaluating cluster's pods, the default) or ClusterSet
	// (pods in every cluster of the placement).
	// +optional
	Scope PeerScope `json:"scope,omitempty"`
}

// Port matches a destination port: a number, a range from port to endPort, or a container port's
// name (resolved on the destination pod). Omitted port: every port of the protocol.
// +kubebuilder:validation:XValidation:rule="!has(self.endPort) || (has(self.port) && type(self.port) == int && self.port <= self.endPort)",message="endPort needs a numeric port no greater than it; a named port cannot start a range"
type Port struct {
	// protocol: TCP (default), UDP or SCTP.
	// +optional
	// +kubebuilder:default=TCP
	Protocol Protocol `json:"protocol,omitempty"`
	// port number (1-65535) or container port name.
	// +optional
	// +kubebuilder:validation:XIntOrString
	Port *intstr.IntOrString `json:"port,omitempty"`
	// endPort ends the range that port starts (inclusive).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	EndPort *int32 `json:"endPort,omitempty"`
}

// Rule matches connections by peer and port; the first rule that matches decides with its action.
type Rule struct {
	// name identifies the rule in status, traces and member objects; unique within its direction.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// action: Allow, Drop, Reject or Pass.
	Action RuleAction `json:"action"`
	// peers: the rule matches a connection whose other end matches any of them. Use an ipBlock
	// 0.0.0.0/0 (and ::/0) to match every address.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	Peers []Peer `json:"peers"`
	// ports: the rule matches a connection to any of them; omitted: every port and protocol.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	Ports []Port `json:"ports,omitempty"`
}

// DefaultPolicyPriority is a GlobalNetworkPolicy's priority when spec.priority is not set (the
// CRD defaults it; objects built in memory may not have been through the apiserver).
const DefaultPolicyPriority int32 = 1000

// PriorityValue is the policy's priority within its tier, DefaultPolicyPriority when unset.
// spec.priority is a pointer so that a Go client can set 0, which an omitempty int32 would drop
// (and the CRD would then default to 1000).
func (s *GlobalNetworkPolicySpec) PriorityValue() int32 {
	if s.Priority == nil {
		return DefaultPolicyPriority
	}
	return *s.Priority
}

// GlobalNetworkPolicySpec is one tiered policy for the pods it applies to in every selected cluster.
type GlobalNetworkPolicySpec struct {
	// tier the policy belongs to; default application.
	// +optional
	// +kubebuilder:default=application
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Tier string `json:"tier,omitempty"`

	// priority within the tier, 0 to 10000: lower is evaluated first (0 first); ties are broken
	// by name. Default 1000.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	Priority *int32 `json:"priority,omitempty"`

	// placement selects the member clusters the policy holds in; a ClusterSet peer matches pods in
	// these clusters.
	Placement fleetv1alpha1.Placement `json:"placement"`

	// appliedTo selects the pods the policy applies to.
	AppliedTo AppliedTo `json:"appliedTo"`

	// ingress rules, in order, for connections to the selected pods.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +listType=map
	// +listMapKey=name
	Ingress []Rule `json:"ingress,omitempty"`

	// egress rules, in order, for connections from the selected pods.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +listType=map
	// +listMapKey=name
	Egress []Rule `json:"egress,omitempty"`
}

// Form is the kind a member enforces a policy with.
// +kubebuilder:validation:Enum=Meridian;Antrea;ClusterNetworkPolicy;NetworkPolicy;None
type Form string

const (
	// FormMeridian is Meridian's own member.meridian.io MemberNetworkPolicy (exact).
	FormMeridian Form = "Meridian"
	// FormAntrea is Antrea's crd.antrea.io ClusterNetworkPolicy with Antrea Tiers (exact).
	FormAntrea Form = "Antrea"
	// FormClusterNetworkPolicy is the upstream policy.networking.k8s.io/v1beta1 ClusterNetworkPolicy.
	FormClusterNetworkPolicy Form = "ClusterNetworkPolicy"
	// FormNetworkPolicy is Kubernetes NetworkPolicy, the last resort.
	FormNetworkPolicy Form = "NetworkPolicy"
	// FormNone: the member has no form that can carry the policy.
	FormNone Form = "None"
)

// Enforcement says how faithfully a form holds a policy or a rule in one member.
// +kubebuilder:validation:Enum=Exact;Restricted;Unsupported
type Enforcement string

const (
	// EnforcementExact: the member allows exactly what the policy allows.
	EnforcementExact Enforcement = "Exact"
	// EnforcementRestricted: the member never allows what the policy denies, but denies some of
	// what it allows (or denies differently, e.g. Reject enforced as a silent drop).
	EnforcementRestricted Enforcement = "Restricted"
	// EnforcementUnsupported: the form cannot hold the rule without allowing what the policy
	// denies, so nothing weaker was written: the policy is not enforced in that member.
	EnforcementUnsupported Enforcement = "Unsupported"
)

// Phase of a policy in one member.
// +kubebuilder:validation:Enum=Realized;Pending;Failed
type Phase string

const (
	PhaseRealized Phase = "Realized"
	PhasePending  Phase = "Pending"
	PhaseFailed   Phase = "Failed"
)

// Direction of a rule.
// +kubebuilder:validation:Enum=Ingress;Egress
type Direction string

const (
	DirectionIngress Direction = "Ingress"
	DirectionEgress  Direction = "Egress"
)

// RuleEnforcement reports one rule that a form does not hold exactly.
type RuleEnforcement struct {
	// direction of the rule.
	Direction Direction `json:"direction"`
	// rule is the rule's name.
	Rule string `json:"rule"`
	// enforcement of the rule in the form.
	Enforcement Enforcement `json:"enforcement"`
	// reason is a CamelCase reason (see the Reason constants).
	Reason string `json:"reason"`
	// message says what the form does instead, and how to get an exact form.
	// +optional
	Message string `json:"message,omitempty"`
}

// ClusterPolicyStatus reports the policy in one member cluster.
type ClusterPolicyStatus struct {
	// cluster is the MemberCluster's name.
	Cluster string `json:"cluster"`
	// form the member enforces the policy with.
	Form Form `json:"form"`
	// enforcement of the whole policy: the weakest of its rules'.
	Enforcement Enforcement `json:"enforcement"`
	// rules lists the rules not held exactly, with reasons.
	// +optional
	// +listType=atomic
	Rules []RuleEnforcement `json:"rules,omitempty"`
	// phase of the policy in the member: Realized once the translated objects are applied and,
	// where the form's enforcer reports nodes, every node enforces them; Meridian's own form is
	// enforced only by Meridian's agents, so it stays Pending until they report it (docs/policy.md).
	Phase Phase `json:"phase"`
	// nodesRealized and nodesDesired: the member's own report of the nodes that enforce the policy,
	// where its form reports it (Antrea, Meridian's agent).
	// +optional
	NodesRealized *int32 `json:"nodesRealized,omitempty"`
	// +optional
	NodesDesired *int32 `json:"nodesDesired,omitempty"`
	// message says what went wrong or what is awaited, if anything.
	// +optional
	Message string `json:"message,omitempty"`
}

// GlobalNetworkPolicyStatus is what is in force in the members.
type GlobalNetworkPolicyStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// clusters reports the policy in each selected cluster, sorted by cluster name.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Clusters []ClusterPolicyStatus `json:"clusters,omitempty"`

	// summary counts clusters where the policy is realized, e.g. "2/3", for printing.
	// +optional
	Summary string `json:"summary,omitempty"`
	// forms lists cluster=form pairs, e.g. "a=Antrea,b=NetworkPolicy", for printing.
	// +optional
	Forms string `json:"forms,omitempty"`
	// enforcement is the weakest enforcement over the clusters, for printing.
	// +optional
	Enforcement Enforcement `json:"enforcement,omitempty"`
}

// GlobalNetworkPolicy is one tiered network policy that holds, with the same meaning, in every
// member cluster its placement selects (docs/policy.md defines the semantics).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=gnp,categories=meridian
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the policy in the members"
// +kubebuilder:validation:XValidation:rule="has(self.spec.ingress) || has(self.spec.egress)",message="a GlobalNetworkPolicy needs at least one ingress or egress rule"
// +kubebuilder:printcolumn:name="Tier",type=string,JSONPath=`.spec.tier`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.status.enforcement`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Forms",type=string,priority=1,JSONPath=`.status.forms`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type GlobalNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GlobalNetworkPolicySpec   `json:"spec"`
	Status GlobalNetworkPolicyStatus `json:"status,omitempty"`
}

// GlobalNetworkPolicyList is a list of GlobalNetworkPolicies.
// +kubebuilder:object:root=true
type GlobalNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GlobalNetworkPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GlobalNetworkPolicy{}, &GlobalNetworkPolicyList{})
}

// TierName is the policy's tier, the default when none is set.
func (p *GlobalNetworkPolicy) TierName() string {
	if p.Spec.Tier == "" {
		return DefaultTier
	}
	return p.Spec.Tier
}

// GetConditions returns the conditions of the GlobalNetworkPolicy.
func (p *GlobalNetworkPolicy) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions replaces the conditions of the GlobalNetworkPolicy.
func (p *GlobalNetworkPolicy) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// ScopeOrDefault is the peer's scope, Cluster when unset.
func (p Peer) ScopeOrDefault() PeerScope {
	if p.Scope == "" {
		return ScopeCluster
	}
	return p.Scope
}

// ProtocolOrDefault is the port's protocol, TCP when unset.
func (p Port) ProtocolOrDefault() Protocol {
	if p.Protocol == "" {
		return ProtocolTCP
	}
	return p.Protocol
}
