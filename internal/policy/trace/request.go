// Package trace answers `kubectl meridian trace`: it gathers, from the hub and the members
// involved, what the reference evaluator (internal/policy) needs to decide one connection between
// two pods, evaluates it, and prints the verdict with the path through tiers, policies and rules
// that decided each side.
package trace

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// PodName names a pod of the fleet: <cluster>/<namespace>/<pod>.
type PodName struct {
	Cluster, Namespace, Name string
}

func (p PodName) String() string { return p.Cluster + "/" + p.Namespace + "/" + p.Name }

// ParsePod parses <cluster>/<namespace>/<pod>; flag names the flag in the error.
func ParsePod(flag, s string) (PodName, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return PodName{}, fmt.Errorf("--%s %q: write <cluster>/<namespace>/<pod>, for example member-1/shop/web-0", flag, s)
	}
	for i, what := range []string{"cluster", "namespace", "pod"} {
		if errs := validation.IsDNS1123Subdomain(parts[i]); len(errs) > 0 {
			return PodName{}, fmt.Errorf("--%s %q: %s %q is not a valid name: %s", flag, s, what, parts[i], strings.Join(errs, "; "))
		}
	}
	return PodName{Cluster: parts[0], Namespace: parts[1], Name: parts[2]}, nil
}

// Port is the connection's destination port and protocol.
type Port struct {
	Number   int32
	Protocol policyv1alpha1.Protocol
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Number, p.Protocol) }

// ParsePort parses <number>[/<protocol>]: a port 1-65535 and TCP (the default), UDP or SCTP.
func ParsePort(s string) (Port, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return Port{}, fmt.Errorf("--port %q: the port must be a number from 1 to 65535, optionally with /TCP, /UDP or /SCTP, for example 443/TCP", s)
	}
	p := Port{Number: int32(n), Protocol: policyv1alpha1.ProtocolTCP}
	if hasProto {
		switch policyv1alpha1.Protocol(strings.ToUpper(proto)) {
		case policyv1alpha1.ProtocolTCP, policyv1alpha1.ProtocolUDP, policyv1alpha1.ProtocolSCTP:
			p.Protocol = policyv1alpha1.Protocol(strings.ToUpper(proto))
		default:
			return Port{}, fmt.Errorf("--port %q: protocol %q is not one of TCP, UDP, SCTP", s, proto)
		}
	}
	return p, nil
}

// Request is one connection to trace.
type Request struct {
	From, To PodName
	Port     Port
}
