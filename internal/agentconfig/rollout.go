package agentconfig

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// ClusterState is what the hub knows of one selected cluster for the rollout.
type ClusterState struct {
	Name string
	// HasRevision: the cluster's Work carries the revision being rolled out.
	HasRevision bool
	// Since is when the cluster's Work got the revision.
	Since time.Time
	// Observed: the member's DaemonSet controller has seen the revision (observedGeneration is
	// the applied generation), so the counts below are about it.
	Observed bool
	// Desired, Updated and Ready count the cluster's agents: nodes that should run one, agents on
	// the revision, ready agents.
	Desired, Updated, Ready int32
	// Agents is the member's agents summary as the hub aggregated it for this revision (nil until
	// the summary is about it): the agents themselves, by their Leases and NodeAgentInfos.
	Agents *fleetv1alpha1.AgentSummary
	// Failed: an agent refused the revision's config (ConfigValid=False), Message says why.
	Failed  bool
	Message string
}

// Done says the cluster runs the revision on every node, all ready: the DaemonSet says so, and
// so do the agents themselves (each reports the revision's version and config hash, with a fresh
// Lease).
func (s ClusterState) Done() bool {
	return s.HasRevision && s.Observed && !s.Failed && s.Updated == s.Desired && s.Ready == s.Desired &&
		s.Agents != nil && s.Agents.UpToDate == s.Agents.Desired && s.Agents.Ready == s.Agents.Desired
}

// WithAgents adds the member's agents summary to the state when it is about the revision (the
// AgentConfig, version and config hash it counts against are the revision's). Agents that
// refused the revision's config fail the cluster.
func (s ClusterState) WithAgents(sum *fleetv1alpha1.AgentSummary, agentConfig, version, configHash string) ClusterState {
	if !s.HasRevision || sum == nil || sum.AgentConfig != agentConfig || sum.Version != version || sum.ConfigHash != configHash {
		return s
	}
	s.Agents = sum
	if sum.ConfigInvalid > 0 {
		s.Failed = true
		s.Message = fmt.Sprintf("%d of %d agents refused the config (ConfigValid=False) and keep their last good one. %s", sum.ConfigInvalid, sum.Desired, sum.Message)
	}
	return s
}

// Plan is the rollout's next step.
type Plan struct {
	// Waves are the clusters by wave.
	Waves [][]string
	// Wave is the wave being rolled out, counted from 1 as every message counts them ("wave 2
	// of 3"): len(Waves) when complete, 0 when there are no clusters.
	Wave int
	// Update are the clusters whose Work should carry the revision now.
	Update []string
	// Failed are the clusters that failed (an agent refused the config or the deadline passed),
	// with the reason for each.
	Failed map[string]string
	Phase  fleetv1alpha1.RolloutPhase
	// Reason and Message for the conditions.
	Reason, Message string
	// RequeueAfter is when the nearest progress deadline passes (0: none pending).
	RequeueAfter time.Duration
}

// Waves splits clusters (in the order given) into waves of size clusters, or of the given
// percentage of them, rounded up; at least one cluster a wave.
func Waves(clusters []string, size *intstr.IntOrString) ([][]string, error) {
	n := 1
	if size != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(size, len(clusters), true)
		if err != nil {
			return nil, fmt.Errorf("spec.rollout.waveSize: %w", err)
		}
		n = max(v, 1)
	}
	var out [][]string
	for i := 0; i < len(clusters); i += n {
		out = append(out, clusters[i:min(i+n, len(clusters))])
	}
	return out, nil
}

// PlanRollout decides which clusters get the revision now. A wave starts only when every cluster
// of the previous waves is done; a failed cluster, or one past its progress deadline, stops the
// rollout (failurePolicy Stop), and clusters not yet handed the revision keep what they run.
func PlanRollout(r fleetv1alpha1.AgentRollout, states []ClusterState, now time.Time) (Plan, error) {
	names := make([]string, len(states))
	byName := map[string]ClusterState{}
	for i, s := range states {
		names[i] = s.Name
		byName[s.Name] = s
	}
	waves, err := Waves(names, r.WaveSize)
	if err != nil {
		return Plan{}, err
	}
	deadline := time.Duration(r.ProgressDeadlineSeconds) * time.Second
	if deadline == 0 {
		deadline = 10 * time.Minute
	}
	p := Plan{Waves: waves, Failed: map[string]string{}}
	for w, wave := range waves {
		p.Wave = w + 1
		var pending, progressing []string
		for _, name := range wave {
			s := byName[name]
			switch {
			case !s.HasRevision:
				pending = append(pending, name)
			case s.Failed:
				p.Failed[name] = s.Message
			case s.Done():
			case now.Sub(s.Since) >= deadline:
				p.Failed[name] = fmt.Sprintf("%d/%d agents updated and %d ready after the progress deadline of %s", s.Updated, s.Desired, s.Ready, deadline)
				if s.Agents != nil {
					p.Failed[name] += fmt.Sprintf(" (the agents themselves: %d/%d up to date, %d ready, %d stale)", s.Agents.UpToDate, s.Agents.Desired, s.Agents.Ready, s.Agents.Stale)
				}
			default:
				progressing = append(progressing, name)
				left := s.Since.Add(deadline).Sub(now)
				if p.RequeueAfter == 0 || left < p.RequeueAfter {
					p.RequeueAfter = left
				}
			}
		}
		if len(p.Failed) > 0 && r.FailurePolicy != fleetv1alpha1.RolloutContinue {
			p.Phase, p.Reason, p.Message = fleetv1alpha1.RolloutStalled, failReason(p.Failed, byName), failMessage(p.Failed, p.Wave, len(waves))
			p.RequeueAfter = 0
			return p, nil
		}
		if len(pending) > 0 {
			if r.Paused {
				p.Phase, p.Reason = fleetv1alpha1.RolloutPaused, fleetv1alpha1.RolloutPausedReason
				p.Message = fmt.Sprintf("The rollout is paused at wave %d of %d; clusters %s keep their previous agents.", p.Wave, len(waves), strings.Join(pending, ", "))
				return p, nil
			}
			p.Update = pending
		}
		if len(pending) > 0 || len(progressing) > 0 {
			p.Phase, p.Reason = fleetv1alpha1.RolloutProgressing, fleetv1alpha1.RolloutProgressingReason
			p.Message = fmt.Sprintf("Rolling out wave %d of %d: clusters %s.", p.Wave, len(waves), strings.Join(wave, ", "))
			return p, nil
		}
	}
	p.Wave = len(waves)
	p.Phase, p.Reason = fleetv1alpha1.RolloutComplete, fleetv1alpha1.RolloutCompleteReason
	p.Message = fmt.Sprintf("Every one of the %d clusters runs the wanted agents, all ready.", len(states))
	if len(p.Failed) > 0 {
		p.Message = fmt.Sprintf("The rollout went through every wave (failurePolicy Continue); %s.", failMessage(p.Failed, 0, 0))
	}
	return p, nil
}

func failReason(failed map[string]string, states map[string]ClusterState) string {
	for name := range failed {
		if states[name].Failed {
			return fleetv1alpha1.ConfigInvalidReason
		}
	}
	return fleetv1alpha1.ProgressDeadlineExceededReason
}

// failMessage lists the failed clusters; with a wave (from 1) it says the rollout stopped there.
func failMessage(failed map[string]string, wave, waves int) string {
	var parts []string
	for _, name := range sortedKeys(failed) {
		parts = append(parts, fmt.Sprintf("cluster %s failed: %s", name, failed[name]))
	}
	msg := strings.Join(parts, "; ")
	if wave > 0 {
		msg = fmt.Sprintf("The rollout stopped at wave %d of %d: %s. Later clusters keep their previous agents; fix the config (or set failurePolicy Continue) to go on.", wave, waves, msg)
	}
	return msg
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
