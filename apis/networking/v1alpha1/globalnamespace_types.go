package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// NamespaceDeletionPolicy says what happens to a member's namespace when its cluster leaves the
// placement or the GlobalNamespace is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type NamespaceDeletionPolicy string

const (
	// NamespaceRetain leaves the namespace and everything in it; Meridian's ownership marks are
	// removed, the labels and annotations it stamped stay.
	NamespaceRetain NamespaceDeletionPolicy = "Retain"
	// NamespaceDelete deletes the namespace, with everything in it, but only when Meridian created
	// it: an adopted namespace is retained.
	NamespaceDelete NamespaceDeletionPolicy = "Delete"
)

// NamespaceOverride gives the namespace another name in one cluster.
type NamespaceOverride struct {
	// cluster is the MemberCluster's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=47
	Cluster string `json:"cluster"`

	// namespaceName in that cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	NamespaceName string `json:"namespaceName"`
}

// GlobalNamespaceSpec is a namespace that should exist in every selected member cluster.
type GlobalNamespaceSpec struct {
	// placement selects the member clusters that get the namespace.
	Placement fleetv1alpha1.Placement `json:"placement"`

	// namespaceName is the namespace's name in the members; default: the GlobalNamespace's name.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	NamespaceName string `json:"namespaceName,omitempty"`

	// overrides give the namespace another name in some clusters.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	// +kubebuilder:validation:MaxItems=1000
	Overrides []NamespaceOverride `json:"overrides,omitempty"`

	// labels to set on the member namespaces.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations to set on the member namespaces.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// deletionPolicy for a member's namespace when its cluster leaves the placement or the
	// GlobalNamespace is deleted. Retain (the default) never deletes a namespace; Delete deletes
	// only namespaces Meridian created, never adopted ones.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy NamespaceDeletionPolicy `json:"deletionPolicy,omitempty"`

	// adopt takes over namespaces that already exist in a member and that Meridian did not create.
	// Without it such a namespace is left untouched and reported as a Conflict.
	// +optional
	Adopt bool `json:"adopt,omitempty"`

	// serviceDiscovery says which Services of the namespace the cluster set imports everywhere
	// (Multi-Cluster Services API), and under which extra domain they answer.
	// +optional
	// +kubebuilder:default={}
	ServiceDiscovery ServiceDiscovery `json:"serviceDiscovery,omitempty"`
}

// ServiceDiscoveryMode says which Services of a namespace are exported to the cluster set.
// +kubebuilder:validation:Enum=None;Exported;All
type ServiceDiscoveryMode string

const (
	// ServiceDiscoveryNone: nothing is exported from or imported into the namespace, ServiceExports included.
	ServiceDiscoveryNone ServiceDiscoveryMode = "None"
	// ServiceDiscoveryExported: Services that have a ServiceExport are exported (the MCS API's rule).
	ServiceDiscoveryExported ServiceDiscoveryMode = "Exported"
	// ServiceDiscoveryAll: every Service of the namespace is exported, with or without a ServiceExport.
	ServiceDiscoveryAll ServiceDiscoveryMode = "All"
)

// ServiceDiscovery configures cross-cluster service discovery for a GlobalNamespace.
type ServiceDiscovery struct {
	// mode: None, Exported (default) or All.
	// +optional
	// +kubebuilder:default=Exported
	Mode ServiceDiscoveryMode `json:"mode,omitempty"`

	// domain under which the namespace's services also answer, as <service>.<domain>
	// (e.g. payments.global), besides <service>.<namespace>.svc.clusterset.local.
	// +optional
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Domain string `json:"domain,omitempty"`
}

// ClusterNamespaceState says where a member's namespace stands.
// +kubebuilder:validation:Enum=Applied;Pending;Conflict;Failed;Unreachable;Removing
type ClusterNamespaceState string

const (
	// ClusterNamespaceApplied: the namespace exists in the member as the GlobalNamespace wants it.
	ClusterNamespaceApplied ClusterNamespaceState = "Applied"
	// ClusterNamespacePending: not applied yet.
	ClusterNamespacePending ClusterNamespaceState = "Pending"
	// ClusterNamespaceConflict: the namespace exists in the member and Meridian did not create it
	// (or another GlobalNamespace holds it); it was left untouched.
	ClusterNamespaceConflict ClusterNamespaceState = "Conflict"
	// ClusterNamespaceFailed: the member refused the namespace.
	ClusterNamespaceFailed ClusterNamespaceState = "Failed"
	// ClusterNamespaceUnreachable: the member cannot be reached; the namespace will be applied when it can.
	ClusterNamespaceUnreachable ClusterNamespaceState = "Unreachable"
	// ClusterNamespaceRemoving: the cluster left the placement; the deletion policy is being carried out.
	ClusterNamespaceRemoving ClusterNamespaceState = "Removing"
)

// ClusterNamespaceStatus reports the namespace in one member cluster.
type ClusterNamespaceStatus struct {
	// cluster is the MemberCluster's name.
	Cluster string `json:"cluster"`
	// namespace is the namespace's name in that cluster.
	Namespace string `json:"namespace"`
	// state of the namespace in the member.
	State ClusterNamespaceState `json:"state"`
	// message says what went wrong or what is awaited, if anything.
	// +optional
	Message string `json:"message,omitempty"`
}

// GlobalServiceStatus reports one service imported across the cluster set.
type GlobalServiceStatus struct {
	// name of the Service.
	Name string `json:"name"`
	// type of the import: ClusterSetIP or Headless.
	Type string `json:"type"`
	// ports of the import: the union of the exporters' ports.
	// +optional
	// +listType=atomic
	Ports []ServicePort `json:"ports,omitempty"`
	// sourceClusters export the service (valid exports only), oldest export first.
	// +optional
	// +listType=atomic
	SourceClusters []string `json:"sourceClusters,omitempty"`
	// importingClusters hold the ServiceImport and its endpoints.
	// +optional
	// +listType=atomic
	ImportingClusters []string `json:"importingClusters,omitempty"`
	// readyEndpoints counts the ready endpoint addresses over all source clusters.
	ReadyEndpoints int32 `json:"readyEndpoints"`
	// conflict says what the exports disagree on (the oldest export wins); empty when they agree.
	// +optional
	Conflict string `json:"conflict,omitempty"`
	// dnsNames the service answers to in the importing clusters.
	// +optional
	// +listType=atomic
	DNSNames []string `json:"dnsNames,omitempty"`
	// conditions of the service. StatusWritten says whether the members accept the
	// ServiceExport and ServiceImport status Meridian writes there (not written where another
	// Multi-Cluster Services implementation owns those kinds).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ServicePort is one port of an imported service.
type ServicePort struct {
	// +optional
	Name     string `json:"name,omitempty"`
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
	// +optional
	AppProtocol *string `json:"appProtocol,omitempty"`
}

// GlobalNamespaceStatus is what is in force in the members.
type GlobalNamespaceStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// clusters reports the namespace in each selected cluster (and in clusters it is being
	// removed from), sorted by cluster name.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Clusters []ClusterNamespaceStatus `json:"clusters,omitempty"`

	// services lists the namespace's services the cluster set imports, sorted by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	Services []GlobalServiceStatus `json:"services,omitempty"`

	// serviceCount is the number of services imported, for printing.
	// +optional
	ServiceCount int32 `json:"serviceCount,omitempty"`

	// summary counts clusters where the namespace is applied, e.g. "2/3", for printing.
	// +optional
	Summary string `json:"summary,omitempty"`
}

// GlobalNamespace is one namespace across the member clusters its placement selects.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=gns,categories=meridian
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is the default namespace name in the members"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Services",type=integer,JSONPath=`.status.serviceCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Namespace",type=string,priority=1,JSONPath=`.spec.namespaceName`
// +kubebuilder:printcolumn:name="Deletion",type=string,priority=1,JSONPath=`.spec.deletionPolicy`
// +kubebuilder:printcolumn:name="Discovery",type=string,priority=1,JSONPath=`.spec.serviceDiscovery.mode`
// +kubebuilder:printcolumn:name="Domain",type=string,priority=1,JSONPath=`.spec.serviceDiscovery.domain`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type GlobalNamespace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GlobalNamespaceSpec   `json:"spec"`
	Status GlobalNamespaceStatus `json:"status,omitempty"`
}

// GlobalNamespaceList is a list of GlobalNamespaces.
// +kubebuilder:object:root=true
type GlobalNamespaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GlobalNamespace `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GlobalNamespace{}, &GlobalNamespaceList{})
}

// NamespaceIn is the namespace's name in the given cluster.
func (g *GlobalNamespace) NamespaceIn(cluster string) string {
	for _, o := range g.Spec.Overrides {
		if o.Cluster == cluster {
			return o.NamespaceName
		}
	}
	if g.Spec.NamespaceName != "" {
		return g.Spec.NamespaceName
	}
	return g.Name
}

// GetConditions returns the conditions of the GlobalNamespace.
func (g *GlobalNamespace) GetConditions() []metav1.Condition { return g.Status.Conditions }

// SetConditions replaces the conditions of the GlobalNamespace.
func (g *GlobalNamespace) SetConditions(c []metav1.Condition) { g.Status.Conditions = c }
