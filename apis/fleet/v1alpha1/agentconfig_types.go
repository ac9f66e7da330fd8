package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AgentFeatureGates are the feature gates the node agent knows, with their defaults. A gate that
// is not listed here is refused by the API (the agent would not obey it).
var AgentFeatureGates = map[string]bool{
	// ProcessMetrics adds the Go runtime and process collectors to the agent's /metrics.
	"ProcessMetrics": false,
}

// EnforcementMode says whether the agent's dataplane drops what policy denies.
// +kubebuilder:validation:Enum=Enforce;Audit
type EnforcementMode string

const (
	// EnforcementEnforce drops (or rejects) what policy denies.
	EnforcementEnforce EnforcementMode = "Enforce"
	// EnforcementAudit drops nothing and logs what would have been dropped.
	EnforcementAudit EnforcementMode = "Audit"
)

// DropLogging configures the agent's log of dropped (in Audit mode: would-be dropped) packets.
type DropLogging struct {
	// enabled turns the drop log on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// ratePerSecond bounds the drop log lines per node per second; lines beyond it are counted
	// (metric meridian_agent_drop_log_suppressed_total), not written.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	RatePerSecond int32 `json:"ratePerSecond,omitempty"`
}

// AgentSettings is the node agent's configuration, each field a knob the agent obeys. It reaches
// every node as the agent's config file (docs/agent.md).
// +kubebuilder:validation:XValidation:rule="!has(self.featureGates) || self.featureGates.all(g, g in ['ProcessMetrics'])",message="config.featureGates: unknown gate; the agent knows only ProcessMetrics"
type AgentSettings struct {
	// enforcementMode: Enforce (default) drops what policy denies; Audit drops nothing and logs
	// what would have been dropped.
	// +optional
	// +kubebuilder:default=Enforce
	EnforcementMode EnforcementMode `json:"enforcementMode,omitempty"`

	// dropLogging configures the log of dropped packets.
	// +optional
	// +kubebuilder:default={}
	DropLogging DropLogging `json:"dropLogging,omitempty"`

	// heartbeatIntervalSeconds is how often the agent renews its Lease. The hub counts an agent
	// stale after three intervals without a renewal.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	HeartbeatIntervalSeconds int32 `json:"heartbeatIntervalSeconds,omitempty"`

	// logVerbosity is the agent's log level (klog -v): 0 state changes only, 4 internals.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	LogVerbosity int32 `json:"logVerbosity,omitempty"`

	// metricsPort is the host port the agent serves /metrics, /healthz and /readyz on (the
	// agent runs in the host network).
	// +optional
	// +kubebuilder:default=9465
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	MetricsPort int32 `json:"metricsPort,omitempty"`

	// featureGates turns the agent's optional features on or off. Known gates: ProcessMetrics.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	FeatureGates map[string]bool `json:"featureGates,omitempty"`
}

// AgentSettingsOverride changes some settings for some clusters; unset fields keep the base value.
// +kubebuilder:validation:XValidation:rule="!has(self.featureGates) || self.featureGates.all(g, g in ['ProcessMetrics'])",message="overrides[].config.featureGates: unknown gate; the agent knows only ProcessMetrics"
type AgentSettingsOverride struct {
	// +optional
	EnforcementMode *EnforcementMode `json:"enforcementMode,omitempty"`
	// +optional
	DropLoggingEnabled *bool `json:"dropLoggingEnabled,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	DropLoggingRatePerSecond *int32 `json:"dropLoggingRatePerSecond,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	HeartbeatIntervalSeconds *int32 `json:"heartbeatIntervalSeconds,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	LogVerbosity *int32 `json:"logVerbosity,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	MetricsPort *int32 `json:"metricsPort,omitempty"`
	// featureGates are merged into the base gates, gate by gate.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	FeatureGates map[string]bool `json:"featureGates,omitempty"`
}

// AgentOverride changes the configuration in the clusters its selector picks. Overrides apply in
// list order, so a later one wins where two set the same field.
type AgentOverride struct {
	// name identifies the override.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// clusterSelector picks the MemberClusters, by their labels, that the override applies to.
	ClusterSelector metav1.LabelSelector `json:"clusterSelector"`

	// config holds the settings to change.
	Config AgentSettingsOverride `json:"config"`
}

// RolloutFailurePolicy says what a failed cluster does to the rollout.
// +kubebuilder:validation:Enum=Stop;Continue
type RolloutFailurePolicy string

const (
	// RolloutStop stops the rollout at the failed cluster's wave: later waves keep the old config.
	RolloutStop RolloutFailurePolicy = "Stop"
	// RolloutContinue reports the failed cluster and goes on with the next waves.
	RolloutContinue RolloutFailurePolicy = "Continue"
)

// AgentRollout says how a change reaches the selected clusters: in waves of clusters (in the order
// of their names), a wave starting only when every cluster of the previous wave reports all its
// agents updated and ready.
// +kubebuilder:validation:XValidation:rule="!has(self.waveSize) || (type(self.waveSize) == int ? self.waveSize >= 1 : self.waveSize.matches('^(100|[1-9][0-9]?)%$'))",message="rollout.waveSize must be a count of clusters of at least 1 or a percentage from 1% to 100%"
type AgentRollout struct {
	// waveSize is how many clusters a wave holds: a count, or a percentage of the selected
	// clusters (rounded up). Default 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	WaveSize *intstr.IntOrString `json:"waveSize,omitempty"`

	// progressDeadlineSeconds bounds how long a cluster may take, from the moment its Work
	// carries the change, to report every agent updated and ready; past it the rollout is Stalled.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=86400
	ProgressDeadlineSeconds int32 `json:"progressDeadlineSeconds,omitempty"`

	// paused stops handing the change to further clusters; clusters that have it keep it.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// failurePolicy: Stop (default) stops the rollout when a cluster fails (an agent refuses the
	// config, or the deadline passes); Continue reports it and goes on.
	// +optional
	// +kubebuilder:default=Stop
	FailurePolicy RolloutFailurePolicy `json:"failurePolicy,omitempty"`

	// maxUnavailable is the DaemonSet's rolling update bound inside each cluster: how many nodes'
	// agents may be down at once while they are replaced. Default 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// AgentConfigSpec says which agent runs on which clusters, configured how, rolled out how.
type AgentConfigSpec struct {
	// placement selects the member clusters that run the agent.
	Placement Placement `json:"placement"`

	// image of the agent, a reference a container runtime can pull.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$`
	Image string `json:"image"`

	// version of the agent the image holds, as the agents report it in NodeAgentInfo: an agent
	// counts as updated when it reports this version and the config hash it should run.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._+-]*$`
	Version string `json:"version"`

	// config is the agent's configuration in every selected cluster, before overrides.
	// +optional
	// +kubebuilder:default={}
	Config AgentSettings `json:"config,omitempty"`

	// overrides change the configuration in the clusters their selectors pick.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Overrides []AgentOverride `json:"overrides,omitempty"`

	// rollout says how a change reaches the clusters.
	// +optional
	// +kubebuilder:default={}
	Rollout AgentRollout `json:"rollout,omitempty"`
}

// AgentClusterPhase says where one cluster stands in the rollout.
// +kubebuilder:validation:Enum=Pending;Progressing;Updated;Failed;Conflict;Unreachable
type AgentClusterPhase string

const (
	// AgentClusterPending: the cluster waits for its wave; it keeps its previous config.
	AgentClusterPending AgentClusterPhase = "Pending"
	// AgentClusterProgressing: the cluster has the change; its agents are being updated.
	AgentClusterProgressing AgentClusterPhase = "Progressing"
	// AgentClusterUpdated: every agent of the cluster runs the wanted version and config, and is ready.
	AgentClusterUpdated AgentClusterPhase = "Updated"
	// AgentClusterFailed: an agent refused the config, or the cluster passed the progress deadline.
	AgentClusterFailed AgentClusterPhase = "Failed"
	// AgentClusterConflict: another AgentConfig selects the cluster too; neither is applied there.
	AgentClusterConflict AgentClusterPhase = "Conflict"
	// AgentClusterUnreachable: the member cannot be reached.
	AgentClusterUnreachable AgentClusterPhase = "Unreachable"
)

// AgentClusterStatus reports the agents of one cluster.
type AgentClusterStatus struct {
	// cluster is the MemberCluster's name.
	Cluster string `json:"cluster"`
	// wave is the cluster's wave, counted from 1 as the messages count them ("wave 2 of 3");
	// 0 for a cluster in no wave (another AgentConfig holds it).
	Wave int32 `json:"wave"`
	// phase of the cluster in the rollout.
	Phase AgentClusterPhase `json:"phase"`
	// version the cluster's Work carries.
	// +optional
	Version string `json:"version,omitempty"`
	// configHash of the config file the cluster's Work carries.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`
	// desired is the number of nodes that should run an agent.
	Desired int32 `json:"desired"`
	// updated agents run the wanted version and config.
	Updated int32 `json:"updated"`
	// ready agents are ready.
	Ready int32 `json:"ready"`
	// stale agents have not renewed their Lease for three heartbeat intervals.
	Stale int32 `json:"stale"`
	// message says what is awaited or what went wrong.
	// +optional
	Message string `json:"message,omitempty"`
}

// RolloutPhase says where the rollout as a whole stands.
// +kubebuilder:validation:Enum=Progressing;Complete;Paused;Stalled
type RolloutPhase string

const (
	RolloutProgressing RolloutPhase = "Progressing"
	RolloutComplete    RolloutPhase = "Complete"
	RolloutPaused      RolloutPhase = "Paused"
	RolloutStalled     RolloutPhase = "Stalled"
)

// RolloutStatus reports the rollout across clusters.
type RolloutStatus struct {
	// phase of the rollout.
	Phase RolloutPhase `json:"phase"`
	// wave being rolled out, counted from 1 as the messages count them ("wave 2 of 3"): equal
	// to waves when complete, 0 when no cluster is selected.
	Wave int32 `json:"wave"`
	// waves in all.
	Waves int32 `json:"waves"`
	// summary is "<updated>/<selected> clusters", for printing.
	Summary string `json:"summary"`
}

// AgentConfigStatus is what the hub last learned of the agents.
type AgentConfigStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled, Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// rollout across the selected clusters.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`

	// clusters reports each selected cluster.
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Clusters []AgentClusterStatus `json:"clusters,omitempty"`
}

// AgentConfig installs and configures Meridian's node agent on the member clusters it selects and
// rolls changes out across them in waves.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ac,categories=meridian
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Clusters",type=string,JSONPath=`.status.rollout.summary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Rollout",type=string,priority=1,JSONPath=`.status.rollout.phase`
// +kubebuilder:printcolumn:name="Wave",type=integer,priority=1,JSONPath=`.status.rollout.wave`
// +kubebuilder:printcolumn:name="Waves",type=integer,priority=1,JSONPath=`.status.rollout.waves`
// +kubebuilder:printcolumn:name="Paused",type=boolean,priority=1,JSONPath=`.spec.rollout.paused`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
type AgentConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AgentConfigSpec   `json:"spec,omitempty"`
	Status AgentConfigStatus `json:"status,omitempty"`
}

// AgentConfigList is a list of AgentConfigs.
// +kubebuilder:object:root=true
type AgentConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AgentConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AgentConfig{}, &AgentConfigList{})
}

// GetConditions returns the conditions of the AgentConfig.
func (a *AgentConfig) GetConditions() []metav1.Condition { return a.Status.Conditions }

// SetConditions replaces the conditions of the AgentConfig.
func (a *AgentConfig) SetConditions(c []metav1.Condition) { a.Status.Conditions = c }

// Condition types of an AgentConfig (besides Ready, Reconciling, Stalled and Degraded, shared with
// other kinds).
const (
	// ProgressingCondition is True while the rollout hands the change to clusters and waits for them.
	ProgressingCondition = "Progressing"
)

// Reasons of AgentConfig conditions.
const (
	// RolloutCompleteReason: every selected cluster runs the wanted agents, all ready.
	RolloutCompleteReason = "RolloutComplete"
	// RolloutProgressingReason: a wave is being rolled out.
	RolloutProgressingReason = "RolloutProgressing"
	// RolloutPausedReason: spec.rollout.paused holds the rollout.
	RolloutPausedReason = "RolloutPaused"
	// ProgressDeadlineExceededReason: a cluster did not report its agents updated and ready in time.
	ProgressDeadlineExceededReason = "ProgressDeadlineExceeded"
	// ClusterFailedReason: a cluster's install could not be compiled.
	ClusterFailedReason = "ClusterFailed"
	// ConfigInvalidReason: agents of a cluster that was handed the revision refused its config
	// file (ConfigValid=False); they keep their last good config.
	ConfigInvalidReason = "ConfigInvalid"
	// AgentConfigConflictReason: another AgentConfig selects one of the clusters.
	AgentConfigConflictReason = "AgentConfigConflict"
	// NoClustersSelectedReason: the placement selects no cluster.
	NoClustersSelectedReason = "NoClustersSelected"
	// InvalidPlacementReason: the placement's selector cannot be parsed.
	InvalidPlacementReason = "InvalidPlacement"
)

// Labels and annotations of the AgentConfig's objects.
const (
	// AgentConfigLabel names the AgentConfig a ClusterWork carries.
	AgentConfigLabel = "fleet.meridian.io/agent-config"
	// AgentVersionAnnotation and AgentWorkConfigHashAnnotation on a ClusterWork say which agent
	// version and config hash the member's agents should report, for the hub's aggregation.
	AgentVersionAnnotation        = "agent.meridian.io/version"
	AgentWorkConfigHashAnnotation = "agent.meridian.io/config-hash"
	// AgentConfigHashAnnotation on the agent's pod template holds the hash of its config file, so
	// that a changed config rolls the DaemonSet.
	AgentConfigHashAnnotation = "agent.meridian.io/config-hash"
	// AgentWorkNamePrefix prefixes the ClusterWork that carries an AgentConfig to a member.
	AgentWorkNamePrefix = "agent-"
)
