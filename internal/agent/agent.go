// Package agent is Meridian's node agent: it runs on every node of a member cluster (the
// meridian-node-agent DaemonSet), reads its config file, renews a Lease per node as kubelets do,
// and reports its state in the node's NodeAgentInfo, written only when that state changes. It
// runs without a controller-runtime Manager, so one process can run many agents (tests, benches).
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/textlogger"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
)

// LeaseDurationFactor is the Lease's duration in heartbeat intervals: kubelets renew a 40 s Lease
// every 10 s. The hub counts an agent stale after three intervals without a renewal, before the
// Lease itself expires.
const LeaseDurationFactor = memberv1alpha1.AgentLeaseDurationFactor

// Options configure one agent.
type Options struct {
	// NodeName is the node the agent runs on (the DaemonSet passes spec.nodeName as NODE_NAME).
	NodeName string
	// ConfigPath is the config file, as mounted from the agent's ConfigMap.
	ConfigPath string
	// Namespace holds the agent's Lease; default meridian-system.
	Namespace string
	// Version is the agent's version, reported in NodeAgentInfo.
	Version string
	// Client reaches the member with the agent's own credentials. Its scheme must know
	// coordination.k8s.io/v1 and member.meridian.io/v1alpha1.
	Client client.Client
	// MetricsHost is the address the metrics server binds, with the configured port; default all.
	MetricsHost string
	// LogOutput receives the agent's log; default stderr.
	LogOutput io.Writer
	// ConfigCheckPeriod bounds how late a config change is seen if a file event is missed; default 1m.
	ConfigCheckPeriod time.Duration
	// ResyncPeriod is how often the agent reads its NodeAgentInfo back to repair an edit or a
	// deletion (it writes only when the object differs); default 5m.
	ResyncPeriod time.Duration
	// Clock; default the real one.
	Clock clock.WithTicker
	// KnownGates, when set, are the only feature gates this agent accepts (default: every gate of
	// this build). An agent of an older build knows fewer gates, and version skew is how a config
	// the hub accepts gets refused on a node: tests set it to play such an agent.
	KnownGates []string
	// Dataplane, when set, enforces the member's policies on the node (cmd/node-agent always
	// sets it); unset, the agent reports DataplaneReady=False, reason DataplaneDisabled.
	Dataplane *DataplaneOptions
}

// Agent is one node's agent. Its state is owned by the goroutine that calls Run.
type Agent struct {
	opts    Options
	log     logr.Logger
	logCfg  *textlogger.Config
	metrics *metrics

	// config in force, the hash of its file ("" for the built-in defaults) and the last read's verdict.
	config     agentfile.Config
	configHash string
	configCond metav1.Condition
	// refusedHash is the hash of the file last refused while configCond is False.
	refusedHash string
	// healthErr is why the agent is not healthy, if it is not.
	healthErr error

	lease *coordinationv1.Lease
	info  *memberv1alpha1.NodeAgentInfo
	// infoDirty asks for a NodeAgentInfo sync at the next chance (state changed, or a write failed).
	infoDirty bool

	server *metricsServer
	// dp enforces the policies; nil without Options.Dataplane.
	dp *enforcer
}

// New checks the options and builds an agent; Run starts it.
func New(opts Options) (*Agent, error) {
	if opts.NodeName == "" {
		return nil, errors.New("the node name is missing: pass --node-name or set NODE_NAME (the DaemonSet sets it from spec.nodeName)")
	}
	if opts.ConfigPath == "" {
		return nil, errors.New("the config file path is missing: pass --config")
	}
	if opts.Client == nil {
		return nil, errors.New("no client for the member")
	}
	if opts.Namespace == "" {
		opts.Namespace = memberv1alpha1.AgentNamespace
	}
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
	}
	if opts.ConfigCheckPeriod == 0 {
		opts.ConfigCheckPeriod = time.Minute
	}
	if opts.ResyncPeriod == 0 {
		opts.ResyncPeriod = 5 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	a := &Agent{opts: opts, config: agentfile.Default(), metrics: newMetrics()}
	a.logCfg = textlogger.NewConfig(textlogger.Output(opts.LogOutput))
	a.log = textlogger.NewLogger(a.logCfg).WithValues("node", opts.NodeName)
	return a, nil
}

// Config returns the configuration in force and its hash ("" for the built-in defaults).
func (a *Agent) Config() (agentfile.Config, string) { return a.config, a.configHash }

// Run runs the agent until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch the config file: %w", err)
	}
	defer watcher.Close()
	// The kubelet updates a mounted ConfigMap by swapping a symlink (..data) in the file's folder:
	// the file's own inode never changes, so the folder is what to watch.
	if err := watcher.Add(filepath.Dir(a.opts.ConfigPath)); err != nil {
		return fmt.Errorf("watch the config folder %s: %w", filepath.Dir(a.opts.ConfigPath), err)
	}

	a.reload()
	var dpChanged chan struct{}
	if a.opts.Dataplane != nil {
		if a.dp, err = newEnforcer(*a.opts.Dataplane, a.opts.NodeName, a.log, a.config); err != nil {
			return err
		}
		for _, c := range a.dp.metrics.collectors() {
			if err := a.metrics.registry.Register(c); err != nil {
				return fmt.Errorf("register the dataplane's metrics: %w", err)
			}
		}
		defer func() {
			for _, c := range a.dp.metrics.collectors() {
				a.metrics.registry.Unregister(c)
			}
		}()
		dpChanged = a.dp.changed
		dpCtx, stopDP := context.WithCancel(ctx)
		dpDone := make(chan struct{})
		go func() { defer close(dpDone); a.dp.run(dpCtx) }()
		r := &realizer{cfg: a.opts.Dataplane.RESTConfig, node: a.opts.NodeName, namespace: a.opts.Namespace,
			opts: a.opts.Dataplane.Realization, log: a.log.WithName("realization"), writes: a.metrics.statusWrites.Inc}
		realizeDone := make(chan struct{})
		go func() { defer close(realizeDone); r.run(dpCtx) }()
		defer func() { stopDP(); <-dpDone; <-realizeDone }()
	}
	serverErrs := make(chan error, 1)
	a.applyConfig(ctx, serverErrs)
	defer a.stopServer()
	a.log.Info("Starting node agent", "version", a.opts.Version, "configHash", a.configHash)

	clk := a.opts.Clock
	heartbeat := clk.NewTimer(0)
	defer heartbeat.Stop()
	configCheck := clk.NewTicker(a.opts.ConfigCheckPeriod)
	defer configCheck.Stop()
	resync := clk.NewTicker(a.opts.ResyncPeriod)
	defer resync.Stop()
	failures := 0
	for {
		if a.infoDirty {
			if err := a.syncInfo(ctx); err != nil {
				a.log.Error(err, "Writing NodeAgentInfo failed; retrying at the next heartbeat")
			}
		}
		select {
		case <-ctx.Done():
			a.log.Info("Stopping node agent")
			return nil
		case <-heartbeat.C():
			if a.server == nil {
				a.applyConfig(ctx, serverErrs) // the metrics port was taken: try it again
			}
			interval := a.heartbeatInterval()
			if err := a.renewLease(ctx); err != nil {
				failures++
				a.metrics.heartbeatFailures.Inc()
				// As the kubelet: retry soon, backing off, but never later than the interval.
				retry := min(200*time.Millisecond<<min(failures, 6), interval)
				a.log.Error(err, "Renewing the Lease failed", "retryIn", retry)
				heartbeat.Reset(retry)
				continue
			}
			failures = 0
			a.metrics.heartbeats.Inc()
			heartbeat.Reset(interval)
		case ev := <-watcher.Events:
			a.log.V(4).Info("Config folder changed", "event", ev.String())
			if a.reload() {
				before := a.heartbeatInterval()
				a.applyConfig(ctx, serverErrs)
				if a.heartbeatInterval() != before {
					heartbeat.Reset(0)
				}
			}
		case err := <-watcher.Errors:
			a.log.Error(err, "Watching the config folder failed; the periodic check still reads the file")
		case <-configCheck.C():
			if a.reload() {
				a.applyConfig(ctx, serverErrs)
				heartbeat.Reset(0)
			}
		case err := <-serverErrs:
			a.stopServer()
			a.setHealth(fmt.Errorf("the metrics server on port %d stopped: %w", a.config.MetricsPort, err))
		case <-dpChanged:
			a.infoDirty = true
		case <-resync.C():
			a.info = nil // read it back: someone may have edited or deleted it
			a.infoDirty = true
		}
	}
}

func (a *Agent) heartbeatInterval() time.Duration {
	return time.Duration(a.config.HeartbeatIntervalSeconds) * time.Second
}

// reload reads the config file. A valid file different from the one in force replaces it; an
// invalid or unreadable one is reported and the config in force is kept. It says whether the
// config in force changed.
func (a *Agent) reload() bool {
	data, err := os.ReadFile(a.opts.ConfigPath)
	if err != nil {
		a.metrics.reloads.WithLabelValues("unreadable").Inc()
		return a.setConfigCond(metav1.ConditionFalse, memberv1alpha1.ConfigUnreadableReason,
			fmt.Sprintf("Cannot read the config file %s: %v; %s.", a.opts.ConfigPath, err, a.keeping()), false)
	}
	hash := agentfile.Hash(data)
	if hash == a.configHash && a.configCond.Status == metav1.ConditionTrue {
		return false
	}
	cfg, err := agentfile.Parse(data)
	if err == nil {
		err = a.checkGates(cfg)
	}
	if err != nil {
		a.refusedHash = hash
		a.metrics.reloads.WithLabelValues("invalid").Inc()
		return a.setConfigCond(metav1.ConditionFalse, memberv1alpha1.InvalidConfigReason,
			fmt.Sprintf("The config file %s (hash %s) is invalid: %v; %s.", a.opts.ConfigPath, hash, err, a.keeping()), false)
	}
	changed := hash != a.configHash
	a.config, a.configHash, a.refusedHash = cfg, hash, ""
	a.metrics.reloads.WithLabelValues("loaded").Inc()
	a.metrics.setConfig(hash)
	if changed {
		a.log.Info("Loaded config", "configHash", hash)
	}
	a.setConfigCond(metav1.ConditionTrue, memberv1alpha1.ConfigLoadedReason,
		fmt.Sprintf("Running the config file %s (hash %s).", a.opts.ConfigPath, hash), changed)
	return changed
}

// checkGates refuses gates this agent does not know (Options.KnownGates).
func (a *Agent) checkGates(cfg agentfile.Config) error {
	if a.opts.KnownGates == nil {
		return nil
	}
	var unknown []string
	for g := range cfg.FeatureGates {
		if !slices.Contains(a.opts.KnownGates, g) {
			unknown = append(unknown, g)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("featureGates: unknown gates %s; this agent (%s) knows: %s", strings.Join(unknown, ", "), a.opts.Version, strings.Join(a.opts.KnownGates, ", "))
}

func (a *Agent) keeping() string {
	if a.configHash == "" {
		return "running the built-in defaults until a valid file appears"
	}
	return "keeping the last good config (hash " + a.configHash + ")"
}

// setConfigCond records the ConfigValid verdict and returns changed, for the caller's return.
func (a *Agent) setConfigCond(status metav1.ConditionStatus, reason, message string, changed bool) bool {
	if a.configCond.Status != status || a.configCond.Reason != reason || a.configCond.Message != message {
		if status != metav1.ConditionTrue {
			a.log.Info("Refusing config file", "reason", reason, "message", message)
		}
		a.configCond = metav1.Condition{Type: memberv1alpha1.ConfigValidCondition, Status: status, Reason: reason, Message: message}
		a.infoDirty = true
	}
	return changed
}

// applyConfig puts the config in force into effect: log verbosity, metrics port and gates.
func (a *Agent) applyConfig(ctx context.Context, serverErrs chan<- error) {
	_ = a.logCfg.Verbosity().Set(strconv.Itoa(int(a.config.LogVerbosity)))
	a.metrics.setProcessCollectors(a.config.Gate("ProcessMetrics"))
	if a.dp != nil {
		a.dp.setConfig(a.config)
	}
	if a.server != nil && a.server.port == a.config.MetricsPort {
		return
	}
	a.stopServer()
	var extra map[string]http.Handler
	if a.dp != nil {
		extra = map[string]http.Handler{CountersPath: http.HandlerFunc(a.dp.serveCounters)}
	}
	s, err := startMetricsServer(ctx, a.opts.MetricsHost, a.config.MetricsPort, a.metrics.registry, extra, serverErrs)
	if err != nil {
		a.setHealth(err)
		return
	}
	a.server = s
	a.setHealth(nil)
	a.infoDirty = true
}

func (a *Agent) stopServer() {
	if a.server != nil {
		a.server.stop()
		a.server = nil
	}
}

func (a *Agent) setHealth(err error) {
	if (err == nil) != (a.healthErr == nil) || (err != nil && err.Error() != a.healthErr.Error()) {
		if err != nil {
			a.log.Error(err, "Agent unhealthy")
		}
		a.healthErr = err
		a.infoDirty = true
	}
}

// renewLease renews the node's Lease, creating it first if needed. It updates the Lease it last
// wrote (one request per heartbeat, as the kubelet), reading it again only after a failure.
func (a *Agent) renewLease(ctx context.Context) error {
	now := metav1.NewMicroTime(a.opts.Clock.Now())
	duration := ptr.To(int32(LeaseDurationFactor) * a.config.HeartbeatIntervalSeconds)
	name := memberv1alpha1.AgentLeaseName(a.opts.NodeName)
	c := a.opts.Client
	if a.lease == nil {
		l := &coordinationv1.Lease{}
		err := c.Get(ctx, client.ObjectKey{Namespace: a.opts.Namespace, Name: name}, l)
		if apierrors.IsNotFound(err) {
			l = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Namespace: a.opts.Namespace, Name: name},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(a.opts.NodeName), LeaseDurationSeconds: duration,
					AcquireTime: &now, RenewTime: &now,
				},
			}
			if err := c.Create(ctx, l); err != nil {
				return fmt.Errorf("create Lease %s/%s: %w", a.opts.Namespace, name, err)
			}
			a.lease = l
			return nil
		}
		if err != nil {
			return fmt.Errorf("get Lease %s/%s: %w", a.opts.Namespace, name, err)
		}
		a.lease = l
	}
	l := a.lease.DeepCopy()
	l.Spec.HolderIdentity = ptr.To(a.opts.NodeName)
	l.Spec.LeaseDurationSeconds = duration
	l.Spec.RenewTime = &now
	if err := c.Update(ctx, l); err != nil {
		a.lease = nil
		return fmt.Errorf("renew Lease %s/%s: %w", a.opts.Namespace, name, err)
	}
	a.lease = l
	return nil
}

// desiredInfo is the node's NodeAgentInfo as the agent's state says it should be, built on the
// current one so that conditions keep their transition times.
func (a *Agent) desiredInfo(current *memberv1alpha1.NodeAgentInfo) *memberv1alpha1.NodeAgentInfo {
	d := &memberv1alpha1.NodeAgentInfo{ObjectMeta: metav1.ObjectMeta{Name: a.opts.NodeName}}
	if current != nil {
		d = current.DeepCopy()
	}
	d.Version = a.opts.Version
	d.ConfigHash = a.configHash
	d.RefusedConfigHash = ""
	if a.configCond.Status == metav1.ConditionFalse {
		d.RefusedConfigHash = a.refusedHash
	}
	d.EnforcementMode = a.config.EnforcementMode
	now := metav1.NewTime(a.opts.Clock.Now())
	set := func(c metav1.Condition) {
		c.LastTransitionTime = now
		meta.SetStatusCondition(&d.Conditions, c)
	}
	set(a.configCond)
	if a.healthErr != nil {
		set(metav1.Condition{Type: memberv1alpha1.HealthyCondition, Status: metav1.ConditionFalse,
			Reason: memberv1alpha1.MetricsServerFailedReason, Message: a.healthErr.Error()})
	} else {
		set(metav1.Condition{Type: memberv1alpha1.HealthyCondition, Status: metav1.ConditionTrue,
			Reason: memberv1alpha1.AgentRunningReason, Message: "The agent runs and serves its metrics."})
	}
	if a.dp == nil {
		set(metav1.Condition{Type: memberv1alpha1.DataplaneReadyCondition, Status: metav1.ConditionFalse,
			Reason:  memberv1alpha1.DataplaneDisabledReason,
			Message: "This agent runs without a dataplane: no policy is enforced on this node."})
		d.Policies, d.Dataplane = nil, nil
		return d
	}
	st := a.dp.snapshot()
	set(st.cond)
	d.Policies, d.Dataplane = st.policies, st.status
	return d
}

// syncInfo makes the NodeAgentInfo match the agent's state, writing only when it differs.
func (a *Agent) syncInfo(ctx context.Context) error {
	c := a.opts.Client
	if a.info == nil {
		cur := &memberv1alpha1.NodeAgentInfo{}
		err := c.Get(ctx, client.ObjectKey{Name: a.opts.NodeName}, cur)
		switch {
		case apierrors.IsNotFound(err):
			cur = nil
		case err != nil:
			return fmt.Errorf("get NodeAgentInfo %s: %w", a.opts.NodeName, err)
		}
		a.info = cur
	}
	desired := a.desiredInfo(a.info)
	if a.info != nil && equality.Semantic.DeepEqual(a.info, desired) {
		a.infoDirty = false
		return nil
	}
	var err error
	if a.info == nil {
		err = c.Create(ctx, desired)
	} else {
		err = c.Update(ctx, desired)
	}
	if err != nil {
		a.info = nil // read it again next time: it may have changed under us
		return fmt.Errorf("write NodeAgentInfo %s: %w", a.opts.NodeName, err)
	}
	a.metrics.infoWrites.Inc()
	a.log.V(2).Info("Wrote NodeAgentInfo", "configHash", desired.ConfigHash)
	a.info = desired
	a.infoDirty = false
	return nil
}

// NewClient is the agent's client of its member: only the kinds the agent reads and writes.
func NewClient(cfg *rest.Config) (client.Client, error) {
	scheme := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := memberv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgent
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// UserAgent is the agent's user agent towards its member's apiserver.
const UserAgent = "meridian-node-agent"
