package work

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/membercache"
)

// trimmedKey holds, in a transformed cache entry, what the syncer computed from the full object.
const trimmedKey = "meridian.internal"

// ProcessFunc handles one ClusterWork (by its hub key) on a member's worker.
type ProcessFunc func(ctx context.Context, s *MemberSyncer, work types.NamespacedName) (requeueAfter time.Duration, err error)

// MemberSyncer writes to one member cluster. It owns the member's queue of Works, its workers and
// its informers; Stop ends them all.
type MemberSyncer struct {
	name         string
	hubNamespace string
	fingerprint  string
	dyn          dynamic.Interface
	watchDyn     dynamic.Interface // for informers: no per-request timeout
	meta         metadata.Interface
	// inflight bounds the requests in flight to the member across its workers.
	inflight chan struct{}
	mapper   meta.RESTMapper
	queue    workqueue.TypedRateLimitingInterface[types.NamespacedName]
	// status writes status subresources on the member's own status workers.
	status *statusWriter
	passes passMetrics
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	informers map[schema.GroupVersionResource]cache.SharedIndexInformer
	// desired is what each object's Work wants, for the informers' transform.
	desired map[ObjectKey]desiredEntry
	// applied records, per object, the digest of the manifest last applied and the projection of
	// the live object the member returned: the object is in sync while both still hold.
	applied map[ObjectKey]appliedRecord
	// applying holds, per object whose apply is in flight, the resourceVersion of the last watch
	// event of it that arrived meanwhile ("" for none). The member often sends the event of an
	// apply before the apply's answer is read: without this, that echo of the syncer's own write
	// would look like someone else's change and queue the Work for a pass that finds nothing to do.
	applying map[ObjectKey]string
	// waiting lists, per namespace the member lacks, the Works that wait for it.
	waiting map[string]map[types.NamespacedName]bool
}

type desiredEntry struct {
	work     string
	object   map[string]any
	feedback []fleetv1alpha1.FeedbackField
}

type appliedRecord struct {
	manifest string
	// projection is empty after a metadata-only answer until the object's watch event at
	// resourceVersion shows it.
	projection      string
	resourceVersion string
	// observed digests the health and feedback last reported for the object.
	observed string
}

func observedDigest(t trimmed) string { return Digest([]any{t.Health, t.HealthMsg, t.Feedback}) }

// trimmed is what the cache keeps of a member object besides its metadata.
type trimmed struct {
	Projection string                        `json:"projection,omitempty"`
	Feedback   []fleetv1alpha1.FeedbackValue `json:"feedback,omitempty"`
	Health     string                        `json:"health,omitempty"`
	HealthMsg  string                        `json:"healthMessage,omitempty"`
}

func newMemberSyncer(m *membercache.Member, workers int, process ProcessFunc) *MemberSyncer {
	ctx, cancel := context.WithCancel(m.Context())
	s := &MemberSyncer{
		name:         m.Name,
		hubNamespace: fleetv1alpha1.MemberClusterNamespacePrefix + m.Name,
		fingerprint:  m.Fingerprint,
		dyn:          m.Dynamic,
		watchDyn:     m.WatchDynamic,
		meta:         m.Metadata,
		inflight:     make(chan struct{}, workers),
		mapper:       m.Mapper,
		queue:        newMemberQueue[types.NamespacedName](m.Name, "work"),
		status:       newStatusWriter(m.Name),
		passes:       newPassMetrics(m.Name),
		ctx:          ctx,
		cancel:       cancel,
		informers:    map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		desired:      map[ObjectKey]desiredEntry{},
		applied:      map[ObjectKey]appliedRecord{},
		applying:     map[ObjectKey]string{},
		waiting:      map[string]map[types.NamespacedName]bool{},
	}
	for range workers {
		s.wg.Add(1)
		go s.worker(process)
	}
	for range statusWorkers {
		s.wg.Add(1)
		go s.statusWorker()
	}
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
		s.status.queue.ShutDown()
	}()
	return s
}

func (s *MemberSyncer) acquire() { s.inflight <- struct{}{} }
func (s *MemberSyncer) release() { <-s.inflight }

// byRank splits manifests into apply ranks, in order.
func byRank(ms []*Manifest) [][]*Manifest {
	var out [][]*Manifest
	last := -1
	for _, m := range ms {
		if r := applyRank(m); r != last {
			out = append(out, nil)
			last = r
		}
		out[len(out)-1] = append(out[len(out)-1], m)
	}
	return out
}

// Name of the member.
func (s *MemberSyncer) Name() string { return s.name }

// Enqueue queues a Work of this member.
func (s *MemberSyncer) Enqueue(work types.NamespacedName) { s.queue.Add(work) }

// Stop ends the member's workers and informers, waits for the workers, and tells whoever waits
// for a status write that it will not happen.
func (s *MemberSyncer) Stop() {
	s.cancel()
	s.wg.Wait()
	s.status.drain(s.name)
}

func (s *MemberSyncer) worker(process ProcessFunc) {
	defer s.wg.Done()
	for {
		key, shutdown := s.queue.Get()
		if shutdown {
			return
		}
		start := time.Now()
		after, err := process(s.ctx, s, key)
		s.passes.observe(start, err)
		switch {
		case err != nil:
			s.queue.AddRateLimited(key)
		case after > 0:
			s.queue.Forget(key)
			s.queue.AddAfter(key, after)
		default:
			s.queue.Forget(key)
		}
		s.queue.Done(key)
	}
}

// informerFor returns the member-side cache of the objects Meridian owns of one resource, starting
// it on first use. ok is false until its first list has arrived.
func (s *MemberSyncer) informerFor(gvr schema.GroupVersionResource) (cache.SharedIndexInformer, bool) {
	s.mu.Lock()
	inf, found := s.informers[gvr]
	if !found {
		inf = dynamicinformer.NewFilteredDynamicInformer(s.watchDyn, gvr, metav1.NamespaceAll, 0,
			cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, workIndex: indexByWork},
			func(o *metav1.ListOptions) {
				o.LabelSelector = fleetv1alpha1.ManagedByLabel + "=" + fleetv1alpha1.ManagedByValue
			}).Informer()
		_ = inf.SetTransform(s.trim)
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if !s.isOwnEcho(obj) {
					s.onEvent(obj)
				}
			},
			UpdateFunc: func(old, cur any) {
				if changed(old, cur) && !s.isOwnEcho(cur) {
					s.onEvent(cur)
				}
			},
			DeleteFunc: s.onEvent,
		})
		s.informers[gvr] = inf
		go inf.RunWithContext(s.ctx)
	}
	s.mu.Unlock()
	return inf, inf.HasSynced()
}

// trim keeps of a member object only its identity, Meridian's marks and the digests the syncer
// needs, so that the cache grows with the number of objects, not their size.
func (s *MemberSyncer) trim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	if _, done := u.Object[trimmedKey]; done {
		return u, nil
	}
	key := ObjectKey{GroupKind: u.GroupVersionKind().GroupKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	t := trimmed{}
	s.mu.Lock()
	d, wanted := s.desired[key]
	s.mu.Unlock()
	if wanted {
		t.Projection = Digest(Project(d.object, u.Object))
		t.Feedback = readFeedback(u, d.feedback)
	}
	t.Health, t.HealthMsg = health(u)
	// Only JSON values may sit in an Unstructured: it is deep-copied as JSON.
	out := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": u.GetAPIVersion(),
		"kind":       u.GetKind(),
		trimmedKey: map[string]any{
			"projection":    t.Projection,
			"feedback":      mustJSON(t.Feedback),
			"health":        t.Health,
			"healthMessage": t.HealthMsg,
		},
	}}
	out.SetName(u.GetName())
	out.SetNamespace(u.GetNamespace())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	out.SetGeneration(u.GetGeneration())
	out.SetLabels(u.GetLabels())
	if w, ok := u.GetAnnotations()[fleetv1alpha1.WorkAnnotation]; ok {
		out.SetAnnotations(map[string]string{fleetv1alpha1.WorkAnnotation: w})
	}
	out.SetDeletionTimestamp(u.GetDeletionTimestamp())
	return out, nil
}

func trimmedOf(u *unstructured.Unstructured) trimmed {
	m, _ := u.Object[trimmedKey].(map[string]any)
	str := func(k string) string { v, _ := m[k].(string); return v }
	t := trimmed{Projection: str("projection"), Health: str("health"), HealthMsg: str("healthMessage")}
	if f := str("feedback"); f != "" && f != "null" {
		_ = json.Unmarshal([]byte(f), &t.Feedback)
	}
	return t
}

// changed tells whether an update matters to the syncer: its digests, marks or deletion.
func changed(old, cur any) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	c, ok2 := cur.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	ot, ct := trimmedOf(o), trimmedOf(c)
	if ot.Projection != ct.Projection || ot.Health != ct.Health || Digest(ot.Feedback) != Digest(ct.Feedback) {
		return true
	}
	if (o.GetDeletionTimestamp() == nil) != (c.GetDeletionTimestamp() == nil) {
		return true
	}
	return o.GetAnnotations()[fleetv1alpha1.WorkAnnotation] != c.GetAnnotations()[fleetv1alpha1.WorkAnnotation] ||
		o.GetLabels()[fleetv1alpha1.ManagedByLabel] != c.GetLabels()[fleetv1alpha1.ManagedByLabel]
}

func (s *MemberSyncer) onEvent(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	if w := u.GetAnnotations()[fleetv1alpha1.WorkAnnotation]; w != "" {
		s.queue.Add(types.NamespacedName{Namespace: s.hubNamespace, Name: w})
	}
	if u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1" && u.GetDeletionTimestamp() == nil {
		s.mu.Lock()
		works := s.waiting[u.GetName()]
		delete(s.waiting, u.GetName())
		s.mu.Unlock()
		for w := range works {
			s.queue.Add(w)
		}
	}
}

// isOwnEcho tells whether a watch event only reports what the syncer already knows from its own
// apply: same projection, same health and feedback. Such events need no pass over the Work.
func (s *MemberSyncer) isOwnEcho(obj any) bool {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetDeletionTimestamp() != nil {
		return false
	}
	if u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1" {
		s.mu.Lock()
		waited := len(s.waiting[u.GetName()]) > 0
		s.mu.Unlock()
		if waited {
			return false
		}
	}
	key := ObjectKey{GroupKind: u.GroupVersionKind().GroupKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	t := trimmedOf(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, inFlight := s.applying[key]; inFlight {
		// Judged when the apply's answer arrives (applyDone).
		s.applying[key] = u.GetResourceVersion()
		return true
	}
	rec, ok := s.applied[key]
	if ok {
		rec = s.learnLocked(key, rec, u, t.Projection) // the echo of a metadata-only apply
	}
	return ok && rec.projection == t.Projection && rec.observed == observedDigest(t)
}

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// namespaceExists tells whether the member has a namespace: Meridian's own from the cache, any
// other from the pass's listing of unowned namespaces.
func (s *MemberSyncer) namespaceExists(ctx context.Context, name string, unowned *unownedLister) (bool, error) {
	live, err := s.lookup(ctx, namespaceGVR, "", name)
	if err != nil {
		return false, err
	}
	if live != nil {
		return live.GetDeletionTimestamp() == nil, nil
	}
	ns, err := unowned.get(ctx, namespaceGVR, "", name)
	if err != nil {
		return false, err
	}
	return ns != nil && ns.DeletionTimestamp == nil, nil
}

func (s *MemberSyncer) waitForNamespace(namespace string, work types.NamespacedName) {
	s.mu.Lock()
	if s.waiting[namespace] == nil {
		s.waiting[namespace] = map[types.NamespacedName]bool{}
	}
	s.waiting[namespace][work] = true
	s.mu.Unlock()
	// The namespace may have arrived between the check and the registration above, its event
	// finding nobody waiting: look again now that the Work is registered.
	if live, _ := s.cached(namespaceGVR, "", namespace); live != nil && live.GetDeletionTimestamp() == nil {
		s.queue.Add(work)
	}
}

// cached returns the cached (trimmed) object, and whether the cache for its resource has synced.
func (s *MemberSyncer) cached(gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, bool) {
	inf, synced := s.informerFor(gvr)
	if !synced {
		return nil, false
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	obj, exists, err := inf.GetStore().GetByKey(key)
	if err != nil || !exists {
		return nil, true
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u, true
}

// ownedBy lists the cached objects a Work owns, across the resources this member caches.
func (s *MemberSyncer) ownedBy(work string) []ownedObject {
	s.mu.Lock()
	infs := make(map[schema.GroupVersionResource]cache.SharedIndexInformer, len(s.informers))
	for gvr, inf := range s.informers {
		infs[gvr] = inf
	}
	s.mu.Unlock()
	var out []ownedObject
	for gvr, inf := range infs {
		objs, _ := inf.GetIndexer().ByIndex(workIndex, work)
		for _, o := range objs {
			u, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			out = append(out, ownedObject{
				gvr: gvr,
				key: ObjectKey{GroupKind: u.GroupVersionKind().GroupKind(), Namespace: u.GetNamespace(), Name: u.GetName()},
				uid: u.GetUID(),
			})
		}
	}
	return out
}

const workIndex = "work"

func indexByWork(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	if w := u.GetAnnotations()[fleetv1alpha1.WorkAnnotation]; w != "" {
		return []string{w}, nil
	}
	return nil, nil
}

type ownedObject struct {
	gvr schema.GroupVersionResource
	key ObjectKey
	uid types.UID
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%q", err.Error())
	}
	return string(b)
}
