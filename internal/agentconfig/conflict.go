package agentconfig

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Conflict is another AgentConfig that selects some of the same clusters.
type Conflict struct {
	// AgentConfig is the other AgentConfig's name.
	AgentConfig string
	// Clusters are the clusters both select, sorted.
	Clusters []string
}

// Partition splits the clusters ac selects into those it holds and those it loses: a cluster
// runs one agent install, that of the oldest AgentConfig (by creation time, then name) selecting
// it. Lost are the clusters an older AgentConfig holds, by that holder; contested are held
// clusters that younger AgentConfigs also select, by each of them. Both sides report the
// conflict; nobody fights over the cluster. Others with a placement that cannot be read select
// nothing; deleted ones are skipped.
func Partition(ac *fleetv1alpha1.AgentConfig, selected []string, others []fleetv1alpha1.AgentConfig, members []fleetv1alpha1.MemberCluster) (held []string, lost, contested []Conflict) {
	holder := map[string]*fleetv1alpha1.AgentConfig{} // cluster → the oldest older AgentConfig selecting it
	younger := map[string][]string{}                  // cluster → younger AgentConfigs selecting it
	for i := range others {
		o := &others[i]
		if o.Name == ac.Name || !o.DeletionTimestamp.IsZero() {
			continue
		}
		names, err := Select(o, members)
		if err != nil {
			continue
		}
		for _, n := range names {
			switch {
			case !older(o, ac):
				younger[n] = append(younger[n], o.Name)
			case holder[n] == nil || older(o, holder[n]):
				holder[n] = o
			}
		}
	}
	lostBy := map[string][]string{}
	contestedBy := map[string][]string{}
	for _, n := range selected {
		if h := holder[n]; h != nil {
			lostBy[h.Name] = append(lostBy[h.Name], n)
			continue
		}
		held = append(held, n)
		for _, y := range younger[n] {
			contestedBy[y] = append(contestedBy[y], n)
		}
	}
	return held, conflicts(lostBy), conflicts(contestedBy)
}

func conflicts(by map[string][]string) []Conflict {
	var out []Conflict
	for _, name := range slices.Sorted(maps.Keys(by)) {
		out = append(out, Conflict{AgentConfig: name, Clusters: slices.Sorted(slices.Values(by[name]))})
	}
	return out
}

// older says whether a was created before b (by name on a tie: creation times have a resolution
// of one second).
func older(a, b *fleetv1alpha1.AgentConfig) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// describe names each other AgentConfig with its clusters: "AgentConfig a (clusters x, y);
// AgentConfig b (cluster z)".
func describe(cs []Conflict) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		noun := "clusters"
		if len(c.Clusters) == 1 {
			noun = "cluster"
		}
		parts[i] = fmt.Sprintf("AgentConfig %s (%s %s)", c.AgentConfig, noun, strings.Join(c.Clusters, ", "))
	}
	return strings.Join(parts, "; ")
}

// lostMessage says which older AgentConfigs hold clusters this one selects, and what to do.
func lostMessage(lost []Conflict) string {
	return fmt.Sprintf("Clusters this AgentConfig selects are held by an older one: %s. This one leaves them alone; waiting will not change that: narrow one of the placements or delete one of the AgentConfigs.", describe(lost))
}

// contestedMessage says which younger AgentConfigs also select clusters this one holds.
func contestedMessage(contested []Conflict) string {
	return fmt.Sprintf("A younger AgentConfig also selects clusters this one holds: %s. This one, the older, keeps them; narrow one of the placements.", describe(contested))
}
