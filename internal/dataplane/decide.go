package dataplane

import "net/netip"

// Verdict is the outcome for a new connection.
type Verdict string

const (
	VerdictAllow  Verdict = "Allow"
	VerdictDrop   Verdict = "Drop"
	VerdictReject Verdict = "Reject"
)

// Decision is a verdict and the stage and rule that gave it, as a reference for what the
// table does (tests compare real packets with it; trace prints it).
type Decision struct {
	Verdict Verdict
	// Stage is "tiered", "networkpolicy", "baseline" or "default".
	Stage string
	// Index is the rule's index within its stage; -1 for the NetworkPolicy default deny and for
	// the default allow.
	Index int
	Name  string
}

// Connection is a new connection as the policy sees it.
type Connection struct {
	Src, Dst netip.Addr
	Protocol Protocol
	Port     uint16
}

// Pod returns the model's pod with this IP.
func (m *Model) Pod(ip netip.Addr) (*Pod, bool) {
	for i := range m.Pods {
		if m.Pods[i].IP == ip {
			return &m.Pods[i], true
		}
	}
	return nil, false
}

// Egress decides the egress side of c on the source's node: the source must be a pod of m,
// otherwise the node does not decide the egress side and the answer is Allow.
func (m *Model) Egress(c Connection) Decision {
	p, ok := m.Pod(c.Src)
	if !ok {
		return Decision{Verdict: VerdictAllow, Stage: "default", Index: -1}
	}
	return p.Egress.Decide(c.Dst, c.Protocol, c.Port)
}

// Ingress decides the ingress side of c on the destination's node.
func (m *Model) Ingress(c Connection) Decision {
	p, ok := m.Pod(c.Dst)
	if !ok {
		return Decision{Verdict: VerdictAllow, Stage: "default", Index: -1}
	}
	return p.Ingress.Decide(c.Src, c.Protocol, c.Port)
}

// Decide is the reference evaluation of docs/policy.md for one side of a connection: tiered
// rules in order, first match decides, Pass goes to the NetworkPolicy stage; a selected pod
// allows only what its NetworkPolicies allow; an unselected one goes on to the baseline rules;
// nothing matched allows.
func (d Direction) Decide(peer netip.Addr, proto Protocol, port uint16) Decision {
	for i, r := range d.Tiered {
		if !r.Matches(peer, proto, port) {
			continue
		}
		if r.Action == Pass {
			break
		}
		return Decision{Verdict: actionVerdict(r.Action), Stage: "tiered", Index: i, Name: r.Name}
	}
	if d.NetworkPolicy.Selected {
		for i, r := range d.NetworkPolicy.Allow {
			if peersMatch(r.Peers, peer) && portsMatch(r.Ports, proto, port) {
				return Decision{Verdict: VerdictAllow, Stage: "networkpolicy", Index: i, Name: r.Name}
			}
		}
		return Decision{Verdict: VerdictDrop, Stage: "networkpolicy", Index: -1}
	}
	for i, r := range d.Baseline {
		if r.Matches(peer, proto, port) {
			return Decision{Verdict: actionVerdict(r.Action), Stage: "baseline", Index: i, Name: r.Name}
		}
	}
	return Decision{Verdict: VerdictAllow, Stage: "default", Index: -1}
}

func actionVerdict(a Action) Verdict {
	switch a {
	case Drop:
		return VerdictDrop
	case Reject:
		return VerdictReject
	}
	return VerdictAllow
}

// Decide combines the two sides of a connection: src's node model decides egress, dst's node
// model decides ingress (they are the same model for pods on one node). The egress side is
// consulted first: a packet it stops never reaches the destination's node.
func Decide(srcNode, dstNode *Model, c Connection) Verdict {
	if v := srcNode.Egress(c).Verdict; v != VerdictAllow {
		return v
	}
	return dstNode.Ingress(c).Verdict
}
