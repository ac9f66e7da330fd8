// Package inventory keeps, for policy, what the hub must know of every member: the form its API
// offers (from its CustomResourceDefinitions) and its pods (IP, labels, namespace) and namespaces
// (labels), trimmed to those fields. It is a subscriber of the member cache (a
// membercache.PerMember): a member's informers start when it connects and stop with the
// connection; a member that disconnects keeps nothing.
package inventory

import (
	"context"
	"maps"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

// PodChange is a pod that appeared, went, or changed its address, labels or namespace labels.
// Old is nil for a new pod, New for a gone one.
type PodChange struct {
	Cluster  string
	Old, New *translate.InventoryPod
}

// Handlers are told about changes; they are called from informer goroutines and must return
// quickly (queue work).
type Handlers struct {
	// MemberChanged: the member's form, namespaces or sync state changed, or it connected or
	// went away. Every policy placed on it may need a new pass.
	MemberChanged func(member string)
	// PodsChanged: pods changed in a member; policies whose ClusterSet peers select them need a
	// new pass.
	PodsChanged func(changes []PodChange)
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Inventory is the member-cache subscriber; the member lifecycle (informers started on connect,
// stopped on disconnect or new credentials) is membercache.PerMember's.
type Inventory struct {
	*membercache.PerMember[*member]
	handlers Handlers
}

type member struct {
	name                  string
	pods, namespaces, crd cache.SharedIndexInformer
	mu                    sync.Mutex
	served                map[schema.GroupVersionKind]bool
	formKnown             bool
}

// New returns an empty inventory that reports to h.
func New(h Handlers) *Inventory {
	if h.MemberChanged == nil {
		h.MemberChanged = func(string) {}
	}
	if h.PodsChanged == nil {
		h.PodsChanged = func([]PodChange) {}
	}
	i := &Inventory{handlers: h}
	// A member that goes keeps nothing: every policy placed on it needs a new pass.
	i.PerMember = membercache.NewPerMember(membercache.PerMemberFuncs[*member]{New: i.connect, Run: i.run, Gone: h.MemberChanged})
	return i
}

// connect makes the member's informers on its new connection.
func (i *Inventory) connect(_ context.Context, mc *membercache.Member) *member {
	m := &member{name: mc.Name}
	rc := mc.WatchKubernetes.CoreV1().RESTClient()
	m.pods = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(rc, "pods", metav1.NamespaceAll, fields.Everything()), &corev1.Pod{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	m.namespaces = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(rc, "namespaces", metav1.NamespaceAll, fields.Everything()), &corev1.Namespace{}, 0, cache.Indexers{})
	m.crd = dynamicinformer.NewFilteredDynamicInformer(mc.WatchDynamic, crdResource, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	_ = m.pods.SetTransform(TrimPod)
	_ = m.namespaces.SetTransform(TrimNamespace)
	_ = m.crd.SetTransform(TrimCRD)

	_, _ = m.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { i.podChanged(m, nil, o) },
		UpdateFunc: func(old, cur any) { i.podChanged(m, old, cur) },
		DeleteFunc: func(o any) { i.podChanged(m, o, nil) },
	})
	_, _ = m.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { i.handlers.MemberChanged(m.name) },
		UpdateFunc: func(old, cur any) {
			if !maps.Equal(old.(*corev1.Namespace).Labels, cur.(*corev1.Namespace).Labels) {
				i.namespaceLabelsChanged(m, cur.(*corev1.Namespace).Name, old.(*corev1.Namespace).Labels)
			}
		},
		DeleteFunc: func(any) { i.handlers.MemberChanged(m.name) },
	})
	observe := func(any) { i.crdsChanged(m) }
	_, _ = m.crd.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }, DeleteFunc: observe})
	return m
}

// run starts the member's informers; its form is known once they synced.
func (i *Inventory) run(ctx context.Context, m *member) {
	membercache.RunInformers(ctx, func() {
		m.mu.Lock()
		m.formKnown = true
		m.mu.Unlock()
		i.crdsChanged(m)
		i.handlers.MemberChanged(m.name)
	}, m.pods, m.namespaces, m.crd)
}

func (i *Inventory) get(name string) *member {
	m, _ := i.Get(name)
	return m
}

// Form is the member's form; ok is false until the member is connected and its CRDs are listed.
func (i *Inventory) Form(name string) (policyv1alpha1.Form, bool) {
	m := i.get(name)
	if m == nil {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.formKnown {
		return "", false
	}
	return compile.ChooseForm(m.served), true
}

// Namespaces of the member, sorted by name.
func (i *Inventory) Namespaces(name string) []translate.Namespace {
	m := i.get(name)
	if m == nil {
		return nil
	}
	var out []translate.Namespace
	for _, o := range m.namespaces.GetStore().List() {
		ns := o.(*corev1.Namespace)
		out = append(out, translate.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Pods of the given members that have an address and are not finished, sorted by cluster,
// namespace and IP.
func (i *Inventory) Pods(clusters []string) []translate.InventoryPod {
	var out []translate.InventoryPod
	for _, c := range clusters {
		m := i.get(c)
		if m == nil {
			continue
		}
		for _, o := range m.pods.GetStore().List() {
			if p := i.inventoryPod(m, o.(*corev1.Pod)); p != nil {
				out = append(out, *p)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.Cluster != y.Cluster {
			return x.Cluster < y.Cluster
		}
		if x.Namespace != y.Namespace {
			return x.Namespace < y.Namespace
		}
		return x.IP < y.IP
	})
	return out
}

func (i *Inventory) inventoryPod(m *member, p *corev1.Pod) *translate.InventoryPod {
	if p == nil || p.Status.PodIP == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil
	}
	var nsLabels map[string]string
	if o, ok, _ := m.namespaces.GetStore().GetByKey(p.Namespace); ok {
		nsLabels = o.(*corev1.Namespace).Labels
	}
	return &translate.InventoryPod{Cluster: m.name, Namespace: p.Namespace, NamespaceLabels: nsLabels, Labels: p.Labels, IP: p.Status.PodIP}
}

func (i *Inventory) podChanged(m *member, old, cur any) {
	toPod := func(o any) *translate.InventoryPod {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		p, _ := o.(*corev1.Pod)
		return i.inventoryPod(m, p)
	}
	o, n := toPod(old), toPod(cur)
	if o == nil && n == nil || o != nil && n != nil && o.IP == n.IP && maps.Equal(o.Labels, n.Labels) {
		return
	}
	i.handlers.PodsChanged([]PodChange{{Cluster: m.name, Old: o, New: n}})
}

// namespaceLabelsChanged reports the namespace's pods as changed (their namespace labels did),
// and the member (the NetworkPolicy form writes per namespace).
func (i *Inventory) namespaceLabelsChanged(m *member, ns string, oldLabels map[string]string) {
	objs, _ := m.pods.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
	var changes []PodChange
	for _, o := range objs {
		if p := i.inventoryPod(m, o.(*corev1.Pod)); p != nil {
			changes = append(changes, PodChange{Cluster: m.name, Old: &translate.InventoryPod{Cluster: m.name, Namespace: ns, NamespaceLabels: oldLabels, Labels: p.Labels, IP: p.IP}, New: p})
		}
	}
	if len(changes) > 0 {
		i.handlers.PodsChanged(changes)
	}
	i.handlers.MemberChanged(m.name)
}

func (i *Inventory) crdsChanged(m *member) {
	served := map[schema.GroupVersionKind]bool{}
	for _, o := range m.crd.GetStore().List() {
		for _, gvk := range ServedKinds(o.(*unstructured.Unstructured)) {
			served[gvk] = true
		}
	}
	m.mu.Lock()
	before := compile.ChooseForm(m.served)
	m.served = served
	known := m.formKnown
	m.mu.Unlock()
	if known && compile.ChooseForm(served) != before {
		i.handlers.MemberChanged(m.name)
	}
}
