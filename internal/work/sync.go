package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// pendingRetry is how soon an object that waits for something no watch here reports (a kind the
// member does not serve yet, a namespace that does not exist yet) is tried again.
const pendingRetry = 2 * time.Second

// Result is what one Sync did.
type Result struct {
	// Objects reports each object of the Work, in the order of spec.objects.
	Objects []fleetv1alpha1.ObjectStatus
	// Writes counts the write requests sent to the member.
	Writes int
	// WriteTime adds up how long the member took to answer those writes, as seen by the syncer.
	WriteTime time.Duration
	// RequeueAfter asks for another pass for objects that wait on something unwatched.
	RequeueAfter time.Duration
	// Err is a transient error (the member did not answer); the pass should be retried.
	Err error
	// PruneErr is the part of Err that comes from removing objects the Work no longer lists.
	PruneErr error
}

// Sync makes the member hold the Work's objects and prunes those it no longer lists.
func (s *MemberSyncer) Sync(ctx context.Context, work *fleetv1alpha1.ClusterWork) Result {
	manifests := Decode(work)
	s.register(work, manifests)

	res := Result{Objects: make([]fleetv1alpha1.ObjectStatus, len(manifests))}
	var errs []error
	wanted := map[ObjectKey]bool{}
	for _, m := range manifests {
		if m.Err == nil {
			wanted[m.Key] = true
		}
	}
	// Objects of one apply rank (CRDs, then namespaces, then the rest) go to the member together,
	// as many at a time as the member has workers; the next rank waits for the one before.
	existing := newUnownedLister(s)
	var mu sync.Mutex
	var writeTime atomic.Int64
	for _, group := range byRank(manifests) {
		var wg sync.WaitGroup
		for _, m := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, wrote, requeue, err := s.syncOne(ctx, work, m, existing, &writeTime)
				mu.Lock()
				defer mu.Unlock()
				res.Objects[m.Index] = st
				res.Writes += wrote
				if requeue > 0 && (res.RequeueAfter == 0 || requeue < res.RequeueAfter) {
					res.RequeueAfter = requeue
				}
				if err != nil {
					errs = append(errs, err)
				}
			}()
		}
		wg.Wait()
	}
	res.WriteTime = time.Duration(writeTime.Load())
	wrote, err := s.prune(ctx, work, wanted, work.Spec.DeletionPolicy)
	res.Writes += wrote
	if err != nil {
		res.PruneErr = err
		errs = append(errs, err)
	}
	res.Err = errors.Join(errs...)
	return res
}

// Cleanup removes (or orphans, by the Work's deletion policy) every object a deleted Work owns.
// Without an error, nothing of the Work is left to remove. It returns the writes it sent.
func (s *MemberSyncer) Cleanup(ctx context.Context, work *fleetv1alpha1.ClusterWork) (int, error) {
	s.register(work, nil)
	return s.prune(ctx, work, nil, work.Spec.DeletionPolicy)
}

// Forget drops what the syncer remembers of a Work that is gone.
func (s *MemberSyncer) Forget(work types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, d := range s.desired {
		if d.work == work.Name {
			delete(s.desired, k)
			delete(s.applied, k)
		}
	}
}

// register records what the Work wants, before anything is applied, so that the member cache's
// digests of the Work's objects are computed against it.
func (s *MemberSyncer) register(work *fleetv1alpha1.ClusterWork, manifests []*Manifest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[ObjectKey]bool{}
	for _, m := range manifests {
		if m.Err != nil {
			continue
		}
		keep[m.Key] = true
		if d, ok := s.desired[m.Key]; ok && d.work != work.Name {
			continue // another Work's object: this one will be reported as a conflict
		}
		s.desired[m.Key] = desiredEntry{work: work.Name, object: m.Object.Object, feedback: FeedbackFor(work.Spec.StatusFeedback, m.Key)}
	}
	for k, d := range s.desired {
		if d.work == work.Name && !keep[k] {
			delete(s.desired, k)
		}
	}
}

// syncOne reads what Decide needs about one object, decides, and carries the decision out.
func (s *MemberSyncer) syncOne(ctx context.Context, work *fleetv1alpha1.ClusterWork, m *Manifest, unowned *unownedLister, writeTime *atomic.Int64) (st fleetv1alpha1.ObjectStatus, writes int, requeue time.Duration, err error) {
	st = fleetv1alpha1.ObjectStatus{Group: m.Key.GroupKind.Group, Version: m.Version, Kind: m.Key.GroupKind.Kind, Namespace: m.Key.Namespace, Name: m.Key.Name}
	pending := func(msg string, after time.Duration, cause error) (fleetv1alpha1.ObjectStatus, int, time.Duration, error) {
		st.State, st.Message = fleetv1alpha1.ObjectPending, msg
		return st, 0, after, cause
	}
	failed := func(msg string) (fleetv1alpha1.ObjectStatus, int, time.Duration, error) {
		st.State, st.Message = fleetv1alpha1.ObjectFailed, msg
		return st, 0, 0, nil
	}
	if m.Err != nil {
		return failed(m.Err.Error())
	}
	// The apply request's body is the manifest marshalled as Digest marshals it: one encoding
	// serves both the comparison and the request.
	body, err := json.Marshal(m.Object.Object)
	if err != nil {
		return failed(fmt.Sprintf("%s cannot be encoded: %v.", m.Key, err))
	}
	digest := digestOf(body)
	state, mapping, live, rerr := s.readState(ctx, work, m, digest, unowned)
	if rerr != nil {
		return pending(rerr.msg, 0, rerr.cause)
	}

	action, adopted := Decide(state)
	switch action {
	case ActionWaitForKind:
		return pending(fmt.Sprintf("The member does not serve %s %s (yet); install its CRD or list the CRD in a Work.", m.Key.GroupKind, m.Version), pendingRetry, nil)
	case ActionRefuseNoNamespace:
		return failed(fmt.Sprintf("%s is namespaced: set metadata.namespace.", m.Key))
	case ActionRefuseNamespace:
		return failed(fmt.Sprintf("%s is cluster-scoped: remove metadata.namespace.", m.Key))
	case ActionWaitForNamespace:
		// The namespace's arrival (when Meridian creates it) queues this Work again.
		s.waitForNamespace(m.Key.Namespace, types.NamespacedName{Namespace: s.hubNamespace, Name: work.Name})
		return pending(fmt.Sprintf("Namespace %s does not exist in the member yet.", m.Key.Namespace), pendingRetry, nil)
	case ActionConflictOtherWork:
		st.State = fleetv1alpha1.ObjectConflict
		st.Message = fmt.Sprintf("%s already belongs to ClusterWork %s/%s; list it in one Work only.", m.Key, s.hubNamespace, state.Owned.Annotations[fleetv1alpha1.WorkAnnotation])
		st.ConflictManagers = []string{fleetv1alpha1.FieldManager}
		return st, 0, 0, nil
	case ActionSkip:
		t := trimmedOf(live)
		s.observe(m.Key, t)
		st.State, st.AppliedGeneration, st.Feedback = fleetv1alpha1.ObjectApplied, live.GetGeneration(), t.Feedback
		st.Health, st.Message = t.Health, t.HealthMsg
		return st, 0, 0, nil
	case ActionConflictUnowned:
		st.State = fleetv1alpha1.ObjectConflict
		st.ConflictManagers = managersOf(state.Unowned.ManagedFields)
		st.Message = fmt.Sprintf("%s exists in the member and was not created by Meridian (field managers: %s); it was left untouched. Set spec.adopt to take it over.",
			m.Key, strings.Join(st.ConflictManagers, ", "))
		return st, 0, 0, nil
	}
	if adopted {
		if body, err = json.Marshal(withLabel(m.Object, fleetv1alpha1.AdoptedLabel, "true").Object); err != nil {
			return failed(fmt.Sprintf("%s cannot be encoded: %v.", m.Key, err))
		}
	}
	return s.apply(ctx, work, m, mapping, body, digest, action == ActionRetake, st, writeTime)
}

// readState reads, from the member cache (or, for objects Meridian does not own, one metadata
// listing per resource and namespace for every object of the pass), what Decide needs about one
// object. It stops at the first fact that settles the decision. A readFailure means the member
// (or its cache) did not answer.
func (s *MemberSyncer) readState(ctx context.Context, work *fleetv1alpha1.ClusterWork, m *Manifest, digest string, unowned *unownedLister) (state ObjectState, mapping *meta.RESTMapping, live *unstructured.Unstructured, _ *readFailure) {
	state = ObjectState{Work: work.Name, Adopt: work.Spec.Adopt, HasNamespace: m.Key.Namespace != ""}
	mapping, err := s.mapper.RESTMapping(m.Key.GroupKind, m.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			state.Unserved = true
			return state, nil, nil, nil
		}
		return state, nil, nil, &readFailure{fmt.Sprintf("Looking up %s in the member failed: %v.", m.Key.GroupKind, err), err}
	}
	state.Namespaced = mapping.Scope.Name() == meta.RESTScopeNameNamespace
	if state.Namespaced != state.HasNamespace {
		return state, mapping, nil, nil
	}
	if state.Namespaced {
		exists, err := s.namespaceExists(ctx, m.Key.Namespace, unowned)
		if err != nil {
			return state, mapping, nil, &readFailure{fmt.Sprintf("Reading namespace %s from the member failed: %v.", m.Key.Namespace, err), err}
		}
		if state.NamespaceMissing = !exists; state.NamespaceMissing {
			return state, mapping, nil, nil
		}
	}
	live, err = s.lookup(ctx, mapping.Resource, m.Key.Namespace, m.Key.Name)
	if err != nil {
		return state, mapping, nil, &readFailure{"Waiting for the member's cache of " + mapping.Resource.Resource + ".", err}
	}
	if live != nil {
		state.Owned = &metav1.ObjectMeta{Annotations: live.GetAnnotations(), Labels: live.GetLabels()}
		// inSync records what it learns: only for this Work's own object.
		state.InSync = live.GetAnnotations()[fleetv1alpha1.WorkAnnotation] == work.Name && s.inSync(m, digest, live)
		return state, mapping, live, nil
	}
	existing, err := unowned.get(ctx, mapping.Resource, m.Key.Namespace, m.Key.Name)
	if err != nil {
		return state, mapping, nil, &readFailure{fmt.Sprintf("Reading %s from the member failed: %v.", m.Key, err), err}
	}
	if existing != nil {
		state.Unowned = &existing.ObjectMeta
	}
	return state, mapping, nil, nil
}

// readFailure is a read of the member that did not answer: the object's status message, and the
// cause that makes the pass retry.
type readFailure struct {
	msg   string
	cause error
}

// apply writes one object to the member (retaken: and drops its orphan mark) and reports it.
func (s *MemberSyncer) apply(ctx context.Context, work *fleetv1alpha1.ClusterWork, m *Manifest, mapping *meta.RESTMapping, body []byte, digest string, retaken bool, st fleetv1alpha1.ObjectStatus, writeTime *atomic.Int64) (fleetv1alpha1.ObjectStatus, int, time.Duration, error) {
	// Objects of a kind that has no status, of which nothing is read back, are applied through the
	// metadata client: the member answers with their metadata alone (protobuf), since decoding
	// whole objects is most of what applying costs the syncer. Their projection is learned from
	// the watch event of the apply.
	feedback := FeedbackFor(work.Spec.StatusFeedback, m.Key)
	metadataOnly := len(feedback) == 0 && statusless[m.Key.GroupKind] && !retaken
	ri := s.resource(mapping.Resource, m.Key.Namespace)
	// The member's slot is held for the requests alone; what is computed from the answer is not.
	s.acquire()
	s.applyStarts(m.Key)
	began := time.Now()
	force := true
	opts := metav1.PatchOptions{FieldManager: fleetv1alpha1.FieldManager, Force: &force}
	var applied *unstructured.Unstructured
	var appliedMeta *metav1.PartialObjectMetadata
	var err error
	if metadataOnly {
		appliedMeta, err = s.metadataResource(mapping.Resource, m.Key.Namespace).Patch(ctx, m.Key.Name, types.ApplyPatchType, body, opts)
	} else {
		applied, err = ri.Patch(ctx, m.Key.Name, types.ApplyPatchType, body, opts)
	}
	writes := 1
	if err == nil && retaken {
		// The orphan mark was written by a merge patch, not by the apply: remove it the same way.
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, fleetv1alpha1.OrphanedFromAnnotation)
		applied, err = ri.Patch(ctx, m.Key.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: fleetv1alpha1.FieldManager})
		writes++
	}
	writeTime.Add(int64(time.Since(began)))
	s.release()
	workKey := types.NamespacedName{Namespace: work.Namespace, Name: work.Name}
	if err != nil {
		s.applyDone(m.Key, workKey, nil)
	}
	switch ClassifyApply(err, m.Key.Namespace != "") {
	case ApplyWaitForNamespace:
		st.State, st.Message = fleetv1alpha1.ObjectPending, fmt.Sprintf("Namespace %s does not exist in the member yet.", m.Key.Namespace)
		return st, writes, pendingRetry, nil
	case ApplyRefused:
		st.State, st.Message = fleetv1alpha1.ObjectFailed, fmt.Sprintf("The member refused %s: %v.", m.Key, err)
		return st, writes, 0, nil
	case ApplyRetry:
		st.State, st.Message = fleetv1alpha1.ObjectPending, fmt.Sprintf("Applying %s to the member failed: %v.", m.Key, err)
		return st, writes, 0, err
	}
	st.State = fleetv1alpha1.ObjectApplied
	rec := appliedRecord{manifest: digest}
	if metadataOnly {
		// Without a status, the object's health is its kind's: the manifest tells it.
		st.AppliedGeneration, rec.resourceVersion = appliedMeta.Generation, appliedMeta.ResourceVersion
		st.Health, st.Message = health(m.Object)
	} else {
		st.AppliedGeneration, rec.resourceVersion = applied.GetGeneration(), applied.GetResourceVersion()
		st.Feedback = readFeedback(applied, feedback)
		st.Health, st.Message = health(applied)
		rec.projection = Digest(Project(m.Object.Object, applied.Object))
	}
	rec.observed = observedDigest(trimmed{Health: st.Health, HealthMsg: st.Message, Feedback: st.Feedback})
	s.applyDone(m.Key, workKey, &rec)
	return st, writes, 0, nil
}

// applyStarts marks an object's apply as in flight: its watch events wait for the answer.
func (s *MemberSyncer) applyStarts(key ObjectKey) {
	s.mu.Lock()
	s.applying[key] = ""
	s.mu.Unlock()
}

// applyDone ends an object's apply and records what the member answered (nil: the apply failed),
// in one step, so that no watch event is judged between the two. A watch event of another version
// than the answer's that arrived meanwhile (someone else's write, or the first of two writes)
// queues the Work again, as it would have without the wait.
func (s *MemberSyncer) applyDone(key ObjectKey, work types.NamespacedName, rec *appliedRecord) {
	s.mu.Lock()
	seen := s.applying[key]
	delete(s.applying, key)
	if rec != nil {
		s.applied[key] = *rec
	}
	s.mu.Unlock()
	if seen != "" && (rec == nil || seen != rec.resourceVersion) {
		s.queue.Add(work)
	}
}

// statusless are the kinds whose objects have no status: their health never changes and a write
// of them needs no answer but their metadata.
var statusless = map[schema.GroupKind]bool{
	{Kind: "ConfigMap"}:      true,
	{Kind: "Secret"}:         true,
	{Kind: "ServiceAccount"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:               true,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
}

// inSync decides, from memory only, whether a cached object already is what the manifest wants.
func (s *MemberSyncer) inSync(m *Manifest, digest string, live *unstructured.Unstructured) bool {
	if live.GetDeletionTimestamp() != nil {
		return false
	}
	t := trimmedOf(live)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.applied[m.Key]
	if ok && rec.manifest == digest {
		if rec = s.learnLocked(m.Key, rec, live, t.Projection); rec.projection != "" {
			return rec.projection == t.Projection
		}
	}
	// Nothing applied by this process yet (a restart), or changed since a metadata-only answer: in
	// sync when the live object holds every field the manifest sets, with the same values.
	if t.Projection != "" && t.Projection == Digest(Project(m.Object.Object, m.Object.Object)) {
		s.applied[m.Key] = appliedRecord{manifest: digest, projection: t.Projection}
		return true
	}
	return false
}

// learnLocked fills in the projection of an object applied with a metadata-only answer from a live
// copy at the apply's resourceVersion, and returns the record. s.mu must be held.
func (s *MemberSyncer) learnLocked(key ObjectKey, rec appliedRecord, live *unstructured.Unstructured, projection string) appliedRecord {
	if rec.projection == "" && rec.resourceVersion == live.GetResourceVersion() {
		rec.projection = projection
		s.applied[key] = rec
	}
	return rec
}

// observe records the health and feedback reported for an object, so that a watch event that
// repeats them does not queue the Work again.
func (s *MemberSyncer) observe(key ObjectKey, t trimmed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.applied[key]; ok {
		rec.observed = observedDigest(t)
		s.applied[key] = rec
	}
}

// lookup returns Meridian's cached (trimmed) object, or nil when Meridian owns none of that name,
// waiting first for the cache of its resource to sync.
func (s *MemberSyncer) lookup(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	if inf, synced := s.informerFor(gvr); !synced {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
			return nil, fmt.Errorf("cache of %s in member %s did not sync", gvr, s.name)
		}
	}
	live, _ := s.cached(gvr, namespace, name)
	return live, nil
}

func (s *MemberSyncer) metadataResource(gvr schema.GroupVersionResource, namespace string) metadata.ResourceInterface {
	if namespace == "" {
		return s.meta.Resource(gvr)
	}
	return s.meta.Resource(gvr).Namespace(namespace)
}

func (s *MemberSyncer) resource(gvr schema.GroupVersionResource, namespace string) dynamic.ResourceInterface {
	if namespace == "" {
		return s.dyn.Resource(gvr)
	}
	return s.dyn.Resource(gvr).Namespace(namespace)
}

// prune removes, or orphans, the objects the Work owned and no longer wants. Only objects that
// carry this Work's marks are touched.
func (s *MemberSyncer) prune(ctx context.Context, work *fleetv1alpha1.ClusterWork, wanted map[ObjectKey]bool, policy fleetv1alpha1.DeletionPolicy) (int, error) {
	candidates := map[ObjectKey]schema.GroupVersionResource{}
	for _, o := range s.ownedBy(work.Name) {
		candidates[o.key] = o.gvr
	}
	for _, o := range work.Status.Objects {
		key := ObjectKey{GroupKind: schema.GroupKind{Group: o.Group, Kind: o.Kind}, Namespace: o.Namespace, Name: o.Name}
		if _, known := candidates[key]; known || wanted[key] {
			continue
		}
		mapping, err := s.mapper.RESTMapping(key.GroupKind, o.Version)
		if err != nil {
			if meta.IsNoMatchError(err) {
				continue // the kind is gone from the member, and its objects with it
			}
			return 0, fmt.Errorf("look up %s in member %s: %w", key, s.name, err)
		}
		candidates[key] = mapping.Resource
	}
	keys := make([]ObjectKey, 0, len(candidates))
	for k := range candidates {
		if !wanted[k] {
			keys = append(keys, k)
		}
	}
	// Remove in the reverse of apply order: namespaced objects, then namespaces, then CRDs.
	sort.Slice(keys, func(a, b int) bool {
		ra, rb := applyRank(&Manifest{Key: keys[a]}), applyRank(&Manifest{Key: keys[b]})
		if ra != rb {
			return ra > rb
		}
		return keys[a].String() < keys[b].String()
	})
	writes := 0
	var errs []error
	for _, k := range keys {
		wrote, err := s.pruneOne(ctx, work.Name, k, candidates[k], policy)
		writes += wrote
		if err != nil {
			errs = append(errs, err)
		}
	}
	return writes, errors.Join(errs...)
}

func (s *MemberSyncer) pruneOne(ctx context.Context, workName string, key ObjectKey, gvr schema.GroupVersionResource, policy fleetv1alpha1.DeletionPolicy) (int, error) {
	ri := s.resource(gvr, key.Namespace)
	live, err := ri.Get(ctx, key.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("read %s from member %s: %w", key, s.name, err)
	}
	state := PruneState{Work: workName, Policy: policy}
	if err == nil {
		state.Live = &metav1.ObjectMeta{Labels: live.GetLabels(), Annotations: live.GetAnnotations(), DeletionTimestamp: live.GetDeletionTimestamp()}
	}
	action, orphanedFrom := DecidePrune(state)
	switch action {
	case PruneForget:
		s.forgetObject(key)
		return 0, nil
	case PruneWait:
		return 0, nil
	case PruneOrphan:
		// An orphaned object loses Meridian's marks; one Meridian created remembers its Work, so
		// that the Work can take it back, an adopted one does not (taking it again needs adopt).
		var from any
		if orphanedFrom != "" {
			from = orphanedFrom
		}
		patch := mustJSON(map[string]any{"metadata": map[string]any{
			"labels":      map[string]any{fleetv1alpha1.ManagedByLabel: nil, fleetv1alpha1.AdoptedLabel: nil},
			"annotations": map[string]any{fleetv1alpha1.WorkAnnotation: nil, fleetv1alpha1.OrphanedFromAnnotation: from},
		}})
		if _, err := ri.Patch(ctx, key.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: fleetv1alpha1.FieldManager}); err != nil && !apierrors.IsNotFound(err) {
			return 1, fmt.Errorf("orphan %s in member %s: %w", key, s.name, err)
		}
		s.forgetObject(key)
		return 1, nil
	}
	uid := live.GetUID()
	background := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, key.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &background})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 1, fmt.Errorf("delete %s from member %s: %w", key, s.name, err)
	}
	s.forgetObject(key)
	return 1, nil
}

// withLabel returns a copy of obj with one more label.
func withLabel(obj *unstructured.Unstructured, key, value string) *unstructured.Unstructured {
	out := obj.DeepCopy()
	labels := out.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[key] = value
	out.SetLabels(labels)
	return out
}

func (s *MemberSyncer) forgetObject(key ObjectKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.applied, key)
}

func managersOf(fields []metav1.ManagedFieldsEntry) []string {
	seen := map[string]bool{}
	var out []string
	for _, mf := range fields {
		if mf.Manager != "" && !seen[mf.Manager] {
			seen[mf.Manager] = true
			out = append(out, mf.Manager)
		}
	}
	if len(out) == 0 {
		out = []string{"unknown"}
	}
	sort.Strings(out)
	return out
}
