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
// membercache.Subscriber, and a member's informers live exactly as long as its connection.
type Inventory struct {
	handlers Handlers

	mu      sync.Mutex
	stopped bool
	members map[string]*memberInventory
	// notices are the goroutines that tell the handlers of a disconnect.
	notices sync.WaitGroup
}

var _ membercache.Subscriber = (*Inventory)(nil)

// NewInventory returns an empty Inventory; the member cache's notices add and remove members.
func NewInventory(h Handlers) *Inventory {
	return &Inventory{handlers: h, members: map[string]*memberInventory{}}
}

type memberInventory struct {
	name   string
	cancel context.CancelFunc
	dyn    dynamic.Interface

	services, slices, namespaces cache.SharedIndexInformer

	mu       sync.Mutex
	crdState CRDState
	exports  cache.SharedIndexInformer // nil until the CRDs are served
	imports  cache.SharedIndexInformer
}

// MemberConnected starts the member's inventory on its new clients, replacing any older one.
func (i *Inventory) MemberConnected(m *membercache.Member) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.stopped {
		return
	}
	if old := i.members[m.Name]; old != nil {
		old.cancel()
	}
	i.members[m.Name] = i.start(m)
}

// MemberDisconnected stops the member's informers and tells service discovery that the member's
// inventory is gone.
func (i *Inventory) MemberDisconnected(name string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	old := i.members[name]
	if old == nil {
		return
	}
	old.cancel()
	delete(i.members, name)
	if i.stopped {
		return
	}
	// The handlers queue requests on a bounded channel: never block the member cache on it.
	i.notices.Add(1)
	go func() {
		defer i.notices.Done()
		i.handlers.Member(name)
	}()
}

// MemberHealthChanged does nothing: the informers reconnect by themselves.
func (i *Inventory) MemberHealthChanged(string, membercache.Health) {}

// Stop ends every member's inventory.
func (i *Inventory) Stop() {
	i.mu.Lock()
	i.stopped = true
	for name, m := range i.members {
		m.cancel()
		delete(i.members, name)
	}
	i.mu.Unlock()
	i.notices.Wait()
}

// Start blocks until ctx ends, then stops; it makes the Inventory a manager Runnable.
func (i *Inventory) Start(ctx context.Context) error {
	<-ctx.Done()
	i.Stop()
	return nil
}

func (i *Inventory) start(mc *membercache.Member) *memberInventory {
	name := mc.Name
	ctx, cancel := context.WithCancel(mc.Context())
	m := &memberInventory{name: name, cancel: cancel, dyn: mc.WatchDynamic}
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
	f.Start(mc.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), m.services.HasSynced, m.slices.HasSynced, m.namespaces.HasSynced) {
			i.handlers.Member(name)
		}
	}()
	go i.watchCRDs(ctx, m)
	return m
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
	i.mu.Lock()
	m := i.members[name]
	i.mu.Unlock()
	if m == nil || !m.services.HasSynced() || !m.slices.HasSynced() || !m.namespaces.HasSynced() {
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
	i.mu.Lock()
	m := i.members[member]
	i.mu.Unlock()
	if m == nil {
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
	i.mu.Lock()
	names := make([]string, 0, len(i.members))
	for n := range i.members {
		names = append(names, n)
	}
	i.mu.Unlock()
	seen := map[ServiceKey]bool{}
	for _, n := range names {
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
