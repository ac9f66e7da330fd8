// Package describe builds the fleet-wide view of one hub object that `kubectl meridian describe`
// prints: its conditions, where it stands in each member cluster, and the ClusterWorks (and their
// member objects) behind it, as `clusterctl describe` does for a Cluster. It reads the hub only:
// what the controllers last reported there.
package describe

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// Kind is a kind describe knows, with the names a user may call it by.
type Kind struct {
	Name    string
	aliases []string
	build   func(ctx context.Context, hub client.Reader, name string) (*Report, error)
}

var kinds = []Kind{
	{Name: "GlobalNetworkPolicy", aliases: []string{"gnp", "globalnetworkpolicies", "globalnetworkpolicies.policy.meridian.io"}, build: policyReport},
	{Name: "MemberCluster", aliases: []string{"mc", "memberclusters", "memberclusters.fleet.meridian.io"}, build: memberReport},
	{Name: "AgentConfig", aliases: []string{"ac", "agentconfigs", "agentconfigs.fleet.meridian.io"}, build: agentReport},
	{Name: "GlobalNamespace", aliases: []string{"gns", "globalnamespaces", "globalnamespaces.networking.meridian.io"}, build: namespaceReport},
}

// ParseKind finds the kind a user named, as kubectl would: kind, singular, plural, short name or
// plural.group, in any case.
func ParseKind(s string) (Kind, error) {
	l := strings.ToLower(s)
	var names []string
	for _, k := range kinds {
		if l == strings.ToLower(k.Name) || l == strings.ToLower(k.Name)+"."+groupOf(k.Name) {
			return k, nil
		}
		for _, a := range k.aliases {
			if l == a {
				return k, nil
			}
		}
		names = append(names, fmt.Sprintf("%s (%s)", k.Name, k.aliases[0]))
	}
	return Kind{}, fmt.Errorf("kubectl meridian describe knows no kind %q: use one of %s", s, strings.Join(names, ", "))
}

func groupOf(kind string) string {
	switch kind {
	case "GlobalNetworkPolicy":
		return policyv1alpha1.GroupVersion.Group
	case "GlobalNamespace":
		return netv1alpha1.GroupVersion.Group
	}
	return fleetv1alpha1.GroupVersion.Group
}

// NewScheme knows the kinds describe reads.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{fleetv1alpha1.AddToScheme, netv1alpha1.AddToScheme, policyv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run reads the object and what stands behind it from the hub.
func Run(ctx context.Context, hub client.Reader, kind Kind, name string) (*Report, error) {
	return kind.build(ctx, hub, name)
}

// Report is the view of one object; `-o json` prints it as is.
type Report struct {
	Kind               string             `json:"kind"`
	Name               string             `json:"name"`
	Generation         int64              `json:"generation"`
	ObservedGeneration int64              `json:"observedGeneration"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// Facts are the object's own summary lines: a rollout's wave, a member's version and nodes.
	Facts []Fact `json:"facts,omitempty"`
	// Clusters is where the object stands in each member, sorted by name.
	Clusters []Cluster `json:"clusters,omitempty"`
	// Services are a GlobalNamespace's services imported across the cluster set.
	Services []netv1alpha1.GlobalServiceStatus `json:"services,omitempty"`
	// Works are ClusterWorks behind the object that belong to no cluster of Clusters.
	Works []Work `json:"works,omitempty"`
}

// Fact is one labelled value.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Cluster is the object in one member cluster.
type Cluster struct {
	Name string `json:"name"`
	// State is the kind's word for where the member stands: a policy's phase, a rollout's phase,
	// a namespace's state, a member's reachability.
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// Facts are the kind's per-cluster figures: form and enforcement, agents updated/ready.
	Facts []Fact `json:"facts,omitempty"`
	// Rules are a policy's rules that the member's form does not hold exactly.
	Rules []policyv1alpha1.RuleEnforcement `json:"rules,omitempty"`
	Works []Work                           `json:"works,omitempty"`
}

// Work is one ClusterWork and its objects as the syncer last reported them.
type Work struct {
	Namespace  string                       `json:"namespace"`
	Name       string                       `json:"name"`
	Cluster    string                       `json:"cluster"`
	Summary    string                       `json:"summary,omitempty"`
	Conditions []metav1.Condition           `json:"conditions,omitempty"`
	Objects    []fleetv1alpha1.ObjectStatus `json:"objects,omitempty"`
}

func newReport(kind string, obj client.Object, conds []metav1.Condition, observed int64) *Report {
	return &Report{Kind: kind, Name: obj.GetName(), Generation: obj.GetGeneration(), ObservedGeneration: observed, Conditions: conds}
}

// works lists the ClusterWorks that match, in every member's hub namespace or in one, and that
// addWorks lists the ClusterWorks opts select (and keep keeps, when set) and attaches them.
func (r *Report) addWorks(ctx context.Context, hub client.Reader, keep func(*fleetv1alpha1.ClusterWork) bool, opts ...client.ListOption) error {
	ws, err := works(ctx, hub, keep, opts...)
	if err != nil {
		return err
	}
	r.attach(ws)
	return nil
}

// keep accepts (nil: all).
func works(ctx context.Context, hub client.Reader, keep func(*fleetv1alpha1.ClusterWork) bool, opts ...client.ListOption) ([]Work, error) {
	list := &fleetv1alpha1.ClusterWorkList{}
	if err := hub.List(ctx, list, opts...); err != nil {
		return nil, fmt.Errorf("list ClusterWorks: %w", err)
	}
	out := make([]Work, 0, len(list.Items))
	for i := range list.Items {
		w := &list.Items[i]
		if keep != nil && !keep(w) {
			continue
		}
		cluster := w.Labels[fleetv1alpha1.MemberClusterLabel]
		if cluster == "" {
			cluster = strings.TrimPrefix(w.Namespace, fleetv1alpha1.MemberClusterNamespacePrefix)
		}
		out = append(out, Work{Namespace: w.Namespace, Name: w.Name, Cluster: cluster, Summary: w.Status.Summary,
			Conditions: w.Status.Conditions, Objects: w.Status.Objects})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// attach hands each Work to its cluster's entry; Works of clusters the object does not report on
// (a cluster being removed) stay on the report.
func (r *Report) attach(ws []Work) {
	index := map[string]int{}
	for i, c := range r.Clusters {
		index[c.Name] = i
	}
	for _, w := range ws {
		if i, ok := index[w.Cluster]; ok {
			r.Clusters[i].Works = append(r.Clusters[i].Works, w)
		} else {
			r.Works = append(r.Works, w)
		}
	}
}

func count(n *int32) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
