package v1alpha1

// Condition types of a GlobalNamespace (kstatus: Ready, and Reconciling/Stalled while they hold).
const (
	ReadyCondition       = "Ready"
	ReconcilingCondition = "Reconciling"
	StalledCondition     = "Stalled"
)

// Reasons of GlobalNamespace conditions.
const (
	// AllAppliedReason: the namespace exists as wanted in every selected cluster.
	AllAppliedReason = "AllApplied"
	// ApplyPendingReason: some clusters do not have the namespace yet.
	ApplyPendingReason = "ApplyPending"
	// MembersUnreachableReason: some selected clusters cannot be reached.
	MembersUnreachableReason = "MembersUnreachable"
	// ConflictReason: in some cluster the namespace exists and Meridian may not take it over.
	ConflictReason = "Conflict"
	// ApplyFailedReason: some member refused the namespace.
	ApplyFailedReason = "ApplyFailed"
	// RemovingReason: clusters that left the placement are being cleaned up.
	RemovingReason = "Removing"
	// NoClustersReason: the placement selects no cluster.
	NoClustersReason = "NoClusters"
	// WorkWriteFailedReason: writing or deleting the GlobalNamespace's ClusterWorks on the hub
	// failed; Meridian retries.
	WorkWriteFailedReason = "WorkWriteFailed"
	// DeletingReason: the GlobalNamespace is being deleted.
	DeletingReason = "Deleting"
)

// Condition types and reasons of a service in GlobalNamespace status.services.
const (
	// StatusWrittenCondition is True when every member accepted the MCS status Meridian last
	// wrote there for the service (ServiceExport conditions, ServiceImport clusters).
	StatusWrittenCondition = "StatusWritten"
	// StatusWrittenReason: no member refused a status write of the service.
	StatusWrittenReason = "StatusWritten"
	// StatusWriteRefusedReason: a member refused a status write (its admission, RBAC or schema);
	// the message names the member, the object and the member's answer.
	StatusWriteRefusedReason = "StatusWriteRefused"
)

// Labels and finalizers on hub and member objects.
const (
	// GlobalNamespaceLabel names the GlobalNamespace a ClusterWork (on the hub) or a namespace (in
	// a member) comes from.
	GlobalNamespaceLabel = "networking.meridian.io/global-namespace"
	// GlobalNamespaceFinalizer lets Meridian carry out the deletion policy in every member first.
	GlobalNamespaceFinalizer = "networking.meridian.io/global-namespace"
	// WorkNamePrefix prefixes the ClusterWork that carries a GlobalNamespace to a member.
	WorkNamePrefix = "gns-"
)

// Labels of the hub ClusterWorks that carry an imported service to a member.
const (
	// ServiceNamespaceLabel and ServiceNameLabel name the service a ClusterWork imports.
	ServiceNamespaceLabel = "multicluster.meridian.io/service-namespace"
	ServiceNameLabel      = "multicluster.meridian.io/service-name"
	// ImportWorkPrefix prefixes the ClusterWork that imports a service into a member:
	// mcs-<namespace>-<service>, with a hash where that could be ambiguous (internal/names).
	ImportWorkPrefix = "mcs-"
	// CRDWorkName is the ClusterWork that installs the Multi-Cluster Services CRDs into a member.
	CRDWorkName = "meridian-mcs-crds"
)
