// Package compile turns the GlobalNetworkPolicies placed on one member into that member's
// ClusterWorks, one per policy, in the most faithful form the member's API offers, and reads the
// Works' status back into the policy's per-cluster status. It is pure: the controller in
// controllers/policy fetches, calls it, and writes.
package compile

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
)

// The kinds whose presence in a member's discovery picks its form, most faithful first.
var (
	MeridianKind = memberv1alpha1.GroupVersion.WithKind("MemberNetworkPolicy")
	AntreaKind   = schema.GroupVersionKind{Group: antrea.Group, Version: antrea.Version, Kind: "ClusterNetworkPolicy"}
	CNPKind      = schema.GroupVersionKind{Group: "policy.networking.k8s.io", Version: "v1beta1", Kind: "ClusterNetworkPolicy"}
)

// ChooseForm picks the member's form from the kinds its API serves: Meridian's own
// MemberNetworkPolicy, else Antrea's ClusterNetworkPolicy (with its Tier), else the upstream
// ClusterNetworkPolicy, else NetworkPolicy, which every member serves.
func ChooseForm(served map[schema.GroupVersionKind]bool) policyv1alpha1.Form {
	switch {
	case served[MeridianKind]:
		return policyv1alpha1.FormMeridian
	case served[AntreaKind] && served[AntreaKind.GroupVersion().WithKind("Tier")]:
		return policyv1alpha1.FormAntrea
	case served[CNPKind]:
		return policyv1alpha1.FormClusterNetworkPolicy
	}
	return policyv1alpha1.FormNetworkPolicy
}

// FormKinds are the kinds ChooseForm looks at, for a discovery client to ask about.
func FormKinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{MeridianKind, AntreaKind, AntreaKind.GroupVersion().WithKind("Tier"), CNPKind}
}
