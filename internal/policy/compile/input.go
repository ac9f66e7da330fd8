package compile

import (
	"slices"
	"sort"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/placement"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// MemberInput gathers the hub's side of a member's translation: the policies whose placement
// selects it (those in a tier that exists and not being deleted) with their placements, and the
// tiers. The caller adds the member's namespaces and the pods of PeerClusters.
func MemberInput(member string, tiers []policyv1alpha1.Tier, members []fleetv1alpha1.MemberCluster, policies []policyv1alpha1.GlobalNetworkPolicy) translate.Input {
	return NewHub(tiers, members, policies).MemberInput(member)
}

// Hub is the hub's side of every member's translation, for a pass over several members: the
// tiers, and the clusters each policy's placement selects, selected once.
type Hub struct {
	tiers      []policyv1alpha1.Tier
	policies   []*policyv1alpha1.GlobalNetworkPolicy
	placements map[string][]string
}

// NewHub selects the clusters of every policy in a tier that exists and not being deleted; a
// policy whose placement is invalid is placed nowhere (its own pass reports it).
func NewHub(tiers []policyv1alpha1.Tier, members []fleetv1alpha1.MemberCluster, policies []policyv1alpha1.GlobalNetworkPolicy) *Hub {
	h := &Hub{tiers: tiers, placements: map[string][]string{}}
	known := map[string]bool{}
	for _, t := range tiers {
		known[t.Name] = true
	}
	for i := range policies {
		g := &policies[i]
		if !g.DeletionTimestamp.IsZero() || !known[g.TierName()] {
			continue
		}
		clusters, err := placement.Select(g.Spec.Placement, members)
		if err != nil {
			continue
		}
		h.policies = append(h.policies, g)
		h.placements[g.Name] = clusters
	}
	return h
}

// MemberInput is MemberInput's answer for the member.
func (h *Hub) MemberInput(member string) translate.Input {
	in := translate.Input{Cluster: member, Tiers: h.tiers, Placements: map[string][]string{}}
	for _, g := range h.policies {
		if slices.Contains(h.placements[g.Name], member) {
			in.Policies = append(in.Policies, *g)
			in.Placements[g.Name] = h.placements[g.Name]
		}
	}
	return in
}

// PeerClusters are the other members whose pods the input's ClusterSet peers can select.
func PeerClusters(in translate.Input) []string {
	set := map[string]bool{}
	for i := range in.Policies {
		g := &in.Policies[i]
		if !hasClusterSetPeer(g) {
			continue
		}
		for _, c := range in.Placements[g.Name] {
			if c != in.Cluster {
				set[c] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func hasClusterSetPeer(g *policyv1alpha1.GlobalNetworkPolicy) bool {
	for _, rules := range [][]policyv1alpha1.Rule{g.Spec.Ingress, g.Spec.Egress} {
		for _, r := range rules {
			for _, p := range r.Peers {
				if p.IPBlock == nil && p.ScopeOrDefault() == policyv1alpha1.ScopeClusterSet {
					return true
				}
			}
		}
	}
	return false
}
