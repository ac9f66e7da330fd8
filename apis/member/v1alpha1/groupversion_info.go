// Package v1alpha1 holds the member.meridian.io API: the kinds Meridian puts into member clusters
// (never installed on the hub), read and written there by Meridian's node agents and read back by
// the hub: the member-side policy form and each node's agent state.
// +kubebuilder:object:generate=true
// +groupName=member.meridian.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "member.meridian.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
