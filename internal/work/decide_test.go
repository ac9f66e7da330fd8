package work

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestDecide(t *testing.T) {
	ours := &metav1.ObjectMeta{Annotations: map[string]string{fleetv1alpha1.WorkAnnotation: "w"}}
	theirs := &metav1.ObjectMeta{Annotations: map[string]string{fleetv1alpha1.WorkAnnotation: "other"}}
	adoptedOurs := &metav1.ObjectMeta{Annotations: map[string]string{fleetv1alpha1.WorkAnnotation: "w"},
		Labels: map[string]string{fleetv1alpha1.AdoptedLabel: "true"}}
	foreign := &metav1.ObjectMeta{}
	orphanedHere := &metav1.ObjectMeta{Annotations: map[string]string{fleetv1alpha1.OrphanedFromAnnotation: "w"}}
	orphanedElsewhere := &metav1.ObjectMeta{Annotations: map[string]string{fleetv1alpha1.OrphanedFromAnnotation: "other"}}
	orphanedAdopted := &metav1.ObjectMeta{Annotations: map[string]string{fleetv1alpha1.OrphanedFromAnnotation: "w"},
		Labels: map[string]string{fleetv1alpha1.AdoptedLabel: "true"}}

	tests := []struct {
		name        string
		st          ObjectState
		want        Action
		wantAdopted bool
	}{
		{"nothing there: create", ObjectState{Work: "w"}, ActionApply, false},
		{"ours and in sync: no write", ObjectState{Work: "w", Owned: ours, InSync: true}, ActionSkip, false},
		{"ours and drifted: repair", ObjectState{Work: "w", Owned: ours}, ActionApply, false},
		{"adopted and drifted: repair, keeping the mark", ObjectState{Work: "w", Owned: adoptedOurs}, ActionApply, true},
		{"another Work's, even in sync", ObjectState{Work: "w", Owned: theirs, InSync: true}, ActionConflictOtherWork, false},
		{"another Work's, adopt set", ObjectState{Work: "w", Adopt: true, Owned: theirs}, ActionConflictOtherWork, false},
		{"not Meridian's, no adopt", ObjectState{Work: "w", Unowned: foreign}, ActionConflictUnowned, false},
		{"not Meridian's, adopt", ObjectState{Work: "w", Adopt: true, Unowned: foreign}, ActionAdopt, true},
		{"orphaned by this Work: take back without adopt", ObjectState{Work: "w", Unowned: orphanedHere}, ActionRetake, false},
		{"orphaned by another Work: conflict", ObjectState{Work: "w", Unowned: orphanedElsewhere}, ActionConflictUnowned, false},
		{"adopted once, then orphaned: needs adopt again", ObjectState{Work: "w", Unowned: orphanedAdopted}, ActionConflictUnowned, false},
		{"adopted once, then orphaned, adopt set", ObjectState{Work: "w", Adopt: true, Unowned: orphanedAdopted}, ActionAdopt, true},
		{"namespaced, in an existing namespace: create", ObjectState{Work: "w", Namespaced: true, HasNamespace: true}, ActionApply, false},

		// What the member serves and where the object lives come before ownership.
		{"kind not served: wait", ObjectState{Work: "w", Unserved: true}, ActionWaitForKind, false},
		{"kind not served, even if a namespace is named and missing", ObjectState{Work: "w", Unserved: true, HasNamespace: true, NamespaceMissing: true}, ActionWaitForKind, false},
		{"namespaced kind without a namespace: refuse", ObjectState{Work: "w", Namespaced: true}, ActionRefuseNoNamespace, false},
		{"cluster-scoped kind with a namespace: refuse", ObjectState{Work: "w", HasNamespace: true}, ActionRefuseNamespace, false},
		{"cluster-scoped kind with a namespace, owned and in sync: still refused", ObjectState{Work: "w", HasNamespace: true, Owned: ours, InSync: true}, ActionRefuseNamespace, false},
		{"namespace missing: wait", ObjectState{Work: "w", Namespaced: true, HasNamespace: true, NamespaceMissing: true}, ActionWaitForNamespace, false},
		{"namespace missing, though an unowned object was seen: wait", ObjectState{Work: "w", Adopt: true, Namespaced: true, HasNamespace: true, NamespaceMissing: true, Unowned: foreign}, ActionWaitForNamespace, false},
		{"namespaced, another Work's", ObjectState{Work: "w", Namespaced: true, HasNamespace: true, Owned: theirs}, ActionConflictOtherWork, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, adopted := Decide(tt.st)
			if got != tt.want || adopted != tt.wantAdopted {
				t.Errorf("Decide = %v, adopted %v; want %v, adopted %v", got, adopted, tt.want, tt.wantAdopted)
			}
		})
	}
}

func TestClassifyApply(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	tests := []struct {
		name       string
		err        error
		namespaced bool
		want       ApplyOutcome
	}{
		{"answered", nil, true, ApplyDone},
		{"namespace gone under a namespaced object", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "a"), true, ApplyWaitForNamespace},
		{"not found for a cluster-scoped object: retry", apierrors.NewNotFound(gr, "a"), false, ApplyRetry},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "a", nil), true, ApplyRefused},
		{"bad request", apierrors.NewBadRequest("no"), false, ApplyRefused},
		{"forbidden", apierrors.NewForbidden(gr, "a", errors.New("no")), true, ApplyRefused},
		{"method not supported", apierrors.NewMethodNotSupported(gr, "patch"), false, ApplyRefused},
		{"timeout", apierrors.NewTimeoutError("slow", 1), true, ApplyRetry},
		{"conflict", apierrors.NewConflict(gr, "a", errors.New("changed")), true, ApplyRetry},
		{"no answer", errors.New("dial tcp: i/o timeout"), true, ApplyRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyApply(tt.err, tt.namespaced); got != tt.want {
				t.Errorf("ClassifyApply = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecidePrune(t *testing.T) {
	marks := func(work string, adopted bool, deleting bool) *metav1.ObjectMeta {
		m := &metav1.ObjectMeta{
			Labels:      map[string]string{fleetv1alpha1.ManagedByLabel: fleetv1alpha1.ManagedByValue},
			Annotations: map[string]string{fleetv1alpha1.WorkAnnotation: work},
		}
		if adopted {
			m.Labels[fleetv1alpha1.AdoptedLabel] = "true"
		}
		if deleting {
			now := metav1.Now()
			m.DeletionTimestamp = &now
		}
		return m
	}
	noLabel := marks("w", false, false)
	delete(noLabel.Labels, fleetv1alpha1.ManagedByLabel)

	tests := []struct {
		name     string
		st       PruneState
		want     PruneAction
		wantFrom string
	}{
		{"gone", PruneState{Work: "w"}, PruneForget, ""},
		{"another Work's now", PruneState{Work: "w", Live: marks("other", false, false)}, PruneForget, ""},
		{"Meridian's label removed by someone", PruneState{Work: "w", Live: noLabel}, PruneForget, ""},
		{"foreign object, delete policy", PruneState{Work: "w", Live: &metav1.ObjectMeta{}}, PruneForget, ""},
		{"being deleted", PruneState{Work: "w", Live: marks("w", false, true)}, PruneWait, ""},
		{"ours: delete", PruneState{Work: "w", Policy: fleetv1alpha1.DeletionPolicyDelete, Live: marks("w", false, false)}, PruneDelete, ""},
		{"ours, default policy: delete", PruneState{Work: "w", Live: marks("w", false, false)}, PruneDelete, ""},
		{"ours, orphan policy: orphan, remembering the Work", PruneState{Work: "w", Policy: fleetv1alpha1.DeletionPolicyOrphan, Live: marks("w", false, false)}, PruneOrphan, "w"},
		{"adopted: orphan, never delete, remembering nothing", PruneState{Work: "w", Policy: fleetv1alpha1.DeletionPolicyDelete, Live: marks("w", true, false)}, PruneOrphan, ""},
		{"adopted, orphan policy: remembering nothing", PruneState{Work: "w", Policy: fleetv1alpha1.DeletionPolicyOrphan, Live: marks("w", true, false)}, PruneOrphan, ""},
		{"adopted and being deleted: wait", PruneState{Work: "w", Live: marks("w", true, true)}, PruneWait, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, from := DecidePrune(tt.st)
			if got != tt.want || from != tt.wantFrom {
				t.Errorf("DecidePrune = %v, %q; want %v, %q", got, from, tt.want, tt.wantFrom)
			}
		})
	}
}
