package fleet

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers/internal/transition"
)

func TestAgentConfigEventsRecordTransitionsOnly(t *testing.T) {
	type cond = metav1.Condition
	status := func(phase fleetv1alpha1.RolloutPhase, wave int32, conds ...cond) *fleetv1alpha1.AgentConfigStatus {
		s := &fleetv1alpha1.AgentConfigStatus{Conditions: conds}
		if phase != "" {
			s.Rollout = &fleetv1alpha1.RolloutStatus{Phase: phase, Wave: wave, Waves: 3, Summary: "1/3 clusters"}
		}
		return s
	}
	progressing := cond{Type: fleetv1alpha1.ProgressingCondition, Status: metav1.ConditionTrue, Reason: "RolloutProgressing", Message: "Waiting for wave 2."}
	ready := cond{Type: fleetv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "RolloutComplete", Message: "All clusters run the agents."}
	stalled := func(reason string) cond {
		return cond{Type: fleetv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: reason, Message: "stalled: " + reason}
	}
	conflict := func(status metav1.ConditionStatus, msg string) cond {
		return cond{Type: fleetv1alpha1.DegradedCondition, Status: status, Reason: fleetv1alpha1.AgentConfigConflictReason, Message: msg}
	}
	healthy := cond{Type: fleetv1alpha1.DegradedCondition, Status: metav1.ConditionFalse, Reason: fleetv1alpha1.HealthyReason}
	for _, tc := range []struct {
		name          string
		before, after *fleetv1alpha1.AgentConfigStatus
		want          []transition.Event
	}{{
		name:   "first wave of a new AgentConfig",
		before: status("", 0),
		after:  status(fleetv1alpha1.RolloutProgressing, 1, progressing),
		want:   []transition.Event{{Type: "Normal", Reason: "WaveStarted", Message: "Rolling out wave 1 of 3 (1/3 clusters updated). Waiting for wave 2."}},
	}, {
		name:   "next wave",
		before: status(fleetv1alpha1.RolloutProgressing, 1, progressing),
		after:  status(fleetv1alpha1.RolloutProgressing, 2),
		want:   []transition.Event{{Type: "Normal", Reason: "WaveStarted", Message: "Rolling out wave 2 of 3 (1/3 clusters updated)."}},
	}, {
		name:   "the same wave again records nothing",
		before: status(fleetv1alpha1.RolloutProgressing, 2, progressing, healthy),
		after:  status(fleetv1alpha1.RolloutProgressing, 2, progressing, healthy),
	}, {
		name:   "a new revision after a complete rollout starts wave 1 again",
		before: status(fleetv1alpha1.RolloutComplete, 3, ready),
		after:  status(fleetv1alpha1.RolloutProgressing, 1),
		want:   []transition.Event{{Type: "Normal", Reason: "WaveStarted", Message: "Rolling out wave 1 of 3 (1/3 clusters updated)."}},
	}, {
		name:   "complete",
		before: status(fleetv1alpha1.RolloutProgressing, 3),
		after:  status(fleetv1alpha1.RolloutComplete, 3, ready),
		want:   []transition.Event{{Type: "Normal", Reason: "RolloutComplete", Message: "Rollout complete: 1/3 clusters updated. All clusters run the agents."}},
	}, {
		name:   "complete stays complete",
		before: status(fleetv1alpha1.RolloutComplete, 3, ready),
		after:  status(fleetv1alpha1.RolloutComplete, 3, ready),
	}, {
		name:   "paused, then resumed",
		before: status(fleetv1alpha1.RolloutProgressing, 2),
		after:  status(fleetv1alpha1.RolloutPaused, 2),
		want:   []transition.Event{{Type: "Normal", Reason: "RolloutPaused", Message: "Rollout paused at wave 2 of 3 (1/3 clusters updated): spec.rollout.paused holds it."}},
	}, {
		name:   "resumed",
		before: status(fleetv1alpha1.RolloutPaused, 2),
		after:  status(fleetv1alpha1.RolloutProgressing, 2),
		want:   []transition.Event{{Type: "Normal", Reason: "RolloutResumed", Message: "Rolling out wave 2 of 3 (1/3 clusters updated)."}},
	}, {
		name:   "stalled, with the reason",
		before: status(fleetv1alpha1.RolloutProgressing, 2),
		after:  status(fleetv1alpha1.RolloutStalled, 2, stalled("ProgressDeadlineExceeded")),
		want:   []transition.Event{{Type: "Warning", Reason: "ProgressDeadlineExceeded", Message: "stalled: ProgressDeadlineExceeded"}},
	}, {
		name:   "still stalled records nothing",
		before: status(fleetv1alpha1.RolloutStalled, 2, stalled("ProgressDeadlineExceeded")),
		after:  status(fleetv1alpha1.RolloutStalled, 2, stalled("ProgressDeadlineExceeded")),
	}, {
		name:   "a younger AgentConfig competes: one conflict Event naming it",
		before: status(fleetv1alpha1.RolloutComplete, 3, ready, healthy),
		after:  status(fleetv1alpha1.RolloutComplete, 3, ready, conflict(metav1.ConditionFalse, "A younger AgentConfig also selects clusters this one holds: agents-b (member-1).")),
		want:   []transition.Event{{Type: "Warning", Reason: "AgentConfigConflict", Message: "A younger AgentConfig also selects clusters this one holds: agents-b (member-1)."}},
	}, {
		name:   "lost every cluster to an older one: the conflict once, not also as Stalled",
		before: status("", 0),
		after:  status(fleetv1alpha1.RolloutStalled, 0, stalled(fleetv1alpha1.AgentConfigConflictReason), conflict(metav1.ConditionTrue, "held by an older one: agents-a (member-1)")),
		want:   []transition.Event{{Type: "Warning", Reason: "AgentConfigConflict", Message: "held by an older one: agents-a (member-1)"}},
	}, {
		name:   "the same conflict again records nothing",
		before: status(fleetv1alpha1.RolloutComplete, 3, conflict(metav1.ConditionFalse, "agents-b")),
		after:  status(fleetv1alpha1.RolloutComplete, 3, conflict(metav1.ConditionFalse, "agents-b")),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := agentConfigEvents(tc.before, tc.after); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("agentConfigEvents:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
