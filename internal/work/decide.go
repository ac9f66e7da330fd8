package work

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Action is what the syncer does with one object of a Work.
type Action int

const (
	// ActionSkip: the member already holds what the Work wants; nothing is written.
	ActionSkip Action = iota
	// ActionApply: apply the manifest (create, or repair an object Meridian owns for this Work).
	ActionApply
	// ActionAdopt: apply and mark the object adopted: it existed before, and spec.adopt is set.
	ActionAdopt
	// ActionRetake: apply and drop the orphan mark of an object this Work created and orphaned.
	ActionRetake
	// ActionConflictOtherWork: another Work owns the object; leave it.
	ActionConflictOtherWork
	// ActionConflictUnowned: the object exists without Meridian's marks and the Work does not
	// adopt; leave it.
	ActionConflictUnowned
	// ActionWaitForKind: the member does not serve the object's kind (yet); try again later.
	ActionWaitForKind
	// ActionWaitForNamespace: the object's namespace does not exist in the member (yet); wait for
	// it to arrive.
	ActionWaitForNamespace
	// ActionRefuseNoNamespace: the kind is namespaced and the manifest names no namespace.
	ActionRefuseNoNamespace
	// ActionRefuseNamespace: the kind is cluster-scoped and the manifest names a namespace.
	ActionRefuseNamespace
)

var actionNames = [...]string{"Skip", "Apply", "Adopt", "Retake", "ConflictOtherWork", "ConflictUnowned",
	"WaitForKind", "WaitForNamespace", "RefuseNoNamespace", "RefuseNamespace"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "Action(?)"
}

// ObjectState is what the syncer knows of one object when it decides, all from memory: what the
// member serves, whether the object's namespace exists, the member cache's copy of the object if
// Meridian owns it, else the metadata of an object of that name Meridian does not own. The syncer
// stops reading as soon as a fact settles the decision (an unserved kind needs no namespace
// lookup), so later fields are only meaningful when the earlier ones let the decision go on.
type ObjectState struct {
	// Work is the name of the Work being synced; Adopt its spec.adopt.
	Work  string
	Adopt bool
	// Unserved: the member has no REST mapping for the object's kind and version.
	Unserved bool
	// Namespaced: the kind is namespaced in the member; HasNamespace: the manifest sets
	// metadata.namespace.
	Namespaced   bool
	HasNamespace bool
	// NamespaceMissing: the (namespaced) object's namespace does not exist in the member, or is
	// being deleted.
	NamespaceMissing bool
	// Owned is the cached object Meridian owns under that name (nil when none), and InSync whether
	// it already is what the manifest wants.
	Owned  *metav1.ObjectMeta
	InSync bool
	// Unowned is the metadata of an object Meridian does not own (nil when none); read only when
	// Owned is nil.
	Unowned *metav1.ObjectMeta
}

// Decide says what to do with one object, and whether it keeps or takes the adopted mark. It is
// pure: the apply and the conflict reports are the caller's.
func Decide(st ObjectState) (a Action, adopted bool) {
	switch {
	case st.Unserved:
		return ActionWaitForKind, false
	case st.Namespaced && !st.HasNamespace:
		return ActionRefuseNoNamespace, false
	case !st.Namespaced && st.HasNamespace:
		return ActionRefuseNamespace, false
	case st.Namespaced && st.NamespaceMissing:
		return ActionWaitForNamespace, false
	}
	if st.Owned != nil {
		switch {
		case st.Owned.Annotations[fleetv1alpha1.WorkAnnotation] != st.Work:
			return ActionConflictOtherWork, false
		case st.InSync:
			return ActionSkip, false
		default:
			// An adopted object keeps its mark, so that no prune ever deletes it.
			return ActionApply, st.Owned.Labels[fleetv1alpha1.AdoptedLabel] == "true"
		}
	}
	switch u := st.Unowned; {
	case u == nil:
		return ActionApply, false
	case u.Annotations[fleetv1alpha1.OrphanedFromAnnotation] == st.Work && u.Labels[fleetv1alpha1.AdoptedLabel] == "":
		return ActionRetake, false
	case !st.Adopt:
		return ActionConflictUnowned, false
	default:
		return ActionAdopt, true
	}
}

// ApplyOutcome is how the member's answer to an apply is reported.
type ApplyOutcome int

const (
	// ApplyDone: the member holds the object.
	ApplyDone ApplyOutcome = iota
	// ApplyWaitForNamespace: the namespace went away between the check and the write; wait for it.
	ApplyWaitForNamespace
	// ApplyRefused: the member refused the object; retrying the same manifest will not help.
	ApplyRefused
	// ApplyRetry: the member did not answer (or failed transiently); the pass is retried.
	ApplyRetry
)

// ClassifyApply sorts the member's answer to an apply of a (namespaced or not) object.
func ClassifyApply(err error, namespaced bool) ApplyOutcome {
	switch {
	case err == nil:
		return ApplyDone
	case apierrors.IsNotFound(err) && namespaced:
		return ApplyWaitForNamespace
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err):
		return ApplyRefused
	default:
		return ApplyRetry
	}
}

// PruneAction is what the syncer does with an object a Work owned and no longer lists.
type PruneAction int

const (
	// PruneForget: the object is gone, or is not this Work's any more; nothing is written.
	PruneForget PruneAction = iota
	// PruneWait: the object is being deleted already; nothing is written.
	PruneWait
	// PruneOrphan: remove Meridian's marks and leave the object in the member.
	PruneOrphan
	// PruneDelete: delete the object.
	PruneDelete
)

var pruneNames = [...]string{"Forget", "Wait", "Orphan", "Delete"}

func (a PruneAction) String() string {
	if int(a) < len(pruneNames) {
		return pruneNames[a]
	}
	return "PruneAction(?)"
}

// PruneState is what the syncer knows of an object to prune: the member's copy (nil when it is
// not there), the Work's name and its deletion policy.
type PruneState struct {
	Work   string
	Policy fleetv1alpha1.DeletionPolicy
	Live   *metav1.ObjectMeta
}

// DecidePrune says what to do with an object the Work no longer lists. For PruneOrphan,
// orphanedFrom is the Work the object should remember (so that the Work can take it back without
// spec.adopt), or "" to remember none: an adopted object was never Meridian's to give back.
func DecidePrune(st PruneState) (a PruneAction, orphanedFrom string) {
	live := st.Live
	switch {
	case live == nil:
		return PruneForget, ""
	case live.Labels[fleetv1alpha1.ManagedByLabel] != fleetv1alpha1.ManagedByValue ||
		live.Annotations[fleetv1alpha1.WorkAnnotation] != st.Work:
		return PruneForget, "" // not ours (any more): never delete what Meridian did not create
	case live.DeletionTimestamp != nil:
		return PruneWait, ""
	}
	adopted := live.Labels[fleetv1alpha1.AdoptedLabel] == "true"
	switch {
	case adopted:
		return PruneOrphan, ""
	case st.Policy == fleetv1alpha1.DeletionPolicyOrphan:
		return PruneOrphan, st.Work
	default:
		return PruneDelete, ""
	}
}
