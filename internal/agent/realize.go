package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
)

// Realization folds the agents' reports into each MemberNetworkPolicy's status: how many nodes
// enforce its current generation (realized) out of the nodes whose agent is alive (desired: its
// Lease is current). Every agent lists every policy it has put in force (not only those that
// select its own pods), so a node enforces a policy when its NodeAgentInfo lists the policy at
// the policy's generation. A generation that changed nothing in the kernel is still reported by
// the agent, so it is realized like any other. The existing conditions are kept where they do
// not change, so that an unchanged status compares equal and is not written.
func Realization(policies []memberv1alpha1.MemberNetworkPolicy, infos []memberv1alpha1.NodeAgentInfo, leases []coordinationv1.Lease, now time.Time) map[string]memberv1alpha1.MemberNetworkPolicyStatus {
	var alive []string
	for _, l := range leases {
		node, ok := strings.CutPrefix(l.Name, memberv1alpha1.AgentLeasePrefix)
		if !ok || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		if now.Before(l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)) {
			alive = append(alive, node)
		}
	}
	sort.Strings(alive)
	inForce := map[string]map[string]int64{} // node -> policy -> generation
	for _, info := range infos {
		m := map[string]int64{}
		for _, p := range info.Policies {
			m[p.Name] = p.Generation
		}
		inForce[info.Name] = m
	}
	out := map[string]memberv1alpha1.MemberNetworkPolicyStatus{}
	for i := range policies {
		p := &policies[i]
		st := memberv1alpha1.MemberNetworkPolicyStatus{ObservedGeneration: p.Generation, NodesDesired: int32(len(alive))}
		st.Conditions = append([]metav1.Condition(nil), p.Status.Conditions...)
		var waiting []string
		for _, node := range alive {
			if g, ok := inForce[node][p.Name]; ok && g == p.Generation {
				st.NodesRealized++
			} else {
				waiting = append(waiting, node)
			}
		}
		c := metav1.Condition{Type: memberv1alpha1.PolicyReadyCondition, ObservedGeneration: p.Generation}
		switch {
		case len(alive) == 0:
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, memberv1alpha1.PolicyNoAgentsReason, "No node runs a live Meridian agent: nothing enforces this policy."
		case len(waiting) == 0:
			c.Status, c.Reason, c.Message = metav1.ConditionTrue, memberv1alpha1.PolicyRealizedReason, fmt.Sprintf("Every node running the agent (%d) enforces generation %d.", len(alive), p.Generation)
		default:
			names := waiting
			if len(names) > 5 {
				names = append(names[:5:5], fmt.Sprintf("%d more", len(waiting)-5))
			}
			c.Status, c.Reason = metav1.ConditionFalse, memberv1alpha1.PolicyRealizingReason
			c.Message = fmt.Sprintf("%d of %d nodes enforce generation %d; waiting for %s.", st.NodesRealized, len(alive), p.Generation, strings.Join(names, ", "))
		}
		meta.SetStatusCondition(&st.Conditions, c)
		out[p.Name] = st
	}
	return out
}

// RealizationOptions tune the realization writer; zero values take the defaults.
type RealizationOptions struct {
	// Interval is the shortest time between two passes, each writing a policy's status at most
	// once: at most one status write per policy per interval, whatever the number of nodes.
	// Default 1s.
	Interval time.Duration
	// Recheck is how often a pass runs without a change, to see Leases expire; default 10s.
	Recheck time.Duration
	// LeaseDuration of the election Lease; default 15s (renewed every 2s, given up after 10s).
	LeaseDuration time.Duration
}

// RunRealization runs one agent's realization writer until ctx ends: it stands for election and,
// while it holds the Lease, writes the policies' status. The agent runs it beside its dataplane;
// tests run several to stand for many nodes' agents.
func RunRealization(ctx context.Context, cfg *rest.Config, node, namespace string, opts RealizationOptions, log logr.Logger) {
	(&realizer{cfg: cfg, node: node, namespace: namespace, opts: opts, log: log}).run(ctx)
}

// realizer writes every MemberNetworkPolicy's status while its agent holds the election Lease
// (memberv1alpha1.RealizationLeaseName): one writer per member, so the writes are bounded per
// policy, not per node × policy.
type realizer struct {
	cfg       *rest.Config
	node      string
	namespace string
	opts      RealizationOptions
	log       logr.Logger
	writes    func() // counts a status write (metrics)
}

func (r *realizer) run(ctx context.Context) {
	if r.opts.Interval == 0 {
		r.opts.Interval = time.Second
	}
	if r.opts.Recheck == 0 {
		r.opts.Recheck = 10 * time.Second
	}
	if r.opts.LeaseDuration == 0 {
		r.opts.LeaseDuration = 15 * time.Second
	}
	cfg := rest.CopyConfig(r.cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgent
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		r.log.Error(err, "Realization writer: no client")
		return
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: r.namespace, Name: memberv1alpha1.RealizationLeaseName},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: r.node},
	}
	renew := r.opts.LeaseDuration * 2 / 3
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: "realization", ReleaseOnCancel: true,
			LeaseDuration: r.opts.LeaseDuration, RenewDeadline: renew, RetryPeriod: max(renew/5, 100*time.Millisecond),
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					r.log.Info("Writing the policies' realization: this node's agent holds the election Lease")
					if err := r.lead(ctx, cfg); err != nil && ctx.Err() == nil {
						r.log.Error(err, "Realization writer stopped")
					}
				},
				OnStoppedLeading: func() { r.log.V(2).Info("Not writing the policies' realization") },
			},
		})
		if err != nil {
			r.log.Error(err, "Realization writer: leader election")
			return
		}
		le.Run(ctx) // returns when the lease is lost or ctx ends; then stand again
	}
}

// lead runs passes until ctx ends: after a change (or every Recheck), never two within Interval.
func (r *realizer) lead(ctx context.Context, cfg *rest.Config) error {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{coordinationv1.AddToScheme, memberv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	c, err := cache.New(cfg, cache.Options{
		Scheme:           scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{r.namespace: {}}}},
	})
	if err != nil {
		return err
	}
	writer, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = c.Start(ctx) }()
	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	h := toolscache.ResourceEventHandlerFuncs{AddFunc: func(any) { trigger() }, UpdateFunc: func(any, any) { trigger() }, DeleteFunc: func(any) { trigger() }}
	for _, obj := range []client.Object{&memberv1alpha1.MemberNetworkPolicy{}, &memberv1alpha1.NodeAgentInfo{}, &coordinationv1.Lease{}} {
		inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	if !c.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	recheck := time.NewTicker(r.opts.Recheck)
	defer recheck.Stop()
	var last time.Time
	for {
		if err := r.pass(ctx, c, writer); err != nil {
			r.log.Error(err, "Writing the policies' realization failed; retrying")
		}
		last = time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-recheck.C:
		}
		// The bound: a pass writes each policy at most once, and passes are Interval apart.
		if wait := r.opts.Interval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		select { // changes during the wait are in this pass
		case <-kick:
		default:
		}
	}
}

func (r *realizer) pass(ctx context.Context, c cache.Cache, writer client.Client) error {
	var policies memberv1alpha1.MemberNetworkPolicyList
	var infos memberv1alpha1.NodeAgentInfoList
	var leases coordinationv1.LeaseList
	if err := c.List(ctx, &policies); err != nil {
		return err
	}
	if err := c.List(ctx, &infos); err != nil {
		return err
	}
	if err := c.List(ctx, &leases, client.InNamespace(r.namespace)); err != nil {
		return err
	}
	var errs []string
	for name, st := range Realization(policies.Items, infos.Items, leases.Items, time.Now()) {
		var cur *memberv1alpha1.MemberNetworkPolicy
		for i := range policies.Items {
			if policies.Items[i].Name == name {
				cur = &policies.Items[i]
			}
		}
		if equality.Semantic.DeepEqual(cur.Status, st) {
			continue
		}
		next := cur.DeepCopy()
		next.Status = st
		if err := writer.Status().Patch(ctx, next, client.MergeFrom(cur)); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Sprintf("MemberNetworkPolicy %s: %v", name, err))
			continue
		}
		if r.writes != nil {
			r.writes()
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("status writes failed: %s", strings.Join(errs, "; "))
	}
	return nil
}
