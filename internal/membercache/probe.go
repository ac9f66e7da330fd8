package membercache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Reasons a probe gives: the MemberCluster condition reasons.
const (
	ReasonPending           = fleetv1alpha1.ProbePendingReason
	ReasonSucceeded         = fleetv1alpha1.ProbeSucceededReason
	ReasonUnreachable       = fleetv1alpha1.MemberUnreachableReason
	ReasonUnauthorized      = fleetv1alpha1.UnauthorizedReason
	ReasonForbidden         = fleetv1alpha1.ForbiddenReason
	ReasonInvalidKubeconfig = fleetv1alpha1.InvalidKubeconfigReason
)

// nodePageSize bounds one page of the node listing, so a large member is read in pieces.
const nodePageSize = 500

// Health is what the last probe of a member found.
type Health struct {
	// Reachable is true when the member answered every request of the probe.
	Reachable bool
	// Reason is a CamelCase reason for the result; Message says it to a person.
	Reason  string
	Message string
	// KubernetesVersion is the gitVersion of the member's apiserver.
	KubernetesVersion string
	// NodesTotal and NodesReady count the member's Nodes.
	NodesTotal int32
	NodesReady int32
	// ProbeTime is when the probe ended; zero before the first probe.
	ProbeTime time.Time
	// Duration is how long the probe took.
	Duration time.Duration
}

// SameResult tells whether two Healths say the same, ignoring when and how fast they were taken.
func (h Health) SameResult(o Health) bool {
	h.ProbeTime, o.ProbeTime = time.Time{}, time.Time{}
	h.Duration, o.Duration = 0, 0
	return h == o
}

// Prober probes a member through a client whose requests are bounded by ctx.
type Prober func(ctx context.Context, c kubernetes.Interface) Health

func probe(ctx context.Context, c kubernetes.Interface) Health {
	start := time.Now()
	h := probeOnce(ctx, c)
	h.ProbeTime = time.Now()
	h.Duration = h.ProbeTime.Sub(start)
	return h
}

func probeOnce(ctx context.Context, c kubernetes.Interface) Health {
	body, err := c.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return failed("read the member's version", err)
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return Health{Reason: ReasonUnreachable, Message: fmt.Sprintf("The member's /version answer is not a version: %v.", err)}
	}
	h := Health{Reachable: true, Reason: ReasonSucceeded, Message: "The member answered the probe.", KubernetesVersion: info.GitVersion}
	opts := metav1.ListOptions{Limit: nodePageSize}
	for {
		nodes, err := c.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			f := failed("list the member's nodes", err)
			f.KubernetesVersion = info.GitVersion
			return f
		}
		for i := range nodes.Items {
			h.NodesTotal++
			if nodeReady(&nodes.Items[i]) {
				h.NodesReady++
			}
		}
		if nodes.Continue == "" {
			return h
		}
		opts.Continue = nodes.Continue
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func failed(what string, err error) Health {
	switch {
	case apierrors.IsUnauthorized(err):
		return Health{Reason: ReasonUnauthorized, Message: fmt.Sprintf("The member refused the kubeconfig's credentials when asked to %s: %v. Replace the credentials in the kubeconfig Secret.", what, err)}
	case apierrors.IsForbidden(err):
		return Health{Reason: ReasonForbidden, Message: fmt.Sprintf("The member forbids the kubeconfig's user to %s: %v. Grant it read access to nodes and /version.", what, err)}
	default:
		return Health{Reason: ReasonUnreachable, Message: fmt.Sprintf("The member did not answer when asked to %s: %v.", what, err)}
	}
}
