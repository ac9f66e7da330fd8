package agent

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
	"github.com/meridian-io/meridian/internal/agent/enforce"
	"github.com/meridian-io/meridian/internal/dataplane"
)

// DataplaneOptions turn on the dataplane: the agent watches the member's MemberNetworkPolicies,
// NetworkPolicies, Pods and Namespaces and keeps the node's nftables table in step with them.
type DataplaneOptions struct {
	// RESTConfig reaches the member for the informers (the agent's own credentials).
	RESTConfig *rest.Config
	// Table is the nftables table; default "meridian".
	Table string
	// NetNSFd, when not zero, is the network namespace to program (tests run one agent per
	// namespace); zero: the agent's own, the host's in the DaemonSet.
	NetNSFd int
	// Debounce is how long the agent waits after a change for more before it programs; default
	// 100ms.
	Debounce time.Duration
	// Realization tunes the writer of the policies' status (the agents elect one per member).
	Realization RealizationOptions
}

// dpState is the dataplane's state as the Run loop reports it.
type dpState struct {
	cond     metav1.Condition
	status   *memberv1alpha1.DataplaneStatus
	policies []memberv1alpha1.RealizedPolicy
}

// enforcer runs the informers and the Programmer in its own goroutine; the Run loop hands it
// config changes and reads its state.
type enforcer struct {
	opts DataplaneOptions
	node string
	log  logr.Logger

	kick chan struct{} // an object changed, or the config did

	mu      sync.Mutex
	cfg     dataplane.Options // the table options the config asks for
	state   dpState
	prog    *dataplane.Programmer // the table's, once built; read by the metrics and CountersPath
	changed chan struct{}         // the state changed: the Run loop rewrites NodeAgentInfo

	metrics *dataplaneMetrics
}

func newEnforcer(opts DataplaneOptions, node string, log logr.Logger, cfg agentfile.Config) (*enforcer, error) {
	if opts.RESTConfig == nil {
		return nil, fmt.Errorf("dataplane: no REST config for the member's informers")
	}
	if opts.Debounce == 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	e := &enforcer{opts: opts, node: node, log: log.WithName("dataplane"), kick: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	e.metrics = newDataplaneMetrics(e.programmer)
	e.cfg = e.tableOptions(cfg)
	e.state.cond = metav1.Condition{Type: memberv1alpha1.DataplaneReadyCondition, Status: metav1.ConditionFalse,
		Reason:  memberv1alpha1.DataplaneStartingReason,
		Message: "Waiting for the member's MemberNetworkPolicies, NetworkPolicies, Pods and Namespaces to sync; the whole table is then built in one transaction."}
	return e, nil
}

// tableOptions maps the agent's config to the table's: enforcement mode and drop logging.
func (e *enforcer) tableOptions(cfg agentfile.Config) dataplane.Options {
	o := dataplane.Options{Table: e.opts.Table, NetNSFd: e.opts.NetNSFd, Mode: dataplane.Enforce}
	if cfg.EnforcementMode == string(dataplane.Audit) {
		o.Mode = dataplane.Audit
	}
	o.LogDrops = cfg.DropLogging.Enabled
	o.LogRate = uint32(cfg.DropLogging.RatePerSecond)
	return o
}

// setConfig hands the enforcer a new config; it reprograms if the table's options changed.
func (e *enforcer) setConfig(cfg agentfile.Config) {
	o := e.tableOptions(cfg)
	e.mu.Lock()
	same := o == e.cfg
	e.cfg = o
	e.mu.Unlock()
	if !same {
		e.trigger()
	}
}

// programmer returns the Programmer of the table; nil before the table is built.
func (e *enforcer) programmer() *dataplane.Programmer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.prog
}

func (e *enforcer) setProgrammer(p *dataplane.Programmer) {
	e.mu.Lock()
	e.prog = p
	e.mu.Unlock()
}

func (e *enforcer) trigger() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *enforcer) snapshot() dpState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

func (e *enforcer) setState(s dpState) {
	e.mu.Lock()
	e.state = s
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func dataplaneScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme, memberv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// slimPod keeps what policy needs of a pod: every pod of the member is cached, so keep it small.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Labels: p.Labels, ResourceVersion: p.ResourceVersion}}
	out.Spec.NodeName, out.Spec.HostNetwork = p.Spec.NodeName, p.Spec.HostNetwork
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
	}
	out.Status.Phase, out.Status.PodIP = p.Status.Phase, p.Status.PodIP
	return out, nil
}

// run watches, and programs after every burst of changes, until ctx ends. The table stays in
// force when it returns (a restarted agent takes it over).
func (e *enforcer) run(ctx context.Context) {
	scheme, err := dataplaneScheme()
	if err != nil {
		e.fail(fmt.Errorf("scheme: %w", err))
		return
	}
	c, err := cache.New(e.opts.RESTConfig, cache.Options{
		Scheme:           scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: slimPod}},
	})
	if err != nil {
		e.fail(fmt.Errorf("informers: %w", err))
		return
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			e.fail(fmt.Errorf("informers stopped: %w", err))
		}
	}()
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { e.trigger() },
		UpdateFunc: func(any, any) { e.trigger() },
		DeleteFunc: func(any) { e.trigger() },
	}
	for _, obj := range []client.Object{&memberv1alpha1.MemberNetworkPolicy{}, &networkingv1.NetworkPolicy{}, &corev1.Pod{}, &corev1.Namespace{}} {
		inf, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			e.fail(fmt.Errorf("informer for %T: %w", obj, err))
			return
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			e.fail(fmt.Errorf("event handler for %T: %w", obj, err))
			return
		}
	}
	if !c.WaitForCacheSync(ctx) {
		return
	}
	e.log.Info("Informers synced; building the table")

	var prog *dataplane.Programmer
	var progOpts dataplane.Options
	defer func() {
		if prog != nil {
			e.setProgrammer(nil)
			_ = prog.Close()
		}
	}()
	var generation int64
	retry := time.Duration(0)
	timer := time.NewTimer(0) // the first build does not wait
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
			if retry == 0 {
				timer.Reset(e.opts.Debounce)
			}
			continue
		case <-timer.C:
		}
		e.mu.Lock()
		want := e.cfg
		e.mu.Unlock()
		in, err := e.list(ctx, c)
		if err == nil {
			res := enforce.Compile(in)
			if prog == nil || want != progOpts {
				// A new mode or drop logging renders a different table: Start takes the
				// existing table over in one transaction.
				if prog != nil {
					e.setProgrammer(nil)
					_ = prog.Close()
					prog = nil
				}
				var p *dataplane.Programmer
				if p, err = dataplane.New(want); err == nil {
					start := time.Now()
					st, serr := p.Start(&res.Model)
					e.metrics.observe(st, time.Since(start), serr)
					if err = serr; err == nil {
						prog, progOpts = p, want
						e.setProgrammer(p)
						generation++
					} else {
						_ = p.Close()
					}
				}
			} else {
				start := time.Now()
				var st dataplane.Stats
				st, err = prog.Apply(&res.Model)
				e.metrics.observe(st, time.Since(start), err)
				if err == nil && st.Messages > 0 {
					generation++
				}
			}
			if err == nil {
				retry = 0
				e.programmed(in, res, want, generation)
				continue
			}
		}
		e.fail(err)
		retry = min(max(2*retry, 500*time.Millisecond), 30*time.Second)
		timer.Reset(retry)
	}
}

func (e *enforcer) list(ctx context.Context, c cache.Cache) (enforce.Input, error) {
	in := enforce.Input{Node: e.node}
	var mnps memberv1alpha1.MemberNetworkPolicyList
	var nps networkingv1.NetworkPolicyList
	var pods corev1.PodList
	var nss corev1.NamespaceList
	for _, l := range []client.ObjectList{&mnps, &nps, &pods, &nss} {
		if err := c.List(ctx, l); err != nil {
			return in, fmt.Errorf("list %T: %w", l, err)
		}
	}
	in.Policies, in.NetworkPolicies, in.Pods, in.Namespaces = mnps.Items, nps.Items, pods.Items, nss.Items
	return in, nil
}

func (e *enforcer) programmed(in enforce.Input, res enforce.Result, o dataplane.Options, generation int64) {
	gens := map[string]int64{}
	for _, p := range in.Policies {
		gens[p.Name] = p.Generation
	}
	var policies []memberv1alpha1.RealizedPolicy
	for _, name := range res.Policies {
		policies = append(policies, memberv1alpha1.RealizedPolicy{Name: name, Generation: gens[name]})
	}
	sort.Slice(policies, func(i, j int) bool { return policies[i].Name < policies[j].Name })
	errs := res.Errors
	if len(errs) > 100 {
		errs = append(errs[:99:99], fmt.Sprintf("and %d more", len(res.Errors)-99))
	}
	msg := fmt.Sprintf("The table enforces %d policies with %d rules on %d pods, mode %s.", len(res.Policies), res.Rules, len(res.Model.Pods), o.Mode)
	if len(errs) > 0 {
		msg += fmt.Sprintf(" %d objects could not be compiled and are not enforced: see dataplane.errors.", len(res.Errors))
		e.log.Info("Objects left out of the table", "errors", res.Errors)
	}
	e.log.V(2).Info("Programmed the table", "generation", generation, "rules", res.Rules, "pods", len(res.Model.Pods))
	e.metrics.policyRules.Set(float64(res.Rules))
	e.metrics.pods.Set(float64(len(res.Model.Pods)))
	e.setState(dpState{
		cond: metav1.Condition{Type: memberv1alpha1.DataplaneReadyCondition, Status: metav1.ConditionTrue,
			Reason: memberv1alpha1.DataplaneProgrammedReason, Message: msg},
		status:   &memberv1alpha1.DataplaneStatus{Generation: generation, Pods: int32(len(res.Model.Pods)), Rules: int32(res.Rules), Errors: errs},
		policies: policies,
	})
}

// fail reports a failure; what the table last held stays in force.
func (e *enforcer) fail(err error) {
	e.log.Error(err, "Programming the dataplane failed; retrying")
	s := e.snapshot()
	s.cond = metav1.Condition{Type: memberv1alpha1.DataplaneReadyCondition, Status: metav1.ConditionFalse,
		Reason: memberv1alpha1.DataplaneProgrammingFailedReason, Message: err.Error()}
	e.setState(s)
}
