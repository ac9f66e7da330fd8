// Command manager runs Meridian's controllers and webhooks against a hub cluster.
package main

import (
	"crypto/tls"
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/meridian-io/meridian/controllers"
)

func main() {
	opts := controllers.DefaultOptions()
	var (
		metricsAddr, probeAddr, webhookHost, webhookCertDir, pprofAddr string
		webhookPort                                                    int
		leaderElect, secureMetrics                                     bool
		leaderElectionNamespace, certNamespace                         string
		certRotation                                                   bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the metrics endpoint binds to; 0 turns it off.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with authentication and authorization.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address to serve Go's pprof profiles on (off when empty).")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so that only one replica reconciles at a time.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (default: the manager's own).")
	flag.BoolVar(&opts.EnableWebhooks, "enable-webhooks", opts.EnableWebhooks, "Serve the admission webhooks.")
	flag.StringVar(&webhookHost, "webhook-host", "", "Address the webhook server binds to (default: all).")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	flag.BoolVar(&certRotation, "webhook-cert-rotation", false,
		"Issue and rotate the webhook serving certificate in Secret "+webhookCertSecret+" (off: provide it, for example with cert-manager).")
	flag.StringVar(&certNamespace, "webhook-cert-namespace", "meridian-system", "Namespace of the webhook Service and certificate Secret, for -webhook-cert-rotation.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "", "Folder with tls.crt and tls.key for the webhook server (default: controller-runtime's).")
	flag.DurationVar(&opts.StatusRefreshInterval, "status-refresh-interval", opts.StatusRefreshInterval,
		"How often a MemberCluster's lastProbeTime is written when nothing else in its status changed.")
	var qps float64
	flag.Float64Var(&qps, "member-qps", float64(opts.MemberQPS), "Requests per second the manager may send to each member.")
	flag.IntVar(&opts.MemberBurst, "member-burst", opts.MemberBurst, "Burst of requests the manager may send to each member.")
	flag.IntVar(&opts.WorkersPerMember, "work-workers-per-member", opts.WorkersPerMember, "ClusterWorks synced at a time per member cluster.")
	flag.IntVar(&opts.MaxConcurrentReconciles, "membercluster-workers", opts.MaxConcurrentReconciles, "Workers of the MemberCluster controller.")
	flag.StringVar(&opts.ArgoCDClusterSecretsNamespace, "argocd-cluster-secrets-namespace", "",
		"Keep an Argo CD cluster Secret in this namespace (Argo CD's) for each Ready MemberCluster, labelled with its labels; off when empty.")
	flag.DurationVar(&opts.ArgoCDClusterSecretsGrace, "argocd-cluster-secrets-grace", opts.ArgoCDClusterSecretsGrace,
		"How long a MemberCluster may stay unready before its Argo CD cluster Secret is removed.")
	flag.DurationVar(&opts.GlobalNamespaceServicesDelay, "globalnamespace-services-delay", opts.GlobalNamespaceServicesDelay,
		"How long a GlobalNamespace gathers its services' changes before writing them to its status.services (0: each at once).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	opts.MemberQPS = float32(qps)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme, err := controllers.NewScheme()
	if err != nil {
		log.Error(err, "Building the scheme")
		os.Exit(1)
	}
	disableHTTP2 := func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: []func(*tls.Config){disableHTTP2}},
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "meridian-manager.meridian.io",
		LeaderElectionNamespace: leaderElectionNamespace,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: webhookHost, Port: webhookPort, CertDir: webhookCertDir, TLSOpts: []func(*tls.Config){disableHTTP2},
		}),
	})
	if err != nil {
		log.Error(err, "Creating the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	setup := func() {
		if _, err := controllers.Setup(ctx, mgr, opts); err != nil {
			log.Error(err, "Setting up controllers")
			os.Exit(1)
		}
	}
	// With rotation, controllers and webhooks start once the certificate is in place.
	var certsReady chan struct{}
	if certRotation && opts.EnableWebhooks {
		if certsReady, err = addCertRotation(mgr, certNamespace, webhookCertDir); err != nil {
			log.Error(err, "Setting up webhook certificate rotation")
			os.Exit(1)
		}
		go func() { <-certsReady; setup() }()
	} else {
		setup()
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Adding the health check")
		os.Exit(1)
	}
	readyz := healthz.Ping
	switch {
	case certsReady != nil:
		readyz = readyAfter(certsReady, func() healthz.Checker { return mgr.GetWebhookServer().StartedChecker() })
	case opts.EnableWebhooks:
		readyz = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", readyz); err != nil {
		log.Error(err, "Adding the readiness check")
		os.Exit(1)
	}
	if err := controllers.AddReadinessChecks(mgr); err != nil {
		log.Error(err, "Adding the readiness checks")
		os.Exit(1)
	}
	log.Info("Starting the manager")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Running the manager")
		os.Exit(1)
	}
}
