// Package policy holds the reconcilers of policy.meridian.io: the default Tiers and the
// GlobalNetworkPolicy compiler. The logic is in internal/policy.
package policy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
)

// +kubebuilder:rbac:groups=policy.meridian.io,resources=tiers,verbs=get;list;watch;create

// DefaultTiers creates the default Tiers that are missing when the manager starts. It never
// updates one: a user's edit of a default tier stands, and a tier the user deleted stays deleted
// until the manager restarts.
type DefaultTiers struct {
	HubClient client.Client
}

// Start creates the missing tiers, retrying until it succeeds or the manager stops: the hub or
// the Tier webhook may not answer yet (the webhook is served by this very process, reached
// through its Service). It never gives up, and the manager stays unready (DefaultTiersReady) for
// as long as the tiers are missing; a failure is logged at most every maxRetryDelay.
func (d *DefaultTiers) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("default-tiers")
	delay := 200 * time.Millisecond
	for {
		err := d.ensure(ctx)
		if err == nil {
			return nil
		}
		if delay == maxRetryDelay {
			log.Info("Creating the default tiers failed; retrying (the manager stays unready until they exist)", "error", err.Error())
		} else {
			log.V(2).Info("Creating the default tiers, will retry", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// maxRetryDelay caps DefaultTiers' wait between attempts. (wait.Backoff's Cap would end the
// retries when reached, which is how the manager once gave up after about 13 s.)
const maxRetryDelay = 10 * time.Second

// NeedLeaderElection: only the leader writes.
func (d *DefaultTiers) NeedLeaderElection() bool { return true }

func (d *DefaultTiers) ensure(ctx context.Context) error {
	for _, t := range policyv1alpha1.DefaultTiers {
		tier := &policyv1alpha1.Tier{
			ObjectMeta: metav1.ObjectMeta{Name: t.Name},
			Spec:       policyv1alpha1.TierSpec{Priority: t.Priority, Description: t.Description},
		}
		if err := d.HubClient.Create(ctx, tier); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Tier %s: %w", t.Name, err)
		}
	}
	return nil
}

// DefaultTiersReady is a readiness check of the manager: not ready until every default Tier
// exists on the hub. The webhook refuses a policy that names a tier that does not exist, so until
// the leading manager has created them (DefaultTiers, at start), a policy naming a default tier
// would be refused: whoever applies policies after a fresh install waits for readiness, not for
// the tiers. It reads the hub, not this replica's own work, so a replica that does not lead is
// ready once the leader has created them. Once seen, it stays ready: a default tier the user
// deletes later is the user's choice (and the webhook's message names it).
func DefaultTiersReady(hub client.Reader) healthz.Checker {
	var seen atomic.Bool
	return func(req *http.Request) error {
		if seen.Load() {
			return nil
		}
		ctx := context.Background()
		if req != nil {
			ctx = req.Context()
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var list policyv1alpha1.TierList
		if err := hub.List(ctx, &list); err != nil {
			return fmt.Errorf("list the Tiers on the hub: %w", err)
		}
		have := map[string]bool{}
		for _, t := range list.Items {
			have[t.Name] = true
		}
		var missing []string
		for _, t := range policyv1alpha1.DefaultTiers {
			if !have[t.Name] {
				missing = append(missing, t.Name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("the default Tiers %s do not exist on the hub yet: the leading manager creates them when it starts", strings.Join(missing, ", "))
		}
		seen.Store(true)
		return nil
	}
}
