package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MaxClusterWorkObjects bounds spec.objects. Together with the apiserver's request limit it keeps a
// ClusterWork well under etcd's object size limit (about 1.5 MiB): a compiler that has more objects
// for one cluster splits them into several ClusterWorks, numbered by a suffix (`<source>-0`,
// `<source>-1`, ...), each at most this many objects and at most MaxClusterWorkBytes of manifests.
const MaxClusterWorkObjects = 500

// MaxClusterWorkBytes is the most manifest bytes one ClusterWork may carry (1 MiB).
const MaxClusterWorkBytes = 1 << 20

// DeletionPolicy says what happens in the member to an object a ClusterWork no longer lists, or to
// every object of a deleted ClusterWork.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the object from the member.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the object in the member and strips Meridian's labels from it.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// ClusterWorkSpec lists the objects one source wants in one member cluster.
type ClusterWorkSpec struct {
	// objects are whole Kubernetes objects of any kind, namespaced or not, as they should be in the
	// member. Each needs apiVersion, kind and metadata.name (and metadata.namespace when the kind
	// is namespaced).
	// +kubebuilder:validation:MaxItems=500
	// +listType=atomic
	// +optional
	Objects []WorkObject `json:"objects,omitempty"`

	// deletionPolicy for objects dropped from the list and for all objects when the ClusterWork is
	// deleted.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// adopt lets the syncer take over objects that already exist in the member and that Meridian
	// did not create. Without it such an object is left untouched and reported as a Conflict.
	// +optional
	Adopt bool `json:"adopt,omitempty"`

	// statusFeedback names fields to read back from applied objects into status.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	StatusFeedback []FeedbackRule `json:"statusFeedback,omitempty"`
}

// WorkObject is one whole Kubernetes object.
// +kubebuilder:pruning:PreserveUnknownFields
// +kubebuilder:validation:EmbeddedResource
type WorkObject struct {
	runtime.RawExtension `json:",inline"`
}

// FeedbackRule reads fields of the applied objects that match it.
type FeedbackRule struct {
	// group of the objects ("" for the core group).
	// +optional
	Group string `json:"group,omitempty"`
	// kind of the objects.
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// name of one object; empty for every object of the kind in the Work.
	// +optional
	Name string `json:"name,omitempty"`
	// namespace of the object; empty matches any.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// fields to read.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	Fields []FeedbackField `json:"fields"`
}

// FeedbackField is one field to read back.
type FeedbackField struct {
	// name under which the value is reported.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// jsonPath of the field, in kubectl's JSONPath syntax without braces, e.g. `.status.numberReady`.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^\.`
	JSONPath string `json:"jsonPath"`
}

// ObjectState says what happened to one object.
// +kubebuilder:validation:Enum=Applied;Pending;Conflict;Failed;Deleting
type ObjectState string

const (
	// ObjectApplied: the member holds the object as the Work wants it.
	ObjectApplied ObjectState = "Applied"
	// ObjectPending: not applied yet (the member is unreachable, or the object waits for its CRD or namespace).
	ObjectPending ObjectState = "Pending"
	// ObjectConflict: the object exists in the member and Meridian does not own it; it was not touched.
	ObjectConflict ObjectState = "Conflict"
	// ObjectFailed: the member refused the object; the message says why.
	ObjectFailed ObjectState = "Failed"
)

// ObjectStatus reports one object of the Work.
type ObjectStatus struct {
	// group, version, kind, namespace and name identify the object.
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// state of the object in the member.
	State ObjectState `json:"state"`
	// generation of the object in the member after Meridian's last apply.
	// +optional
	AppliedGeneration int64 `json:"appliedGeneration,omitempty"`
	// conflictManagers are the field managers of the member object Meridian refused to take over.
	// +optional
	// +listType=atomic
	ConflictManagers []string `json:"conflictManagers,omitempty"`
	// health is kstatus's verdict on the object in the member: Current, InProgress, Failed, ...
	// +optional
	Health string `json:"health,omitempty"`
	// feedback are the values of the statusFeedback fields, as JSON.
	// +optional
	// +listType=map
	// +listMapKey=name
	Feedback []FeedbackValue `json:"feedback,omitempty"`
	// message says what went wrong, if anything.
	// +optional
	Message string `json:"message,omitempty"`
}

// FeedbackValue is one field read back from a member object.
type FeedbackValue struct {
	Name string `json:"name"`
	// value as JSON (a number, string, boolean, object or list).
	Value string `json:"value"`
}

// ClusterWorkStatus is what the syncer did with the Work.
type ClusterWorkStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Applied, Available, Degraded, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// objects reports each object of the Work, in the order of spec.objects.
	// +optional
	// +listType=atomic
	Objects []ObjectStatus `json:"objects,omitempty"`
	// summary counts objects by state, for printing, e.g. "3/3 applied".
	// +optional
	Summary string `json:"summary,omitempty"`
}

// ClusterWork holds the objects one source wants in one member cluster. It lives in the member's
// hub namespace, meridian-member-<cluster>.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cw,categories=meridian
// +kubebuilder:printcolumn:name="Applied",type=string,JSONPath=`.status.conditions[?(@.type=="Applied")].status`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Objects",type=string,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Applied")].reason`
type ClusterWork struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterWorkSpec   `json:"spec,omitempty"`
	Status ClusterWorkStatus `json:"status,omitempty"`
}

// ClusterWorkList is a list of ClusterWorks.
// +kubebuilder:object:root=true
type ClusterWorkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterWork `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClusterWork{}, &ClusterWorkList{})
}
