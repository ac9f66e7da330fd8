package work

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
