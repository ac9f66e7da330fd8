package v1alpha1

// Condition types of a MemberCluster.
const (
	// ReadyCondition is True when the member is reachable and reports a healthy inventory.
	ReadyCondition = "Ready"
	// ReachableCondition is True when the last probe of the member's apiserver succeeded.
	ReachableCondition = "Reachable"
)

// Reasons of MemberCluster conditions.
const (
	// ProbeSucceededReason: the member answered the last probe.
	ProbeSucceededReason = "ProbeSucceeded"
	// ProbePendingReason: the member has not been probed yet with its current kubeconfig.
	ProbePendingReason = "ProbePending"
	// MemberUnreachableReason: the member did not answer within the probe timeout.
	MemberUnreachableReason = "MemberUnreachable"
	// UnauthorizedReason: the member refused the credentials in the kubeconfig.
	UnauthorizedReason = "Unauthorized"
	// ForbiddenReason: the member's RBAC forbids the kubeconfig's user what the probe needs.
	ForbiddenReason = "Forbidden"
	// InvalidKubeconfigReason: the kubeconfig is missing its key, cannot be parsed or names no usable cluster.
	InvalidKubeconfigReason = "InvalidKubeconfig"
	// KubeconfigSecretNotFoundReason: the Secret that should hold the kubeconfig does not exist.
	KubeconfigSecretNotFoundReason = "KubeconfigSecretNotFound"
	// ClusterNotFoundReason: the referenced Cluster API Cluster does not exist.
	ClusterNotFoundReason = "ClusterNotFound"
	// ControlPlaneNotInitializedReason: the referenced Cluster API Cluster has no initialised control plane yet.
	ControlPlaneNotInitializedReason = "ControlPlaneNotInitialized"
	// MemberReadyReason: the member is reachable and healthy.
	MemberReadyReason = "MemberReady"
	// DeletingReason: the MemberCluster is being deleted.
	DeletingReason = "Deleting"
	// ReconcileFailedReason: the last pass over the MemberCluster failed (its hub namespace or its
	// kubeconfig Secret could not be read or written); the status describes an older generation.
	ReconcileFailedReason = "ReconcileFailed"
)

// Labels and annotations Meridian sets on hub objects.
const (
	// JoinLabel on a Cluster API Cluster asks Meridian to register it as a MemberCluster.
	JoinLabel = "meridian.io/join"
	// MemberClusterLabel names the MemberCluster a hub object belongs to.
	MemberClusterLabel = "fleet.meridian.io/member-cluster"
	// DiscoveredClusterNamespaceLabel and DiscoveredClusterNameLabel mark a MemberCluster that
	// Meridian created for a Cluster API Cluster, naming that Cluster.
	DiscoveredClusterNamespaceLabel = "fleet.meridian.io/cluster-namespace"
	DiscoveredClusterNameLabel      = "fleet.meridian.io/cluster-name"
)

// Condition types of a ClusterWork (besides Ready).
const (
	// AppliedCondition is True when every object of the Work is applied to the member.
	AppliedCondition = "Applied"
	// AvailableCondition is True when every applied object reports itself ready (kstatus Current).
	AvailableCondition = "Available"
	// DegradedCondition is True when an object is in conflict or the member refused it.
	DegradedCondition = "Degraded"
	// ReconcilingCondition is True while objects are still being applied or becoming available.
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True when progress needs a person: a conflict or a refused object.
	StalledCondition = "Stalled"
)

// Reasons of ClusterWork conditions.
const (
	AllAppliedReason         = "AllApplied"
	ApplyPendingReason       = "ApplyPending"
	ApplyFailedReason        = "ApplyFailed"
	ConflictReason           = "Conflict"
	AllAvailableReason       = "AllAvailable"
	ProgressingReason        = "Progressing"
	HealthyReason            = "Healthy"
	InvalidObjectsReason     = "InvalidObjects"
	MemberNotConnectedReason = "MemberNotConnected"
	// PruneFailedReason: the objects are applied, but removing one the Work no longer lists failed.
	PruneFailedReason = "PruneFailed"
)

// Labels and annotations the work syncer sets on the objects it writes to members.
const (
	// ManagedByLabel marks every object Meridian owns in a member; its value is ManagedByValue.
	ManagedByLabel = "fleet.meridian.io/managed-by"
	ManagedByValue = "meridian"
	// WorkAnnotation names the ClusterWork (in the member's hub namespace) that owns the object.
	WorkAnnotation = "fleet.meridian.io/work"
	// FieldManager is the server-side apply field manager of every write to members.
	FieldManager = "meridian"
	// WorkFinalizer lets the syncer remove a deleted Work's objects from the member first.
	WorkFinalizer = "fleet.meridian.io/work-cleanup"
	// AdoptedLabel marks a member object that existed before Meridian took it over (spec.adopt).
	// Pruning never deletes such an object, whatever the deletion policy: it is orphaned instead.
	AdoptedLabel = "fleet.meridian.io/adopted"
	// OrphanedFromAnnotation names the ClusterWork that created an object and then orphaned it.
	// When that Work lists the object again, Meridian takes it back without needing spec.adopt.
	OrphanedFromAnnotation = "fleet.meridian.io/orphaned-from"
)
