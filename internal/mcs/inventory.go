package mcs

import (
	"context"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
)

// CRDState says whether a member serves the Multi-Cluster Services API, and who installed it.
type CRDState int

const (
	// CRDsUnknown: not checked yet.
	CRDsUnknown CRDState = iota
	// CRDsAbsent: the member does not have the ServiceExport and ServiceImport CRDs.
	CRDsAbsent
	// CRDsOurs: Meridian installed them (through its work engine).
	CRDsOurs
	// CRDsForeign: someone else installed them; Meridian uses them as they are.
	CRDsForeign
)

var (
	serviceExports = schema.GroupVersionResource{Group: mcsv1beta1.GroupName, Version: "v1beta1", Resource: "serviceexports"}
	serviceImports = schema.GroupVersionResource{Group: mcsv1beta1.GroupName, Version: "v1beta1", Resource: "serviceimports"}
	crds           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// Handlers are told what changed in a member.
type Handlers struct {
	// Service: something about namespace/name changed (its export, Service, endpoints, derived
	// Service or ServiceImport).
	Service func(namespace, name string)
	// Namespace: a namespace appeared, went or was relabelled.
	Namespace func(member, namespace string)
	// Member: the member's inventory became usable, or its CRD state changed.
	Member func(member string)
}

// Inventory keeps, for each connected member, what service discovery reads from it: namespaces,
// Services, EndpointSlices and ServiceExports (trimmed to the fields used), and Meridian's
// ServiceImports' status. It only reads members, over the member cache's clients: it is a
// membercache.PerMember, and a member's informers live exactly as long as its connection.
type Inventory struct {
	*membercache.PerMember[*memberInventory]
	handlers Handlers
}

var _ membercache.Subscriber = (*Inventory)(nil)

// NewInventory returns an empty Inventory; the member cache's notices add and remove members.
func NewInventory(h Handlers) *Inventory {
	i := &Inventory{handlers: h}
	// A member that goes takes its inventory with it: service discovery is told (on its own
	// goroutine: the handlers queue requests on a bounded channel, never block the member cache).
	i.PerMember = membercache.NewPerMember(membercache.PerMemberFuncs[*memberInventory]{New: i.connect, Run: i.run, Gone: h.Member})
	return i
}

type memberInventory struct {
	name string
	dyn  dynamic.Interface
	// factory is the member's shared informer factory, started until the connection ends.
	factory informers.SharedInformerFactory
	done    <-chan struct{}

	services, slices, namespaces cache.SharedIndexInformer

	mu       sync.Mutex
	crdState CRDState
	exports  cache.SharedIndexInformer // nil until the CRDs are served
	imports  cache.SharedIndexInformer
}

// connect takes the member's informers from its shared factory and adds the handlers.
func (i *Inventory) connect(_ context.Context, mc *membercache.Member) *memberInventory {
	name := mc.Name
	m := &memberInventory{name: name, dyn: mc.WatchDynamic, factory: mc.Informers, done: mc.Done()}
	f := mc.Informers
	m.services = f.Core().V1().Services().Informer()
	m.slices = f.Discovery().V1().EndpointSlices().Informer()
	m.namespaces = f.Core().V1().Namespaces().Informer()
	for _, inf := range []cache.SharedIndexInformer{m.services, m.slices, m.namespaces} {
		_ = inf.SetTransform(trim)
		_ = inf.AddIndexers(cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	_ = m.slices.AddIndexers(cache.Indexers{byServiceIndex: sliceService})
	m.services.AddEventHandler(i.serviceHandler(func(o any) (string, string) {
		s := o.(*corev1.Service)
		if orig := s.Labels[mcsv1beta1.LabelServiceName]; orig != "" && s.Labels[fleetv1alpha1.ManagedByLabel] == fleetv1alpha1.ManagedByValue {
			return s.Namespace, orig // a derived Service: its ClusterIP is the import's VIP
		}
		return s.Namespace, s.Name
	}))
	m.slices.AddEventHandler(i.serviceHandler(func(o any) (string, string) {
		s := o.(*discoveryv1.EndpointSlice)
		if s.Labels[discoveryv1.LabelManagedBy] == EndpointSliceManager {
			return "", "" // Meridian's own imported slices: the work engine watches those
		}
		return s.Namespace, s.Labels[discoveryv1.LabelServiceName]
	}))
	m.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { i.namespaceChanged(name, o) },
		UpdateFunc: func(old, cur any) {
			if old.(*corev1.Namespace).Labels[netv1alpha1.GlobalNamespaceLabel] != cur.(*corev1.Namespace).Labels[netv1alpha1.GlobalNamespaceLabel] ||
				(old.(*corev1.Namespace).DeletionTimestamp == nil) != (cur.(*corev1.Namespace).DeletionTimestamp == nil) {
				i.namespaceChanged(name, cur)
			}
		},
		DeleteFunc: func(o any) { i.namespaceChanged(name, o) },
	})
	return m
}

// run starts the member's informers: the shared factory's for the connection (other subscribers
// share them), then the CRD watch that starts the MCS informers.
func (i *Inventory) run(ctx context.Context, m *memberInventory) {
	m.factory.Start(m.done)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), m.services.HasSynced, m.slices.HasSynced, m.namespaces.HasSynced) {
			i.handlers.Member(m.name)
		}
	}()
	go i.watchCRDs(ctx, m)
}

func (i *Inventory) serviceHandler(key func(any) (string, string)) cache.ResourceEventHandler {
	notify := func(o any) {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if ns, name := key(o); name != "" {
			i.handlers.Service(ns, name)
		}
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: notify, UpdateFunc: func(_, cur any) { notify(cur) }, DeleteFunc: notify}
}

func (i *Inventory) namespaceChanged(member string, o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if ns, ok := o.(*corev1.Namespace); ok {
		i.handlers.Namespace(member, ns.Name)
	}
}

// watchCRDs watches the member's ServiceExport CRD (one object, by name) and starts the
// ServiceExport and ServiceImport informers once it is established.
func (i *Inventory) watchCRDs(ctx context.Context, m *memberInventory) {
	name := "serviceexports." + mcsv1beta1.GroupName
	inf := dynamicinformer.NewFilteredDynamicInformer(m.dyn, crds, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }).Informer()
	var start sync.Once
	observe := func(o any) {
		u, _ := o.(*unstructured.Unstructured) // nil: deleted, or never there
		state := CRDsAbsent
		switch {
		case u != nil && u.GetLabels()[fleetv1alpha1.ManagedByLabel] == fleetv1alpha1.ManagedByValue:
			state = CRDsOurs
		case u != nil:
			state = CRDsForeign
		}
		m.mu.Lock()
		changed := m.crdState != state
		m.crdState = state
		m.mu.Unlock()
		if changed {
			i.handlers.Member(m.name)
		}
		if established(u) {
			start.Do(func() { go i.startMCSInformers(ctx, m) })
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, cur any) { observe(cur) },
		DeleteFunc: func(any) { observe(nil) },
	})
	go inf.RunWithContext(ctx)
	if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) && len(inf.GetStore().List()) == 0 {
		observe(nil)
	}
}

func established(u *unstructured.Unstructured) bool {
	if u == nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func (i *Inventory) startMCSInformers(ctx context.Context, m *memberInventory) {
	f := dynamicinformer.NewDynamicSharedInformerFactory(m.dyn, 0)
	exports := f.ForResource(serviceExports).Informer()
	_ = exports.SetTransform(toServiceExport)
	imports := dynamicinformer.NewFilteredDynamicInformer(m.dyn, serviceImports, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) {
			o.LabelSelector = fleetv1alpha1.ManagedByLabel + "=" + fleetv1alpha1.ManagedByValue
		}).Informer()
	_ = imports.SetTransform(toServiceImport)
	exports.AddEventHandler(i.serviceHandler(func(o any) (string, string) {
		e := o.(*mcsv1beta1.ServiceExport)
		return e.Namespace, e.Name
	}))
	imports.AddEventHandler(i.serviceHandler(func(o any) (string, string) {
		s := o.(*mcsv1beta1.ServiceImport)
		return s.Namespace, s.Name
	}))
	f.Start(ctx.Done())
	go imports.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), exports.HasSynced, imports.HasSynced) {
		return
	}
	m.mu.Lock()
	m.exports, m.imports = exports, imports
	m.mu.Unlock()
	i.handlers.Member(m.name)
}

// trim keeps of Services, EndpointSlices and Namespaces only what service discovery reads, so
// that memory grows with the number of services and endpoints, not with their size.
func trim(o any) (any, error) {
	switch t := o.(type) {
	case *corev1.Service:
		return &corev1.Service{
			ObjectMeta: slimMeta(t.ObjectMeta),
			Spec: corev1.ServiceSpec{
				Type: t.Spec.Type, Ports: t.Spec.Ports, ClusterIP: t.Spec.ClusterIP, ClusterIPs: t.Spec.ClusterIPs,
				SessionAffinity: t.Spec.SessionAffinity, SessionAffinityConfig: t.Spec.SessionAffinityConfig,
				InternalTrafficPolicy: t.Spec.InternalTrafficPolicy, TrafficDistribution: t.Spec.TrafficDistribution,
				IPFamilies: t.Spec.IPFamilies,
			},
		}, nil
	case *discoveryv1.EndpointSlice:
		eps := make([]discoveryv1.Endpoint, len(t.Endpoints))
		for j, e := range t.Endpoints {
			eps[j] = discoveryv1.Endpoint{Addresses: e.Addresses, Conditions: discoveryv1.EndpointConditions{Ready: e.Conditions.Ready}, Hostname: e.Hostname, Zone: e.Zone}
		}
		meta := slimMeta(t.ObjectMeta)
		meta.Labels = map[string]string{
			discoveryv1.LabelServiceName: t.Labels[discoveryv1.LabelServiceName],
			discoveryv1.LabelManagedBy:   t.Labels[discoveryv1.LabelManagedBy],
		}
		return &discoveryv1.EndpointSlice{ObjectMeta: meta, AddressType: t.AddressType, Endpoints: eps, Ports: t.Ports}, nil
	case *corev1.Namespace:
		meta := slimMeta(t.ObjectMeta)
		meta.Labels = nil
		if g, ok := t.Labels[netv1alpha1.GlobalNamespaceLabel]; ok {
			meta.Labels = map[string]string{netv1alpha1.GlobalNamespaceLabel: g}
		}
		return &corev1.Namespace{ObjectMeta: meta}, nil
	}
	return o, nil
}

func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp, Labels: m.Labels}
}

func toServiceExport(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	e := &mcsv1beta1.ServiceExport{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, e); err != nil {
		return nil, err
	}
	e.ObjectMeta = slimMeta(e.ObjectMeta)
	return e, nil
}

func toServiceImport(o any) (any, error) {
	u, ok := o.(*unstructured.Unstructured)
	if !ok {
		return o, nil
	}
	s := &mcsv1beta1.ServiceImport{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		return nil, err
	}
	return &mcsv1beta1.ServiceImport{ObjectMeta: slimMeta(s.ObjectMeta), Status: mcsv1beta1.ServiceImportStatus{Clusters: s.Status.Clusters}}, nil
}

const byServiceIndex = "service"

func sliceService(o any) ([]string, error) {
	s := o.(*discoveryv1.EndpointSlice)
	if s.Labels[discoveryv1.LabelManagedBy] == EndpointSliceManager || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

// member returns a member's inventory when its caches are usable for service discovery: the
// core caches synced and the MCS informers running.
func (i *Inventory) member(name string) *memberInventory {
	m, ok := i.Get(name)
	if !ok || !m.services.HasSynced() || !m.slices.HasSynced() || !m.namespaces.HasSynced() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exports == nil {
		return nil
	}
	return m
}

// Ready says whether the member's inventory is usable for service discovery.
func (i *Inventory) Ready(member string) bool { return i.member(member) != nil }

// CRDs reports the member's MCS CRD state.
func (i *Inventory) CRDs(member string) CRDState {
	m, ok := i.Get(member)
	if !ok {
		return CRDsUnknown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crdState
}

// Namespace returns whether the namespace exists (and is not being deleted) in the member, and
// the GlobalNamespace it comes from ("" when none).
func (i *Inventory) Namespace(member, namespace string) (exists bool, globalNamespace string) {
	m := i.member(member)
	if m == nil {
		return false, ""
	}
	o, ok, _ := m.namespaces.GetStore().GetByKey(namespace)
	if !ok {
		return false, ""
	}
	ns := o.(*corev1.Namespace)
	return ns.DeletionTimestamp == nil, ns.Labels[netv1alpha1.GlobalNamespaceLabel]
}

// Export returns what the member exports of namespace/name: its ServiceExport (nil if none),
// the Service (nil if none) and the Service's own EndpointSlices.
func (i *Inventory) Export(member, namespace, name string) (*mcsv1beta1.ServiceExport, *corev1.Service, []*discoveryv1.EndpointSlice) {
	m := i.member(member)
	if m == nil {
		return nil, nil, nil
	}
	key := namespace + "/" + name
	var se *mcsv1beta1.ServiceExport
	if o, ok, _ := m.exports.GetStore().GetByKey(key); ok {
		se = o.(*mcsv1beta1.ServiceExport)
	}
	var svc *corev1.Service
	if o, ok, _ := m.services.GetStore().GetByKey(key); ok {
		svc = o.(*corev1.Service)
		if svc.Labels[fleetv1alpha1.ManagedByLabel] == fleetv1alpha1.ManagedByValue {
			svc = nil // a Service Meridian made is never exported
		}
	}
	var slices []*discoveryv1.EndpointSlice
	objs, _ := m.slices.GetIndexer().ByIndex(byServiceIndex, key)
	for _, o := range objs {
		slices = append(slices, o.(*discoveryv1.EndpointSlice))
	}
	sort.Slice(slices, func(a, b int) bool { return slices[a].Name < slices[b].Name })
	return se, svc, slices
}

// DerivedIPs returns the ClusterIPs the member allocated to the derived Service of namespace/name.
func (i *Inventory) DerivedIPs(member, namespace, name string) []string {
	m := i.member(member)
	if m == nil {
		return nil
	}
	o, ok, _ := m.services.GetStore().GetByKey(namespace + "/" + DerivedServiceName(name))
	if !ok {
		return nil
	}
	svc := o.(*corev1.Service)
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil
	}
	if len(svc.Spec.ClusterIPs) > 0 {
		return svc.Spec.ClusterIPs
	}
	return []string{svc.Spec.ClusterIP}
}

// ImportStatus returns Meridian's ServiceImport namespace/name in the member, if it exists.
func (i *Inventory) ImportStatus(member, namespace, name string) (*mcsv1beta1.ServiceImport, bool) {
	m := i.member(member)
	if m == nil {
		return nil, false
	}
	o, ok, _ := m.imports.GetStore().GetByKey(namespace + "/" + name)
	if !ok {
		return nil, false
	}
	return o.(*mcsv1beta1.ServiceImport), true
}

// ServiceKey names a service in the cluster set.
type ServiceKey struct{ Namespace, Name string }

// Candidates lists every service some member might export: those with a ServiceExport, and every
// Service in a namespace for which all(member, namespace) says every Service is exported.
func (i *Inventory) Candidates(all func(member, namespace string) bool) []ServiceKey {
	seen := map[ServiceKey]bool{}
	for _, n := range i.Names() {
		m := i.member(n)
		if m == nil {
			continue
		}
		for _, o := range m.exports.GetStore().List() {
			e := o.(*mcsv1beta1.ServiceExport)
			seen[ServiceKey{e.Namespace, e.Name}] = true
		}
		for _, o := range m.services.GetStore().List() {
			s := o.(*corev1.Service)
			if s.Labels[fleetv1alpha1.ManagedByLabel] != fleetv1alpha1.ManagedByValue && all(n, s.Namespace) {
				seen[ServiceKey{s.Namespace, s.Name}] = true
			}
		}
	}
	out := make([]ServiceKey, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	return out
}
