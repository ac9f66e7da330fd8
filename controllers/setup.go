// Package controllers wires Meridian's reconcilers and webhooks into a controller-runtime Manager.
package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/controllers/fleet"
	"github.com/meridian-io/meridian/controllers/internal/hubwork"
	"github.com/meridian-io/meridian/controllers/networking"
	policyctrl "github.com/meridian-io/meridian/controllers/policy"
	workctrl "github.com/meridian-io/meridian/controllers/work"
	"github.com/meridian-io/meridian/internal/agentstatus"
	"github.com/meridian-io/meridian/internal/mcs"
	"github.com/meridian-io/meridian/internal/membercache"
	policyinventory "github.com/meridian-io/meridian/internal/policy/inventory"
	"github.com/meridian-io/meridian/internal/policy/realization"
	"github.com/meridian-io/meridian/internal/statusmetrics"
	fleetwebhook "github.com/meridian-io/meridian/internal/webhook/fleet/v1alpha1"
	netwebhook "github.com/meridian-io/meridian/internal/webhook/networking/v1alpha1"
	policywebhook "github.com/meridian-io/meridian/internal/webhook/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/work"
)

// Options tune the manager's controllers.
type Options struct {
	// EnableWebhooks registers the admission webhooks with the manager's webhook server.
	EnableWebhooks bool
	// StatusRefreshInterval bounds how stale a MemberCluster's lastProbeTime may get.
	StatusRefreshInterval time.Duration
	// MemberQPS and MemberBurst set the client rate towards each member.
	MemberQPS   float32
	MemberBurst int
	// MaxConcurrentReconciles of the MemberCluster controller.
	MaxConcurrentReconciles int
	// WorkersPerMember sync that many ClusterWorks of one member at a time.
	WorkersPerMember int
	// ArgoCDClusterSecretsNamespace, when set, makes the manager keep an Argo CD cluster Secret
	// there for each Ready MemberCluster (docs/gitops.md).
	ArgoCDClusterSecretsNamespace string
	// ArgoCDClusterSecretsGrace is how long a member may stay unready before its Secret goes.
	ArgoCDClusterSecretsGrace time.Duration
	// GlobalNamespaceServicesDelay gathers the changes of a GlobalNamespace's services into one
	// write of its status.services (networking.GlobalNamespaceReconciler.ServicesDelay).
	GlobalNamespaceServicesDelay time.Duration
}

// DefaultOptions are the manager's defaults.
func DefaultOptions() Options {
	return Options{
		EnableWebhooks:        true,
		StatusRefreshInterval: 5 * time.Minute,
		// No client-side limit: concurrency towards a member is bounded by its workers and
		// probers, and the member's own priority and fairness is the real limit.
		MemberQPS:                    -1,
		MemberBurst:                  0,
		MaxConcurrentReconciles:      4,
		WorkersPerMember:             8,
		ArgoCDClusterSecretsGrace:    5 * time.Minute,
		GlobalNamespaceServicesDelay: networking.DefaultServicesDelay,
	}
}

// CacheOptions limit what the manager caches of the hub: of Namespaces only the hub namespaces
// Meridian owns (Secrets are watched by metadata only, see the MemberCluster controller).
func CacheOptions() cache.Options {
	owned, _ := labels.NewRequirement(fleetv1alpha1.MemberClusterLabel, selection.Exists, nil)
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Namespace{}: {Label: labels.NewSelector().Add(*owned)},
	}}
}

// NewScheme returns a scheme with every kind the manager reads or writes on the hub.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, fleetv1alpha1.AddToScheme, netv1alpha1.AddToScheme, policyv1alpha1.AddToScheme, clusterv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddReadinessChecks registers the manager's readiness checks beyond its webhook server's: the
// default Tiers exist on the hub (policyctrl.DefaultTiersReady). Call it before mgr.Start, apart
// from Setup, which may run after the start (webhook certificate rotation).
func AddReadinessChecks(mgr ctrl.Manager) error {
	return mgr.AddReadyzCheck("default-tiers", policyctrl.DefaultTiersReady(mgr.GetAPIReader()))
}

// Setup registers every controller and webhook with mgr. Cluster API discovery is registered only
// when the hub serves the Cluster API Cluster kind. The member cache it returns is the one owner
// of every connection to a member; the work engine and service discovery subscribe to it.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*membercache.Cache, error) {
	log := ctrl.Log.WithName("setup")
	probeEvents := make(chan event.TypedGenericEvent[*fleetv1alpha1.MemberCluster], 1024)
	members := membercache.New()
	if err := mgr.Add(members); err != nil {
		return nil, err
	}
	// Service discovery and the GlobalNamespace controller cache their own Works whole (small,
	// and read on each of their passes); the work engine reads those Works from there too.
	importWorks, err := hubwork.NewWorkCache(mgr, netv1alpha1.ServiceNameLabel)
	if err != nil {
		return nil, fmt.Errorf("the import ClusterWorks' cache: %w", err)
	}
	globalNamespaceWorks, err := hubwork.NewWorkCache(mgr, netv1alpha1.GlobalNamespaceLabel)
	if err != nil {
		return nil, fmt.Errorf("the GlobalNamespaces' ClusterWorks' cache: %w", err)
	}
	for _, c := range []cache.Cache{importWorks, globalNamespaceWorks} {
		if err := mgr.Add(c); err != nil {
			return nil, err
		}
	}
	works := &workctrl.ClusterWorkReconciler{HubClient: mgr.GetClient(), HubReader: mgr.GetAPIReader(), Members: members,
		WholeWorks: []client.Reader{importWorks, globalNamespaceWorks}, Recorder: mgr.GetEventRecorder("meridian-clusterwork")}
	works.Engine = work.NewEngine(opts.WorkersPerMember, works.Process)
	if err := mgr.Add(works.Engine); err != nil {
		return nil, err
	}
	// Order matters: the engine makes a member's syncer before its Works are queued again.
	members.Subscribe(works.Engine)
	members.Subscribe(works.Subscriber(ctx))
	members.Subscribe(membercache.Funcs{HealthChanged: func(member string, _ membercache.Health) {
		e := event.TypedGenericEvent[*fleetv1alpha1.MemberCluster]{Object: &fleetv1alpha1.MemberCluster{}}
		e.Object.Name = member
		select {
		case probeEvents <- e:
		case <-ctx.Done():
		}
	}})
	if err := works.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the ClusterWork controller: %w", err)
	}
	if err := (&fleet.MemberClusterReconciler{
		HubClient:               mgr.GetClient(),
		HubReader:               mgr.GetAPIReader(),
		Members:                 members,
		Recorder:                mgr.GetEventRecorder("meridian-membercluster"),
		StatusRefreshInterval:   opts.StatusRefreshInterval,
		MemberQPS:               opts.MemberQPS,
		MemberBurst:             opts.MemberBurst,
		ProbeEvents:             probeEvents,
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("set up the MemberCluster controller: %w", err)
	}
	if opts.ArgoCDClusterSecretsNamespace != "" {
		healthEvents := make(chan event.TypedGenericEvent[*fleetv1alpha1.MemberCluster], 1024)
		members.Subscribe(membercache.Funcs{HealthChanged: func(member string, _ membercache.Health) {
			e := event.TypedGenericEvent[*fleetv1alpha1.MemberCluster]{Object: &fleetv1alpha1.MemberCluster{}}
			e.Object.Name = member
			select {
			case healthEvents <- e:
			case <-ctx.Done():
			}
		}})
		if err := (&fleet.ArgoCDClusterReconciler{
			HubClient:    mgr.GetClient(),
			HubReader:    mgr.GetAPIReader(),
			Members:      members,
			HealthEvents: healthEvents,
			Recorder:     mgr.GetEventRecorder("meridian-argocd"),
			Namespace:    opts.ArgoCDClusterSecretsNamespace,
			Grace:        opts.ArgoCDClusterSecretsGrace,
		}).SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the Argo CD cluster Secret controller: %w", err)
		}
	}

	catalog := mcs.NewCatalog()
	serviceEvents := make(chan event.TypedGenericEvent[*netv1alpha1.GlobalNamespace], 1024)
	discovery := &networking.ServiceDiscoveryReconciler{
		HubClient: mgr.GetClient(), HubReader: mgr.GetAPIReader(), Engine: works.Engine, Catalog: catalog, GlobalNamespaceEvents: serviceEvents,
	}
	discovery.NewRequests()
	discovery.ImportWorks = importWorks
	inventory := mcs.NewInventory(discovery.Handlers())
	discovery.Inventory = inventory
	if err := mgr.Add(inventory); err != nil {
		return nil, err
	}
	members.Subscribe(inventory)
	if err := discovery.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the service discovery controller: %w", err)
	}
	if err := (&networking.GlobalNamespaceReconciler{
		HubClient:     mgr.GetClient(),
		Works:         globalNamespaceWorks,
		HubReader:     mgr.GetAPIReader(),
		Recorder:      mgr.GetEventRecorder("meridian-globalnamespace"),
		Catalog:       catalog,
		ServiceEvents: serviceEvents,
		ServicesDelay: opts.GlobalNamespaceServicesDelay,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the GlobalNamespace controller: %w", err)
	}

	policyEvents := make(chan event.GenericEvent, 1024)
	gnps := &policyctrl.GlobalNetworkPolicyReconciler{
		HubClient: mgr.GetClient(), HubReader: mgr.GetAPIReader(), Events: policyEvents, Realization: realization.New(clock.RealClock{}),
		Recorder: mgr.GetEventRecorder("meridian-globalnetworkpolicy"),
	}
	gnps.Inventory = policyinventory.New(gnps.Handlers(ctx, mgr.GetClient()))
	if err := mgr.Add(gnps.Inventory); err != nil {
		return nil, err
	}
	members.Subscribe(gnps.Inventory)
	if err := gnps.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the GlobalNetworkPolicy controller: %w", err)
	}
	if err := mgr.Add(&policyctrl.DefaultTiers{HubClient: mgr.GetClient()}); err != nil {
		return nil, err
	}
	if err := (&policyctrl.TierReconciler{HubClient: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the Tier controller: %w", err)
	}

	agentEvents := make(chan event.TypedGenericEvent[*fleetv1alpha1.MemberCluster], 1024)
	aggregator := agentstatus.New(func(member string) {
		e := event.TypedGenericEvent[*fleetv1alpha1.MemberCluster]{Object: &fleetv1alpha1.MemberCluster{}}
		e.Object.Name = member
		select {
		case agentEvents <- e:
		case <-ctx.Done():
		}
	}, nil)
	if err := mgr.Add(aggregator); err != nil {
		return nil, err
	}
	members.Subscribe(aggregator)
	if err := (&fleet.AgentStatusReconciler{
		HubClient: mgr.GetClient(), Aggregator: aggregator, Reporter: &agentstatus.Reporter{HubClient: mgr.GetClient()}, Events: agentEvents,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the agent status controller: %w", err)
	}
	if err := (&fleet.AgentConfigReconciler{HubClient: mgr.GetClient(), HubReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("meridian-agentconfig")}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the AgentConfig controller: %w", err)
	}

	clusterGVK := clusterv1.GroupVersion.WithKind("Cluster")
	if _, err := mgr.GetRESTMapper().RESTMapping(clusterGVK.GroupKind(), clusterGVK.Version); err != nil {
		if !apimeta.IsNoMatchError(err) {
			return nil, fmt.Errorf("look up Cluster API on the hub: %w", err)
		}
		log.Info("Cluster API is not installed on the hub: Cluster discovery is off until the manager restarts with it")
	} else if err := (&fleet.ClusterDiscoveryReconciler{
		HubClient: mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder("meridian-clusterdiscovery"),
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up Cluster API discovery: %w", err)
	}

	statusmetrics.Default.SetReader(mgr.GetClient())

	if opts.EnableWebhooks {
		if err := fleetwebhook.SetupMemberClusterWebhookWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the MemberCluster webhook: %w", err)
		}
		if err := fleetwebhook.SetupClusterWorkWebhookWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the ClusterWork webhook: %w", err)
		}
		if err := netwebhook.SetupGlobalNamespaceWebhookWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the GlobalNamespace webhook: %w", err)
		}
		if err := policywebhook.SetupWebhooksWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up the GlobalNetworkPolicy and Tier webhooks: %w", err)
		}
	}
	return members, nil
}
