package policy_test

import (
	"fmt"
	"math/rand"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
	"github.com/meridian-io/meridian/internal/policy/policytest"
)

// The random fleets of the oracle: small vocabularies, so that selectors, blocks and ports hit.
var (
	genPorts  = []int32{53, 80, 443, 8080}
	genProtos = []policyv1alpha1.Protocol{"TCP", "TCP", "UDP", "SCTP"}
	genBlocks = []policyv1alpha1.IPBlock{
		{CIDR: "0.0.0.0/0"},
		{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}},
		{CIDR: "10.0.0.0/16", Except: []string{"10.0.0.8/29", "10.0.0.2/32"}},
		{CIDR: "10.2.0.0/24"},
		{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}},
		{CIDR: "198.51.100.0/24"},
	}
	genExternal = []string{"192.0.2.1", "192.0.2.200", "198.51.100.7", "203.0.113.9"}

	// oracleOptions: three members of 2–5 pods, up to 5 global policies (one in 25 longer than
	// the upstream ClusterNetworkPolicy's 25 rules), one in 3 placed on env=prod only.
	oracleOptions = policytest.Options{
		Members: 3, MinPods: 2, MaxPods: 5, MaxPolicies: 5,
		IP:        func(c, i int) string { return fmt.Sprintf("10.%d.0.%d", c, i+1) },
		Ports:     genPorts,
		Protocols: genProtos,
		Blocks:    genBlocks,

		NoMixedNetpolPeers: true,
		ProdPlacementOneIn: 3,
		LongPolicyOneIn:    25,
	}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.Intn(len(xs))] }

// genFleet builds a random fleet: three members, namespaces, pods with labels, IPs and named
// ports, namespace NetworkPolicies, and global policies over every action, tier, peer and port kind.
func genFleet(r *rand.Rand) policy.Fleet { return policytest.Fleet(r, oracleOptions) }

// genConnections picks connections between the fleet's pods and some outside addresses.
func genConnections(r *rand.Rand, f policy.Fleet, n int) []policy.Connection {
	var ends []policy.Endpoint
	for _, c := range f.Clusters {
		for _, p := range c.Pods {
			ends = append(ends, policy.Endpoint{Cluster: c.Name, Namespace: p.Namespace, Name: p.Name})
		}
	}
	out := make([]policy.Connection, 0, n)
	for range n {
		from, to := pick(r, ends), pick(r, ends)
		if r.Intn(8) == 0 {
			to = policy.Endpoint{IP: pick(r, genExternal)}
		} else if r.Intn(8) == 0 {
			from = policy.Endpoint{IP: pick(r, genExternal)}
		}
		port := pick(r, genPorts)
		if r.Intn(4) == 0 {
			port += int32(r.Intn(300))
		}
		out = append(out, policy.Connection{From: from, To: to, Protocol: pick(r, genProtos), Port: port})
	}
	return out
}
