package mcs

import (
	"sort"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
)

// Catalog holds, per namespace, the state of every imported service, for the hub's status.
type Catalog struct {
	mu sync.Mutex
	ns map[string]map[string]netv1alpha1.GlobalServiceStatus
}

// NewCatalog returns an empty Catalog.
func NewCatalog() *Catalog {
	return &Catalog{ns: map[string]map[string]netv1alpha1.GlobalServiceStatus{}}
}

// Set records a service's state (nil removes it) and says whether it changed.
func (c *Catalog) Set(namespace, name string, st *netv1alpha1.GlobalServiceStatus) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	services := c.ns[namespace]
	old, had := services[name]
	if st == nil {
		if !had {
			return false
		}
		delete(services, name)
		if len(services) == 0 {
			delete(c.ns, namespace)
		}
		return true
	}
	if services == nil {
		services = map[string]netv1alpha1.GlobalServiceStatus{}
		c.ns[namespace] = services
	}
	st = st.DeepCopy()
	st.Conditions = carryConditions(old.Conditions, st.Conditions)
	services[name] = *st
	return !had || !equalStatus(old, *st)
}

// Services returns the namespace's services, sorted by name.
func (c *Catalog) Services(namespace string) []netv1alpha1.GlobalServiceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]netv1alpha1.GlobalServiceStatus, 0, len(c.ns[namespace]))
	for _, s := range c.ns[namespace] {
		out = append(out, *s.DeepCopy())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// carryConditions returns want with the transition times of old where a condition's status did
// not change (now, in whole seconds, where it did).
func carryConditions(old, want []metav1.Condition) []metav1.Condition {
	if len(want) == 0 {
		return nil
	}
	conds := append([]metav1.Condition(nil), old...)
	for _, c := range want {
		meta.SetStatusCondition(&conds, c)
	}
	out := make([]metav1.Condition, 0, len(want))
	for _, c := range want {
		c := *meta.FindStatusCondition(conds, c.Type)
		// As the hub stores it (seconds), so that the GlobalNamespace's status compares equal
		// to what it read and is not written again.
		c.LastTransitionTime = c.LastTransitionTime.Rfc3339Copy()
		out = append(out, c)
	}
	return out
}

func equalStatus(a, b netv1alpha1.GlobalServiceStatus) bool {
	return a.Name == b.Name && a.Type == b.Type && a.ReadyEndpoints == b.ReadyEndpoints && a.Conflict == b.Conflict &&
		equalStrings(a.SourceClusters, b.SourceClusters) && equalStrings(a.ImportingClusters, b.ImportingClusters) &&
		equalStrings(a.DNSNames, b.DNSNames) && equalPorts(a.Ports, b.Ports) && equalConditions(a.Conditions, b.Conditions)
}

func equalConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason || a[i].Message != b[i].Message {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalPorts(a, b []netv1alpha1.ServicePort) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Port != b[i].Port || a[i].Protocol != b[i].Protocol {
			return false
		}
	}
	return true
}
