// Package agentstatus aggregates, on the hub, what the node agents of every member report: their
// Leases (liveness) and NodeAgentInfos (version, config, health), and Antrea's AntreaAgentInfos
// where Antrea runs. It is a member-cache subscriber (Aggregator), a pure summary (Summarize) and
// a status writer that coalesces (Reporter): however many nodes change, a member's MemberCluster
// gets at most one agents status write per heartbeat interval.
package agentstatus

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// StaleAfter is how many heartbeat intervals without a Lease renewal make an agent stale.
const StaleAfter = 3

// DefaultInterval is the heartbeat interval assumed for a member whose agents hold no Lease yet.
const DefaultInterval = 10 * time.Second

// AntreaReportInterval is how often Antrea's agents and controller refresh their
// AntreaAgentInfo/AntreaControllerInfo (their heartbeat); StaleAfter of them without one make the
// report stale.
const AntreaReportInterval = time.Minute

// Agent is what the hub knows of one node's Meridian agent.
type Agent struct {
	// HasLease: the agent's Lease exists; RenewTime and Interval (its duration over
	// AgentLeaseDurationFactor) are read from it.
	HasLease  bool
	RenewTime time.Time
	Interval  time.Duration
	// HasReport: the node's NodeAgentInfo exists.
	HasReport                              bool
	Version, ConfigHash, RefusedConfigHash string
	ConfigValid                            metav1.ConditionStatus
	ConfigMessage                          string
	Healthy                                bool
}

// AntreaInfo is one AntreaAgentInfo or AntreaControllerInfo, reduced to what the summary needs.
type AntreaInfo struct {
	Version   string
	Healthy   bool
	Heartbeat time.Time
}

// Antrea is what Antrea reports in a member.
type Antrea struct {
	Agents map[string]AntreaInfo
	// Controller is nil when no AntreaControllerInfo exists.
	Controller *AntreaInfo
}

// Member is what the hub knows of one member's agents.
type Member struct {
	// Nodes are the member's node names: each should run an agent.
	Nodes []string
	// Agents by node name.
	Agents map[string]Agent
	// Antrea is nil when the member does not serve Antrea's info kinds.
	Antrea *Antrea
}

// Expected is the revision a member was handed: its agents are up to date when they run it.
type Expected struct {
	AgentConfig, Version, ConfigHash string
}

// Interval is the member's heartbeat interval: the shortest its agents' Leases say.
func Interval(m Member) time.Duration {
	var out time.Duration
	for _, a := range m.Agents {
		if a.HasLease && a.Interval > 0 && (out == 0 || a.Interval < out) {
			out = a.Interval
		}
	}
	if out == 0 {
		return DefaultInterval
	}
	return out
}

// Summarize counts the member's agents at now against the expected revision. next is when the
// summary changes by the clock alone (a fresh Lease turns stale), zero when nothing will. It
// returns nil when there is nothing to say: no revision handed, no agent and no Antrea.
func Summarize(m Member, exp Expected, now time.Time) (sum *fleetv1alpha1.AgentSummary, next time.Time) {
	if exp.AgentConfig == "" && len(m.Agents) == 0 && m.Antrea == nil {
		return nil, time.Time{}
	}
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	s := &fleetv1alpha1.AgentSummary{AgentConfig: exp.AgentConfig, Version: exp.Version, ConfigHash: exp.ConfigHash, Desired: int32(len(m.Nodes))}
	versions := map[string]int32{}
	var stale, refused, missing, unhealthy string
	for _, node := range slices.Sorted(slices.Values(m.Nodes)) {
		a, ok := m.Agents[node]
		if !ok || !a.HasLease {
			if missing == "" {
				missing = fmt.Sprintf("Node %s has no agent Lease: its agent has not started.", node)
			}
			ok = false
		}
		fresh := false
		if a.HasLease {
			staleAt := a.RenewTime.Add(StaleAfter * a.Interval)
			fresh = now.Before(staleAt)
			if fresh {
				soonest(staleAt)
			} else {
				s.Stale++
				if stale == "" {
					stale = fmt.Sprintf("The agent of node %s is stale: its Lease was last renewed %s ago, more than %d heartbeat intervals of %s.",
						node, now.Sub(a.RenewTime).Truncate(time.Second), StaleAfter, a.Interval)
				}
			}
		}
		if !a.HasReport {
			continue
		}
		versions[a.Version]++
		if a.ConfigValid == metav1.ConditionFalse && (exp.ConfigHash == "" || a.RefusedConfigHash == exp.ConfigHash) {
			s.ConfigInvalid++
			if refused == "" {
				refused = fmt.Sprintf("The agent of node %s refused its config: %s", node, a.ConfigMessage)
			}
		}
		if !fresh {
			continue
		}
		if a.Healthy {
			s.Ready++
		} else if unhealthy == "" {
			unhealthy = fmt.Sprintf("The agent of node %s reports itself not healthy.", node)
		}
		if exp.ConfigHash != "" && a.Version == exp.Version && a.ConfigHash == exp.ConfigHash {
			s.UpToDate++
		}
	}
	s.Versions = counts(versions)
	s.Message = cmp.Or(refused, stale, unhealthy, missing)
	s.Summary = fmt.Sprintf("%d/%d", s.Ready, s.Desired)
	if m.Antrea != nil {
		s.Antrea = summarizeAntrea(m.Antrea, now, soonest)
		s.Summary += fmt.Sprintf(" (antrea %d/%d)", s.Antrea.Ready, s.Antrea.Agents)
	}
	return s, next
}

func summarizeAntrea(a *Antrea, now time.Time, soonest func(time.Time)) *fleetv1alpha1.AntreaSummary {
	out := &fleetv1alpha1.AntreaSummary{Agents: int32(len(a.Agents))}
	fresh := func(i AntreaInfo) bool {
		staleAt := i.Heartbeat.Add(StaleAfter * AntreaReportInterval)
		if now.Before(staleAt) {
			soonest(staleAt)
			return true
		}
		return false
	}
	versions := map[string]int32{}
	for _, i := range a.Agents {
		versions[i.Version]++
		if i.Healthy && fresh(i) {
			out.Ready++
		}
	}
	out.Versions = counts(versions)
	if a.Controller != nil {
		out.ControllerVersion = a.Controller.Version
		out.ControllerReady = a.Controller.Healthy && fresh(*a.Controller)
	}
	return out
}

func counts(m map[string]int32) []fleetv1alpha1.AgentVersionCount {
	var out []fleetv1alpha1.AgentVersionCount
	for v, n := range m {
		out = append(out, fleetv1alpha1.AgentVersionCount{Version: v, Agents: n})
	}
	slices.SortFunc(out, func(a, b fleetv1alpha1.AgentVersionCount) int { return cmp.Compare(a.Version, b.Version) })
	return out
}
