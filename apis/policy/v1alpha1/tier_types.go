package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The default tiers, modelled on Antrea's static tiers (same names and priorities, so that they map
// onto Antrea's own tiers one to one). The manager ensures they exist.
const (
	TierEmergency   = "emergency"
	TierSecurityOps = "securityops"
	TierNetworkOps  = "networkops"
	TierPlatform    = "platform"
	TierApplication = "application"
	// TierBaseline is the one tier evaluated after the namespaces' own NetworkPolicies, whatever
	// its priority; its name alone makes it the baseline tier.
	TierBaseline = "baseline"

	// DefaultTier is the tier of a GlobalNetworkPolicy that names none.
	DefaultTier = TierApplication
)

// DefaultTiers are the tiers the manager ensures, with their priorities (lower is evaluated first).
var DefaultTiers = []struct {
	Name        string
	Priority    int32
	Description string
}{
	{TierEmergency, 50, "Evaluated first: emergency blocks and allows."},
	{TierSecurityOps, 100, "Security operations: fleet-wide guardrails."},
	{TierNetworkOps, 150, "Network operations."},
	{TierPlatform, 200, "Platform services."},
	{TierApplication, 250, "Applications; the default tier of a GlobalNetworkPolicy."},
	{TierBaseline, 253, "Evaluated after the namespaces' own NetworkPolicies, for pods none of them selects."},
}

// TierSpec is a tier's place in the evaluation order.
type TierSpec struct {
	// priority orders the tiers: lower is evaluated first; ties are broken by name. The baseline
	// tier is evaluated after the namespaces' NetworkPolicies whatever its priority.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	Priority int32 `json:"priority"`

	// description says what the tier is for.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`
}

// TierStatus reports how many policies use the tier.
type TierStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// policies counts the GlobalNetworkPolicies in the tier.
	// +optional
	Policies int32 `json:"policies,omitempty"`

	// conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Tier groups GlobalNetworkPolicies: tiers are evaluated in priority order, the policies of a tier
// by their own priority. A tier that a policy uses cannot be deleted.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mtier,categories=meridian
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the tier in the members"
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Policies",type=integer,JSONPath=`.status.policies`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Description",type=string,priority=1,JSONPath=`.spec.description`
type Tier struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TierSpec   `json:"spec"`
	Status TierStatus `json:"status,omitempty"`
}

// TierList is a list of Tiers.
// +kubebuilder:object:root=true
type TierList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tier `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Tier{}, &TierList{})
}

// IsBaseline says whether the tier is evaluated after the namespaces' NetworkPolicies.
func (t *Tier) IsBaseline() bool { return t.Name == TierBaseline }
