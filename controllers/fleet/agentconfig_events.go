package fleet

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/transition"
	"github.com/meridian-io/meridian/internal/conditions"
)

// Reasons of an AgentConfig's Events (besides the Stalled condition's reasons, which a Stalled
// Event carries, and AgentConfigConflict).
const (
	// WaveStartedEventReason: the rollout hands the revision to the clusters of a new wave.
	WaveStartedEventReason = "WaveStarted"
	// RolloutResumedEventReason: a paused rollout goes on with the wave it stopped at.
	RolloutResumedEventReason = "RolloutResumed"
)

// agentConfigEvents says which Events the change of an AgentConfig's status from before to after
// produces: one per transition a user acts on (a wave started or resumed, the rollout turning
// Complete, Paused or Stalled, a conflict with another AgentConfig found), none for a status
// that stays as it was.
func agentConfigEvents(before, after *fleetv1alpha1.AgentConfigStatus) []transition.Event {
	var out []transition.Event
	was, now := before.Rollout, after.Rollout
	if was == nil {
		was = &fleetv1alpha1.RolloutStatus{}
	}
	if now != nil && (now.Phase != was.Phase || now.Wave != was.Wave) {
		switch now.Phase {
		case fleetv1alpha1.RolloutProgressing:
			reason := WaveStartedEventReason
			if was.Phase == fleetv1alpha1.RolloutPaused && was.Wave == now.Wave {
				reason = RolloutResumedEventReason
			}
			out = append(out, transition.Event{Type: corev1.EventTypeNormal, Reason: reason, Message: fmt.Sprintf("Rolling out wave %d of %d (%s updated). %s", now.Wave, now.Waves, now.Summary, message(after, fleetv1alpha1.ProgressingCondition))})
		case fleetv1alpha1.RolloutComplete:
			if was.Phase != fleetv1alpha1.RolloutComplete {
				out = append(out, transition.Event{Type: corev1.EventTypeNormal, Reason: fleetv1alpha1.RolloutCompleteReason, Message: fmt.Sprintf("Rollout complete: %s updated. %s", now.Summary, message(after, fleetv1alpha1.ReadyCondition))})
			}
		case fleetv1alpha1.RolloutPaused:
			if was.Phase != fleetv1alpha1.RolloutPaused {
				out = append(out, transition.Event{Type: corev1.EventTypeNormal, Reason: fleetv1alpha1.RolloutPausedReason, Message: fmt.Sprintf("Rollout paused at wave %d of %d (%s updated): spec.rollout.paused holds it.", now.Wave, now.Waves, now.Summary)})
			}
		}
	}
	conflict := conflictFound(before, after)
	if conflict != "" {
		out = append(out, transition.Event{Type: corev1.EventTypeWarning, Reason: fleetv1alpha1.AgentConfigConflictReason, Message: conflict})
	}
	if s := conditions.TurnedTrue(before.Conditions, after.Conditions, fleetv1alpha1.StalledCondition); s != nil &&
		(conflict == "" || s.Reason != fleetv1alpha1.AgentConfigConflictReason) {
		out = append(out, transition.Event{Type: corev1.EventTypeWarning, Reason: s.Reason, Message: s.Message})
	}
	for i := range out {
		out[i].Message = strings.TrimSpace(out[i].Message)
	}
	return out
}

// conflictFound returns the Degraded condition's message, which names the other AgentConfigs,
// when it turned to say a conflict (either way: this one lost clusters to an older one, or a
// younger one competes for clusters this one holds), or says another one.
func conflictFound(before, after *fleetv1alpha1.AgentConfigStatus) string {
	c := meta.FindStatusCondition(after.Conditions, fleetv1alpha1.DegradedCondition)
	if c == nil || c.Reason != fleetv1alpha1.AgentConfigConflictReason {
		return ""
	}
	if old := meta.FindStatusCondition(before.Conditions, fleetv1alpha1.DegradedCondition); old != nil &&
		old.Reason == c.Reason && old.Status == c.Status && old.Message == c.Message {
		return ""
	}
	return c.Message
}

// message is the message of the status's condition t, if any.
func message(s *fleetv1alpha1.AgentConfigStatus, t string) string {
	if c := meta.FindStatusCondition(s.Conditions, t); c != nil {
		return c.Message
	}
	return ""
}
