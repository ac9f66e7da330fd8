package work

import (
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
)

// ObjectState is what the syncer knows of one object when it decides, all from memory: the
// member cache's copy of the object if Meridian owns it, else the metadata of an object of that
// name Meridian does not own.
type ObjectState struct {
	// Work is the name of the Work being synced; Adopt its spec.adopt.
	Work  string
	Adopt bool
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
