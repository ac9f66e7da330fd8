// Package placement decides which member clusters a Placement selects.
package placement

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Select returns the names of the MemberClusters the placement selects, sorted. A MemberCluster
// being deleted is not selected.
func Select(p fleetv1alpha1.Placement, members []fleetv1alpha1.MemberCluster) ([]string, error) {
	var selector labels.Selector
	if s := p.ClusterSelector; s != nil {
		var err error
		if selector, err = metav1.LabelSelectorAsSelector(s); err != nil {
			return nil, fmt.Errorf("spec.placement.clusterSelector: %w", err)
		}
	}
	named := map[string]bool{}
	for _, n := range p.ClusterNames {
		named[n] = true
	}
	var out []string
	for i := range members {
		m := &members[i]
		if !m.DeletionTimestamp.IsZero() {
			continue
		}
		if named[m.Name] || (selector != nil && selector.Matches(labels.Set(m.Labels))) {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}
