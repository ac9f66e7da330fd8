package agentstatus

import (
	"context"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
)

var (
	crdResource        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	nodeAgentInfos     = memberv1alpha1.GroupVersion.WithResource("nodeagentinfos")
	antreaAgentInfos   = schema.GroupVersionResource{Group: "crd.antrea.io", Version: "v1beta1", Resource: "antreaagentinfos"}
	antreaControllerIs = schema.GroupVersionResource{Group: "crd.antrea.io", Version: "v1beta1", Resource: "antreacontrollerinfos"}
)

// kinds are the member kinds the aggregator watches once the member serves them, with their trims.
var kinds = map[schema.GroupVersionResource]cache.TransformFunc{
	nodeAgentInfos:     TrimNodeAgentInfo,
	antreaAgentInfos:   TrimAntreaAgentInfo,
	antreaControllerIs: TrimAntreaControllerInfo,
}

// Aggregator is the member-cache subscriber: per connected member it watches the nodes, the
// agents' Leases in meridian-system and, once their CRDs exist, NodeAgentInfos and Antrea's info
// kinds, each trimmed. Notify is called (from informer goroutines; it must return quickly) when a
// member's summary may have changed. A Lease renewal that changes nothing but the renew time is
// not a change: the summary's own clock (Summarize's next) covers a Lease turning stale. The
// member lifecycle (informers started on connect, stopped on disconnect or new credentials) is
// membercache.PerMember's. A disconnected member is forgotten; its MemberCluster keeps the last
// summary written, and its Reachable condition says how old that is.
type Aggregator struct {
	*membercache.PerMember[*member]
	notify func(member string)
	clock  clock.PassiveClock
}

type member struct {
	name string
	ctx  context.Context
	dyn  func(schema.GroupVersionResource) cache.SharedIndexInformer

	nodes, leases, crds cache.SharedIndexInformer
	mu                  sync.Mutex
	running             map[schema.GroupVersionResource]*kindInformer
}

type kindInformer struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
}

// New returns an aggregator that calls notify with a member's name when its agents change.
func New(notify func(member string), clk clock.PassiveClock) *Aggregator {
	if clk == nil {
		clk = clock.RealClock{}
	}
	a := &Aggregator{notify: notify, clock: clk}
	a.PerMember = membercache.NewPerMember(membercache.PerMemberFuncs[*member]{New: a.connect, Run: a.run})
	return a
}

// connect makes the member's informers on its new connection.
func (a *Aggregator) connect(ctx context.Context, mc *membercache.Member) *member {
	m := &member{name: mc.Name, ctx: ctx, running: map[schema.GroupVersionResource]*kindInformer{}}
	m.dyn = func(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
		return dynamicinformer.NewFilteredDynamicInformer(mc.WatchDynamic, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	}
	core := mc.WatchKubernetes.CoreV1().RESTClient()
	m.nodes = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(core, "nodes", metav1.NamespaceAll, fields.Everything()), &corev1.Node{}, 0, cache.Indexers{})
	m.leases = cache.NewSharedIndexInformer(cache.NewListWatchFromClient(mc.WatchKubernetes.CoordinationV1().RESTClient(), "leases", memberv1alpha1.AgentNamespace, fields.Everything()),
		&coordinationv1.Lease{}, 0, cache.Indexers{})
	m.crds = m.dyn(crdResource)
	_ = m.nodes.SetTransform(TrimNode)
	_ = m.leases.SetTransform(TrimLease)
	_ = m.crds.SetTransform(TrimCRD)

	changed := func(any) { a.notify(m.name) }
	_, _ = m.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: changed, DeleteFunc: changed})
	_, _ = m.leases.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    changed,
		DeleteFunc: changed,
		UpdateFunc: func(old, cur any) {
			if a.leaseChanged(old.(*coordinationv1.Lease), cur.(*coordinationv1.Lease)) {
				a.notify(m.name)
			}
		},
	})
	crdsChanged := func(any) { a.syncKinds(m) }
	_, _ = m.crds.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: crdsChanged, UpdateFunc: func(_, o any) { crdsChanged(o) }, DeleteFunc: crdsChanged})
	return m
}

// run starts the member's informers; the member's summary is ready once they synced.
func (a *Aggregator) run(ctx context.Context, m *member) {
	membercache.RunInformers(ctx, func() { a.notify(m.name) }, m.nodes, m.leases, m.crds)
}

// leaseChanged says whether a Lease update can change the summary: another holder or duration,
// or a renewal of a Lease that had gone stale.
func (a *Aggregator) leaseChanged(old, cur *coordinationv1.Lease) bool {
	if !equalPtr(old.Spec.HolderIdentity, cur.Spec.HolderIdentity) || !equalPtr(old.Spec.LeaseDurationSeconds, cur.Spec.LeaseDurationSeconds) {
		return true
	}
	o := leaseAgent(old)
	return !a.clock.Now().Before(o.RenewTime.Add(StaleAfter * o.Interval))
}

func equalPtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// syncKinds starts the informers of the kinds whose CRDs the member has and stops the others.
func (a *Aggregator) syncKinds(m *member) {
	served := map[schema.GroupVersionResource]bool{}
	for _, o := range m.crds.GetStore().List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.Object["established"] != true {
			continue
		}
		name := u.GetName()
		for gvr := range kinds {
			if name == gvr.Resource+"."+gvr.Group {
				served[gvr] = true
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for gvr, trim := range kinds {
		k := m.running[gvr]
		switch {
		case served[gvr] && k == nil:
			ctx, cancel := context.WithCancel(m.ctx)
			k = &kindInformer{inf: m.dyn(gvr), cancel: cancel}
			_ = k.inf.SetTransform(trim)
			notify := func(any) { a.notify(m.name) }
			_, _ = k.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: notify, UpdateFunc: func(_, o any) { notify(o) }, DeleteFunc: notify})
			m.running[gvr] = k
			membercache.RunInformers(ctx, func() { a.notify(m.name) }, k.inf)
			changed = true
		case !served[gvr] && k != nil:
			k.cancel()
			delete(m.running, gvr)
			changed = true
		}
	}
	if changed {
		a.notify(m.name)
	}
}

// Snapshot is what the member's agents report; ok is false while the member is not connected or
// its informers have not synced.
func (a *Aggregator) Snapshot(name string) (Member, bool) {
	m, ok := a.Get(name)
	if !ok || !m.nodes.HasSynced() || !m.leases.HasSynced() || !m.crds.HasSynced() {
		return Member{}, false
	}
	m.mu.Lock()
	running := map[schema.GroupVersionResource]cache.SharedIndexInformer{}
	for gvr, k := range m.running {
		if !k.inf.HasSynced() {
			m.mu.Unlock()
			return Member{}, false
		}
		running[gvr] = k.inf
	}
	m.mu.Unlock()

	out := Member{Agents: map[string]Agent{}}
	for _, o := range m.nodes.GetStore().List() {
		out.Nodes = append(out.Nodes, o.(*corev1.Node).Name)
	}
	for _, o := range m.leases.GetStore().List() {
		l := o.(*coordinationv1.Lease)
		node, ok := strings.CutPrefix(l.Name, memberv1alpha1.AgentLeasePrefix)
		if !ok {
			continue
		}
		out.Agents[node] = leaseAgent(l)
	}
	if inf := running[nodeAgentInfos]; inf != nil {
		for _, o := range inf.GetStore().List() {
			info, ok := o.(*memberv1alpha1.NodeAgentInfo)
			if !ok {
				continue
			}
			ag := out.Agents[info.Name]
			ag.HasReport, ag.Version, ag.ConfigHash, ag.RefusedConfigHash = true, info.Version, info.ConfigHash, info.RefusedConfigHash
			if c := meta.FindStatusCondition(info.Conditions, memberv1alpha1.ConfigValidCondition); c != nil {
				ag.ConfigValid, ag.ConfigMessage = c.Status, c.Message
			}
			ag.Healthy = meta.IsStatusConditionTrue(info.Conditions, memberv1alpha1.HealthyCondition)
			out.Agents[info.Name] = ag
		}
	}
	if agents, controllers := running[antreaAgentInfos], running[antreaControllerIs]; agents != nil {
		out.Antrea = &Antrea{Agents: map[string]AntreaInfo{}}
		for _, o := range agents.GetStore().List() {
			if i, ok := o.(*antreaInfo); ok {
				out.Antrea.Agents[i.Name] = i.Info
			}
		}
		if controllers != nil {
			for _, o := range controllers.GetStore().List() {
				if i, ok := o.(*antreaInfo); ok {
					info := i.Info
					out.Antrea.Controller = &info
				}
			}
		}
	}
	return out, true
}

func leaseAgent(l *coordinationv1.Lease) Agent {
	a := Agent{HasLease: true}
	if l.Spec.RenewTime != nil {
		a.RenewTime = l.Spec.RenewTime.Time
	}
	if l.Spec.LeaseDurationSeconds != nil {
		a.Interval = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second / memberv1alpha1.AgentLeaseDurationFactor
	}
	if a.Interval <= 0 {
		a.Interval = DefaultInterval
	}
	return a
}
