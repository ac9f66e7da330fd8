package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Placement selects member clusters; every kind that places intent on clusters (GlobalNamespace,
// GlobalNetworkPolicy, AgentConfig) uses it. A MemberCluster is selected when its labels match
// clusterSelector or its name is listed in clusterNames (either is enough).
// +kubebuilder:validation:XValidation:rule="has(self.clusterSelector) || (has(self.clusterNames) && size(self.clusterNames) > 0)",message="set placement.clusterSelector ({} selects every cluster) or list placement.clusterNames"
type Placement struct {
	// clusterSelector selects MemberClusters by their labels; {} selects every member.
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`

	// clusterNames selects MemberClusters by name, in addition to those the selector picks.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=47
	ClusterNames []string `json:"clusterNames,omitempty"`
}
