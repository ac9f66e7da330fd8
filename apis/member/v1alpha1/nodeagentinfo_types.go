package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a NodeAgentInfo.
const (
	// ConfigValidCondition is True when the agent's config file is valid and in force. When False
	// the agent keeps running the last good config (configHash names it).
	ConfigValidCondition = "ConfigValid"
	// HealthyCondition is True when the agent's own parts (config watch, metrics server) work.
	HealthyCondition = "Healthy"
	// DataplaneReadyCondition is True when the node's dataplane enforces the policies in force.
	DataplaneReadyCondition = "DataplaneReady"
)

// Reasons of NodeAgentInfo conditions.
const (
	ConfigLoadedReason  = "ConfigLoaded"
	InvalidConfigReason = "InvalidConfig"
	// ConfigUnreadableReason: the config file cannot be read (missing, or a permission problem).
	ConfigUnreadableReason = "ConfigUnreadable"
	AgentRunningReason     = "AgentRunning"
	// MetricsServerFailedReason: the agent cannot serve on its metrics port (e.g. it is taken).
	MetricsServerFailedReason = "MetricsServerFailed"
	// DataplaneDisabledReason: the agent runs without a dataplane (an in-process agent started
	// without one); nothing is enforced on the node.
	DataplaneDisabledReason = "DataplaneDisabled"
	// DataplaneStartingReason: the agent waits for its informers to sync before it builds the
	// whole table in one transaction.
	DataplaneStartingReason = "DataplaneStarting"
	// DataplaneProgrammedReason: the node's table holds the policies in force.
	DataplaneProgrammedReason = "Programmed"
	// DataplaneProgrammingFailedReason: programming the table failed; the agent retries and the
	// table holds what it last programmed.
	DataplaneProgrammingFailedReason = "ProgrammingFailed"
)

// Agent names shared by the agent and what installs it.
const (
	// AgentNamespace holds the agent's DaemonSet, ConfigMap and Leases in every member.
	AgentNamespace = "meridian-system"
	// AgentLeasePrefix prefixes each node's agent Lease: meridian-agent-<node>.
	AgentLeasePrefix = "meridian-agent-"
)

// DataplaneStatus is what the agent last programmed into its node's table.
type DataplaneStatus struct {
	// generation counts the changes programmed into the table since the agent started (the
	// first full build is 1).
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// pods is the number of the node's pods the table enforces.
	// +optional
	Pods int32 `json:"pods,omitempty"`
	// rules is the number of policy rules in force over every pod and direction of the node.
	// +optional
	Rules int32 `json:"rules,omitempty"`
	// errors name the objects that could not be compiled and are not enforced, and why.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	Errors []string `json:"errors,omitempty"`
}

// RealizedPolicy is one policy the agent has put in force on its node.
type RealizedPolicy struct {
	// name of the policy object in the member.
	Name string `json:"name"`
	// generation of the policy object that is in force.
	Generation int64 `json:"generation"`
}

// NodeAgentInfo is what Meridian's agent on one node reports, written by that agent only when
// something in it changes. Its name is the node's name. Liveness is not here: the agent renews the
// Lease meridian-system/meridian-agent-<node> for that, as kubelets do.
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=nodeagentinfos,scope=Cluster,shortName=nai,categories=meridian
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.version`
// +kubebuilder:printcolumn:name="Config",type=string,JSONPath=`.configHash`
// +kubebuilder:printcolumn:name="ConfigValid",type=string,JSONPath=`.conditions[?(@.type=="ConfigValid")].status`
// +kubebuilder:printcolumn:name="Healthy",type=string,JSONPath=`.conditions[?(@.type=="Healthy")].status`
// +kubebuilder:printcolumn:name="Dataplane",type=string,JSONPath=`.conditions[?(@.type=="DataplaneReady")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeAgentInfo struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// version of the running agent.
	// +optional
	Version string `json:"version,omitempty"`

	// configHash is the hash of the config file in force (the last good one when ConfigValid is
	// False); empty while the agent runs its built-in defaults because no valid file was read yet.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`

	// refusedConfigHash is the hash of the config file the agent last refused while ConfigValid
	// is False (empty otherwise), so that the hub knows which revision was refused.
	// +optional
	RefusedConfigHash string `json:"refusedConfigHash,omitempty"`

	// enforcementMode in force: Enforce or Audit.
	// +optional
	EnforcementMode string `json:"enforcementMode,omitempty"`

	// conditions: ConfigValid, Healthy, DataplaneReady.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// policies in force on the node.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=10000
	Policies []RealizedPolicy `json:"policies,omitempty"`

	// dataplane is what the node's table holds.
	// +optional
	Dataplane *DataplaneStatus `json:"dataplane,omitempty"`
}

// NodeAgentInfoList is a list of NodeAgentInfos.
// +kubebuilder:object:root=true
type NodeAgentInfoList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeAgentInfo `json:"items"`
}

func init() {
	SchemeBuilder.Register(&NodeAgentInfo{}, &NodeAgentInfoList{})
}

// AgentLeaseDurationFactor is an agent Lease's duration in heartbeat intervals: kubelets renew a
// 40 s Lease every 10 s. The hub reads an agent's interval back from its Lease's duration.
const AgentLeaseDurationFactor = 4

// AgentLeaseName is the name of the Lease the agent of a node renews.
func AgentLeaseName(node string) string { return AgentLeasePrefix + node }
