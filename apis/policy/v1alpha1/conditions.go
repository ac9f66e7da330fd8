package v1alpha1

// Condition types (kstatus: Ready, and Reconciling/Stalled while they hold).
const (
	ReadyCondition       = "Ready"
	ReconcilingCondition = "Reconciling"
	StalledCondition     = "Stalled"
)

// Reasons of GlobalNetworkPolicy and Tier conditions.
const (
	// RealizedReason: every selected member enforces the policy in its form.
	RealizedReason = "Realized"
	// PendingReason: some members have not realized the translated objects yet.
	PendingReason = "Pending"
	// UnsupportedReason: some member has no form that holds a rule without weakening it.
	UnsupportedReason = "Unsupported"
	// UnknownTierReason: the policy names a tier that does not exist.
	UnknownTierReason = "UnknownTier"
	// MembersUnreachableReason: some selected members cannot be reached.
	MembersUnreachableReason = "MembersUnreachable"
	// ApplyFailedReason: some member refused the translated objects.
	ApplyFailedReason = "ApplyFailed"
	// NoClustersReason: the placement selects no cluster.
	NoClustersReason = "NoClusters"
	// NoAgentReportsReason: some members hold the policy in Meridian's form and no Meridian
	// agent reports enforcing it there yet (no agent with a dataplane runs, or none is live).
	NoAgentReportsReason = "NoAgentReports"
)

// Reasons of per-rule enforcement (RuleEnforcement.reason).
const (
	// RejectAsDropReason: the form has no Reject; the rule drops silently instead.
	RejectAsDropReason = "RejectEnforcedAsDrop"
	// IsolationReason: NetworkPolicy isolates the pods it selects, so connections no rule allows
	// are denied rather than handed to the namespaces' own policies and the baseline tier.
	IsolationReason = "NetworkPolicyIsolates"
	// DenyNotExpressibleReason: NetworkPolicy only allows; namespace owners can allow what the
	// rule denies, so the rule cannot be held.
	DenyNotExpressibleReason = "DenyNotExpressible"
	// OrderNotExpressibleReason: NetworkPolicy has no rule order; an Allow after a Pass, Drop or
	// Reject of the same policy set could allow what those deny.
	OrderNotExpressibleReason = "OrderNotExpressible"
	// IngressAddressesNotExpressibleReason: the upstream ClusterNetworkPolicy cannot match
	// ingress sources by address (ipBlock peers, ClusterSet pods of other members).
	IngressAddressesNotExpressibleReason = "IngressAddressesNotExpressible"
	// TierPriorityConflictReason: the tier's priority is held by another tier in the member's form.
	TierPriorityConflictReason = "TierPriorityConflict"
	// TooManyPoliciesReason: the form ran out of priorities for the policy.
	TooManyPoliciesReason = "TooManyPolicies"
	// NamedPortNotExpressibleReason: the form has no named ports (the upstream ClusterNetworkPolicy's
	// standard channel).
	NamedPortNotExpressibleReason = "NamedPortNotExpressible"
	// InvalidSelectorReason: a selector the webhook would refuse; nothing was written for it.
	InvalidSelectorReason = "InvalidSelector"
)

// Labels and names of the ClusterWorks that carry policies to members.
const (
	// GlobalNetworkPolicyLabel names the GlobalNetworkPolicy a ClusterWork carries.
	GlobalNetworkPolicyLabel = "policy.meridian.io/global-network-policy"
	// FormLabel on a policy ClusterWork names the form its objects are in.
	FormLabel = "policy.meridian.io/form"
	// WorkNamePrefix prefixes the ClusterWork of one GlobalNetworkPolicy in one member.
	WorkNamePrefix = "gnp-"
	// SharedWorkName is the member's ClusterWork of objects every policy of a form shares (Antrea
	// Tiers); its GlobalNetworkPolicyLabel is empty.
	SharedWorkName = "gnp-shared"
)

// Reasons of Tier conditions.
const (
	// TierAcceptedReason: the manager has seen the tier; policies may use it.
	TierAcceptedReason = "TierAccepted"
)
