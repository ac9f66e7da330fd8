package describe

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

func get(ctx context.Context, hub client.Reader, kind, name string, obj client.Object) error {
	if err := hub.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		return fmt.Errorf("get %s %s from the hub: %w", kind, name, err)
	}
	return nil
}

// policyReport: per cluster the form, enforcement, phase and nodes, and the rules not held exactly.
func policyReport(ctx context.Context, hub client.Reader, name string) (*Report, error) {
	p := &policyv1alpha1.GlobalNetworkPolicy{}
	if err := get(ctx, hub, "GlobalNetworkPolicy", name, p); err != nil {
		return nil, err
	}
	r := newReport("GlobalNetworkPolicy", p, p.Status.Conditions, p.Status.ObservedGeneration)
	r.Facts = []Fact{{"Tier", p.Spec.Tier}, {"Clusters realized", p.Status.Summary}, {"Enforcement", string(p.Status.Enforcement)}}
	for _, c := range p.Status.Clusters {
		r.Clusters = append(r.Clusters, Cluster{
			Name: c.Cluster, State: string(c.Phase), Message: c.Message, Rules: c.Rules,
			Facts: []Fact{{"form", string(c.Form)}, {"enforcement", string(c.Enforcement)}, {"nodes", count(c.NodesRealized) + "/" + count(c.NodesDesired)}},
		})
	}
	if err := r.addWorks(ctx, hub, nil, client.MatchingLabels{policyv1alpha1.GlobalNetworkPolicyLabel: p.Name}); err != nil {
		return nil, err
	}
	return r, nil
}

// memberReport: reachability, nodes, the agents' summary and every ClusterWork the member holds.
func memberReport(ctx context.Context, hub client.Reader, name string) (*Report, error) {
	m := &fleetv1alpha1.MemberCluster{}
	if err := get(ctx, hub, "MemberCluster", name, m); err != nil {
		return nil, err
	}
	r := newReport("MemberCluster", m, m.Status.Conditions, m.Status.ObservedGeneration)
	r.Facts = append(r.Facts, Fact{"Kubernetes", m.Status.KubernetesVersion})
	if n := m.Status.Nodes; n != nil {
		r.Facts = append(r.Facts, Fact{"Nodes ready", n.Summary})
	}
	if m.Status.LastProbeTime != nil {
		r.Facts = append(r.Facts, Fact{"Last probe", m.Status.LastProbeTime.UTC().Format("2006-01-02T15:04:05Z")})
	}
	if a := m.Status.Agents; a != nil {
		r.Facts = append(r.Facts, Fact{"Agents ready", a.Summary},
			Fact{"Agents", fmt.Sprintf("%d up to date, %d stale, %d refusing their config", a.UpToDate, a.Stale, a.ConfigInvalid)})
		if a.AgentConfig != "" {
			r.Facts = append(r.Facts, Fact{"AgentConfig", fmt.Sprintf("%s (version %s)", a.AgentConfig, a.Version)})
		}
		var versions []string
		for _, v := range a.Versions {
			versions = append(versions, fmt.Sprintf("%s×%d", v.Version, v.Agents))
		}
		if len(versions) > 0 {
			r.Facts = append(r.Facts, Fact{"Agent versions", strings.Join(versions, ", ")})
		}
		if a.Message != "" {
			r.Facts = append(r.Facts, Fact{"Agents message", a.Message})
		}
		if an := a.Antrea; an != nil {
			r.Facts = append(r.Facts, Fact{"Antrea agents ready", fmt.Sprintf("%d/%d (controller %s ready=%t)", an.Ready, an.Agents, an.ControllerVersion, an.ControllerReady)})
		}
	}
	reach := meta.FindStatusCondition(m.Status.Conditions, fleetv1alpha1.ReachableCondition)
	c := Cluster{Name: m.Name, State: "Unknown"}
	if reach != nil {
		c.State, c.Message = reachability(reach.Status), reach.Message
	}
	r.Clusters = []Cluster{c}
	ns := m.Status.Namespace
	if ns == "" {
		ns = m.HubNamespace()
	}
	if err := r.addWorks(ctx, hub, nil, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	return r, nil
}

func reachability(s metav1.ConditionStatus) string {
	switch s {
	case metav1.ConditionTrue:
		return "Reachable"
	case metav1.ConditionFalse:
		return "Unreachable"
	}
	return "Unknown"
}

// agentReport: the rollout's waves and, per cluster, its wave, phase and agent counts.
func agentReport(ctx context.Context, hub client.Reader, name string) (*Report, error) {
	a := &fleetv1alpha1.AgentConfig{}
	if err := get(ctx, hub, "AgentConfig", name, a); err != nil {
		return nil, err
	}
	r := newReport("AgentConfig", a, a.Status.Conditions, a.Status.ObservedGeneration)
	r.Facts = []Fact{{"Version", a.Spec.Version}}
	if ro := a.Status.Rollout; ro != nil {
		r.Facts = append(r.Facts, Fact{"Rollout", fmt.Sprintf("%s, wave %d of %d, %s", ro.Phase, ro.Wave, ro.Waves, ro.Summary)})
	}
	if a.Spec.Rollout.Paused {
		r.Facts = append(r.Facts, Fact{"Paused", "true (spec.rollout.paused)"})
	}
	clusters := append([]fleetv1alpha1.AgentClusterStatus(nil), a.Status.Clusters...)
	sort.SliceStable(clusters, func(i, j int) bool {
		if clusters[i].Wave != clusters[j].Wave {
			return clusters[i].Wave < clusters[j].Wave
		}
		return clusters[i].Cluster < clusters[j].Cluster
	})
	for _, c := range clusters {
		r.Clusters = append(r.Clusters, Cluster{
			Name: c.Cluster, State: string(c.Phase), Message: c.Message,
			Facts: []Fact{{"wave", fmt.Sprint(c.Wave)}, {"version", c.Version},
				{"agents", fmt.Sprintf("%d desired, %d updated, %d ready, %d stale", c.Desired, c.Updated, c.Ready, c.Stale)}},
		})
	}
	if err := r.addWorks(ctx, hub, nil, client.MatchingLabels{fleetv1alpha1.AgentConfigLabel: a.Name}); err != nil {
		return nil, err
	}
	return r, nil
}

// namespaceReport: the namespace in each cluster, the services it exports and imports, and the
// Works that carry the namespace and the imports.
func namespaceReport(ctx context.Context, hub client.Reader, name string) (*Report, error) {
	g := &netv1alpha1.GlobalNamespace{}
	if err := get(ctx, hub, "GlobalNamespace", name, g); err != nil {
		return nil, err
	}
	r := newReport("GlobalNamespace", g, g.Status.Conditions, g.Status.ObservedGeneration)
	r.Facts = []Fact{{"Clusters applied", g.Status.Summary}, {"Services imported", fmt.Sprint(g.Status.ServiceCount)}}
	r.Services = g.Status.Services
	namespaces, namespaceIn := sets.New[string](), map[string]string{}
	for _, c := range g.Status.Clusters {
		namespaces.Insert(c.Namespace)
		namespaceIn[c.Cluster] = c.Namespace
		var exports, imports []string
		for _, s := range g.Status.Services {
			if slices.Contains(s.SourceClusters, c.Cluster) {
				exports = append(exports, s.Name)
			}
			if slices.Contains(s.ImportingClusters, c.Cluster) {
				imports = append(imports, s.Name)
			}
		}
		r.Clusters = append(r.Clusters, Cluster{
			Name: c.Cluster, State: string(c.State), Message: c.Message,
			Facts: []Fact{{"namespace", c.Namespace}, {"exports", orNone(exports)}, {"imports", orNone(imports)}},
		})
	}
	if err := r.addWorks(ctx, hub, nil, client.MatchingLabels{netv1alpha1.GlobalNamespaceLabel: g.Name}); err != nil {
		return nil, err
	}
	if namespaces.Len() > 0 {
		// The imports' Works name the namespace they import into, not the GlobalNamespace: keep
		// those of this namespace's name in each cluster.
		req, err := labels.NewRequirement(netv1alpha1.ServiceNamespaceLabel, selection.In, sets.List(namespaces))
		if err != nil {
			return nil, err
		}
		ours := func(w *fleetv1alpha1.ClusterWork) bool {
			return namespaceIn[w.Labels[fleetv1alpha1.MemberClusterLabel]] == w.Labels[netv1alpha1.ServiceNamespaceLabel]
		}
		if err := r.addWorks(ctx, hub, ours, client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*req)}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ",")
}
