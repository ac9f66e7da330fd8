package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MemberClusterNamespacePrefix prefixes the hub namespace that holds a member's per-cluster objects.
const MemberClusterNamespacePrefix = "meridian-member-"

// MaxMemberClusterNameLength keeps the derived hub namespace within a DNS label (63 characters).
const MaxMemberClusterNameLength = 63 - len(MemberClusterNamespacePrefix)

// DefaultKubeconfigSecretKey is the Secret key that holds a kubeconfig, by the Cluster API convention.
const DefaultKubeconfigSecretKey = "value"

// MemberClusterSpec says how the hub reaches a member cluster. Exactly one of kubeconfigSecretRef
// and clusterRef is set.
// +kubebuilder:validation:XValidation:rule="has(self.kubeconfigSecretRef) != has(self.clusterRef)",message="set exactly one of spec.kubeconfigSecretRef and spec.clusterRef"
type MemberClusterSpec struct {
	// kubeconfigSecretRef names a Secret on the hub whose key holds a kubeconfig for the member.
	// +optional
	KubeconfigSecretRef *KubeconfigSecretReference `json:"kubeconfigSecretRef,omitempty"`

	// clusterRef names a Cluster API Cluster on the hub. Its kubeconfig is read from the Secret
	// `<name>-kubeconfig`, key `value`, in the Cluster's namespace, as Cluster API writes it.
	// +optional
	ClusterRef *ClusterReference `json:"clusterRef,omitempty"`

	// probe sets how often and how patiently the hub checks the member.
	// +optional
	// +kubebuilder:default={}
	Probe ProbeSettings `json:"probe,omitempty"`

	// serviceDiscovery: Enabled (default) makes the member part of the cluster set's service
	// discovery (it exports and imports services, Multi-Cluster Services API); Disabled opts it out.
	// +optional
	// +kubebuilder:default=Enabled
	ServiceDiscovery ServiceDiscoveryParticipation `json:"serviceDiscovery,omitempty"`
}

// ServiceDiscoveryParticipation says whether a member takes part in the cluster set's service discovery.
// +kubebuilder:validation:Enum=Enabled;Disabled
type ServiceDiscoveryParticipation string

const (
	ServiceDiscoveryEnabled  ServiceDiscoveryParticipation = "Enabled"
	ServiceDiscoveryDisabled ServiceDiscoveryParticipation = "Disabled"
)

// KubeconfigSecretReference points at a kubeconfig in a Secret on the hub.
type KubeconfigSecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// key in the Secret's data that holds the kubeconfig.
	// +optional
	// +kubebuilder:default=value
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// ClusterReference points at a Cluster API Cluster (cluster.x-k8s.io) on the hub.
type ClusterReference struct {
	// name of the Cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// namespace of the Cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
}

// ProbeSettings bound how the hub probes a member. A member that does not answer within
// timeoutSeconds turns Reachable=False no later than failureThreshold×(intervalSeconds+timeoutSeconds)
// after it stopped.
type ProbeSettings struct {
	// intervalSeconds between two probes.
	// +optional
	// +kubebuilder:default=15
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	IntervalSeconds int32 `json:"intervalSeconds,omitempty"`

	// timeoutSeconds for each request to the member, connecting included.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=60
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`

	// failureThreshold is how many probes in a row must fail before a member that answered is
	// reported unreachable, so that one lost probe does not flip its Works' status.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// NodeSummary counts a member's nodes.
type NodeSummary struct {
	// total number of Nodes.
	Total int32 `json:"total"`
	// ready number of Nodes whose Ready condition is True.
	Ready int32 `json:"ready"`
	// summary is "ready/total", for printing.
	Summary string `json:"summary"`
}

// AgentVersionCount is how many agents run one version.
type AgentVersionCount struct {
	// version the agents report.
	Version string `json:"version"`
	// agents that report it.
	Agents int32 `json:"agents"`
}

// AgentSummary counts a member's Meridian node agents. An agent is ready when its Lease is fresh
// (renewed within three heartbeat intervals) and it reports itself healthy; stale when its Lease
// was not renewed for three intervals; up to date when it runs the version and config hash of the
// AgentConfig revision the member was handed.
type AgentSummary struct {
	// agentConfig is the AgentConfig whose revision the member was handed ("" when none).
	// +optional
	AgentConfig string `json:"agentConfig,omitempty"`
	// version the agents should run (the revision's).
	// +optional
	Version string `json:"version,omitempty"`
	// configHash of the config file the agents should run (the revision's).
	// +optional
	ConfigHash string `json:"configHash,omitempty"`
	// desired is the number of the member's nodes: each should run an agent.
	Desired int32 `json:"desired"`
	// ready agents.
	Ready int32 `json:"ready"`
	// upToDate agents run the version and config hash above.
	UpToDate int32 `json:"upToDate"`
	// stale agents have not renewed their Lease for three heartbeat intervals.
	Stale int32 `json:"stale"`
	// configInvalid agents refused the config file they were given (ConfigValid=False) and keep
	// running their last good one.
	ConfigInvalid int32 `json:"configInvalid"`
	// versions the agents report, with how many run each.
	// +optional
	// +listType=map
	// +listMapKey=version
	Versions []AgentVersionCount `json:"versions,omitempty"`
	// message names the first problem found, with its node: a stale Lease, a refused config.
	// +optional
	Message string `json:"message,omitempty"`
	// summary is "ready/desired", for printing.
	Summary string `json:"summary"`
	// antrea summarises Antrea's agents and controller where Antrea runs in the member (its
	// AntreaAgentInfo and AntreaControllerInfo kinds are served).
	// +optional
	Antrea *AntreaSummary `json:"antrea,omitempty"`
}

// AntreaSummary counts Antrea's agents from their AntreaAgentInfo reports (crd.antrea.io/v1beta1).
type AntreaSummary struct {
	// agents report an AntreaAgentInfo.
	Agents int32 `json:"agents"`
	// ready agents say AgentHealthy=True with a heartbeat within three of Antrea's report intervals.
	Ready int32 `json:"ready"`
	// versions the agents report.
	// +optional
	// +listType=map
	// +listMapKey=version
	Versions []AgentVersionCount `json:"versions,omitempty"`
	// controllerVersion is the version the antrea-controller reports ("" without one).
	// +optional
	ControllerVersion string `json:"controllerVersion,omitempty"`
	// controllerReady: the controller says ControllerHealthy=True with a fresh heartbeat.
	ControllerReady bool `json:"controllerReady"`
}

// MemberClusterStatus is what the hub last learned of the member.
type MemberClusterStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready and Reachable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// namespace on the hub that holds this member's per-cluster objects (meridian-member-<name>).
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// kubernetesVersion the member's apiserver reports (gitVersion).
	// +optional
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`

	// nodes of the member.
	// +optional
	Nodes *NodeSummary `json:"nodes,omitempty"`

	// agents summarises the member's node agents (Meridian's, and Antrea's where it runs), as the
	// hub last aggregated them from the member's Leases and agent reports. Written at most once
	// per heartbeat interval however many nodes change.
	// +optional
	Agents *AgentSummary `json:"agents,omitempty"`

	// lastProbeTime is when the hub last probed the member successfully or not. To keep a healthy
	// fleet silent it is written when the probe result changes and otherwise at most once per
	// status refresh interval of the manager (default 5m).
	// +optional
	LastProbeTime *metav1.Time `json:"lastProbeTime,omitempty"`
}

// MemberCluster is a Kubernetes cluster that the hub federates.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mc,categories=meridian
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.kubernetesVersion`
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes.summary`
// +kubebuilder:printcolumn:name="Agents",type=string,JSONPath=`.status.agents.summary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Agents-Updated",type=integer,priority=1,JSONPath=`.status.agents.upToDate`
// +kubebuilder:printcolumn:name="Agents-Stale",type=integer,priority=1,JSONPath=`.status.agents.stale`
// +kubebuilder:printcolumn:name="Reachable",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Reachable")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Reachable")].reason`
// +kubebuilder:printcolumn:name="Namespace",type=string,priority=1,JSONPath=`.status.namespace`
// +kubebuilder:printcolumn:name="Last-Probe",type=date,priority=1,JSONPath=`.status.lastProbeTime`
type MemberCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MemberClusterSpec   `json:"spec,omitempty"`
	Status MemberClusterStatus `json:"status,omitempty"`
}

// MemberClusterList is a list of MemberClusters.
// +kubebuilder:object:root=true
type MemberClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MemberCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MemberCluster{}, &MemberClusterList{})
}

// HubNamespace is the hub namespace that holds this member's per-cluster objects.
func (m *MemberCluster) HubNamespace() string {
	return MemberClusterNamespacePrefix + m.Name
}

// KubeconfigSecret says where the member's kubeconfig lives: a Secret's namespace, name and key.
func (m *MemberCluster) KubeconfigSecret() (namespace, name, key string) {
	switch {
	case m.Spec.KubeconfigSecretRef != nil:
		key = m.Spec.KubeconfigSecretRef.Key
		if key == "" {
			key = DefaultKubeconfigSecretKey
		}
		return m.Spec.KubeconfigSecretRef.Namespace, m.Spec.KubeconfigSecretRef.Name, key
	case m.Spec.ClusterRef != nil:
		return m.Spec.ClusterRef.Namespace, m.Spec.ClusterRef.Name + "-kubeconfig", DefaultKubeconfigSecretKey
	}
	return "", "", ""
}

// GetConditions returns the conditions of the MemberCluster.
func (m *MemberCluster) GetConditions() []metav1.Condition { return m.Status.Conditions }

// SetConditions replaces the conditions of the MemberCluster.
func (m *MemberCluster) SetConditions(c []metav1.Condition) { m.Status.Conditions = c }
