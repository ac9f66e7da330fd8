package fleet

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func capiCluster(ns, name string) *clusterv1.Cluster {
	return &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func TestMemberNameForCollidingPairs(t *testing.T) {
	long := strings.Repeat("n", 63)
	for _, pair := range [][2]*clusterv1.Cluster{
		{capiCluster("a-b", "c"), capiCluster("a", "b-c")},
		{capiCluster("team-a", "prod"), capiCluster("team", "a-prod")},
		{capiCluster("x-y-z", "w"), capiCluster("x", "y-z-w")},
		{capiCluster(long, "east"), capiCluster(long, "west")},             // cut to the same prefix
		{capiCluster("fleet", long+"-1"), capiCluster("fleet", long+"-2")}, // likewise
	} {
		a, b := memberNameFor(pair[0], nil), memberNameFor(pair[1], nil)
		if a == b {
			t.Errorf("Clusters %s/%s and %s/%s share MemberCluster name %q", pair[0].Namespace, pair[0].Name, pair[1].Namespace, pair[1].Name, a)
		}
		for _, n := range []string{a, b} {
			if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
				t.Errorf("%q is no DNS label: %v", n, errs)
			}
			if len(n) > fleetv1alpha1.MaxMemberClusterNameLength {
				t.Errorf("%q is longer than %d", n, fleetv1alpha1.MaxMemberClusterNameLength)
			}
		}
	}
}

func TestMemberNameFor(t *testing.T) {
	legacy := fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "a-b-c"}}
	now := metav1.Now()
	legacyDeleting := fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "a-b-c", DeletionTimestamp: &now}}
	annotated := capiCluster("a-b", "c")
	annotated.Annotations = map[string]string{MemberNameAnnotation: "edge-1"}

	for _, tc := range []struct {
		name     string
		cluster  *clusterv1.Cluster
		existing []fleetv1alpha1.MemberCluster
		want     string // "" : hashed (checked to differ from the plain join)
	}{
		{"unambiguous join stays readable", capiCluster("default", "prod-eu-1"), nil, "default-prod-eu-1"},
		{"the annotation wins", annotated, nil, "edge-1"},
		{"ambiguous join is hashed", capiCluster("a-b", "c"), nil, ""},
		{"an older release's plain name is kept", capiCluster("a-b", "c"), []fleetv1alpha1.MemberCluster{legacy}, "a-b-c"},
		{"not one being deleted", capiCluster("a-b", "c"), []fleetv1alpha1.MemberCluster{legacyDeleting}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := memberNameFor(tc.cluster, tc.existing)
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("got %q, want %q", got, tc.want)
			case tc.want == "" && (got == tc.cluster.Namespace+"-"+tc.cluster.Name || !strings.HasPrefix(got, tc.cluster.Namespace+"-")):
				t.Errorf("got %q, want a hashed name starting with the join", got)
			}
		})
	}
}
