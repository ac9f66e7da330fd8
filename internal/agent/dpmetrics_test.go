package agent

import (
	"testing"

	"github.com/meridian-io/meridian/internal/dataplane"
)

func TestDenialsCountPerPolicyAcrossRuleRewrites(t *testing.T) {
	c := newDenialCollector(nil)
	rule := func(handle, packets uint64, action dataplane.Action, stage, pod, name string) dataplane.RuleCounter {
		return dataplane.RuleCounter{Direction: "ingress", Stage: stage, Index: 0, Pod: pod, Name: name, Action: action,
			Packets: packets, Bytes: 60 * packets, Handle: handle}
	}
	const drop443 = "securityops/no-https/ingress/0"
	total := func(audit bool, policy, action string) uint64 {
		return c.totals[denialKey{audit: audit, policy: policy, direction: "ingress", action: action}].packets
	}
	c.add([]dataplane.RuleCounter{
		rule(10, 3, dataplane.Drop, "tiered", "shop/web-1", drop443),
		rule(11, 2, dataplane.Drop, "tiered", "shop/web-2", drop443+"/TCP-443"),
		rule(12, 9, dataplane.Allow, "tiered", "shop/web-1", "app/allow/ingress/1"),
		rule(13, 4, dataplane.Drop, "networkpolicy", "pay/db-1", "selected by a NetworkPolicy, no rule allows"),
		rule(14, 7, dataplane.Drop, "drop", "-", "drop"),
	}, dataplane.Enforce)
	if got := total(false, "securityops/no-https", "Drop"); got != 5 {
		t.Errorf("the policy's two pods' rules dropped 3 and 2 packets; its counter says %d", got)
	}
	if got := total(false, "networkpolicy/pay", "Drop"); got != 4 {
		t.Errorf("the NetworkPolicy isolation of namespace pay dropped 4 packets; its counter says %d", got)
	}
	if len(c.totals) != 2 {
		t.Errorf("allow rules and the verdict chains' own rules must not be counted per policy: %v", c.totals)
	}
	// web-1's chain is rewritten (new handle, from zero) and web-2's rule counts on.
	c.add([]dataplane.RuleCounter{
		rule(20, 1, dataplane.Drop, "tiered", "shop/web-1", drop443),
		rule(11, 6, dataplane.Drop, "tiered", "shop/web-2", drop443+"/TCP-443"),
	}, dataplane.Enforce)
	if got := total(false, "securityops/no-https", "Drop"); got != 10 {
		t.Errorf("after a rewrite the counter must add the new rule's 1 and the other rule's 4 more: got %d, want 10", got)
	}
	// Nothing new: nothing added.
	c.add([]dataplane.RuleCounter{rule(20, 1, dataplane.Drop, "tiered", "shop/web-1", drop443)}, dataplane.Enforce)
	if got := total(false, "securityops/no-https", "Drop"); got != 10 {
		t.Errorf("an unchanged rule added to the counter: %d", got)
	}
	// In Audit mode the same rules count what they would have denied.
	c.add([]dataplane.RuleCounter{rule(30, 2, dataplane.Reject, "baseline", "shop/web-1", "baseline/team-only/ingress/0")}, dataplane.Audit)
	if got := total(true, "baseline/team-only", "Reject"); got != 2 {
		t.Errorf("audit would-deny counter is %d, want 2", got)
	}
	if got := total(false, "baseline/team-only", "Reject"); got != 0 {
		t.Errorf("an audit-mode rule counted as denied: %d", got)
	}
}
