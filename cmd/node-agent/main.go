// Command node-agent is Meridian's per-node agent. It runs in the meridian-node-agent DaemonSet
// that an AgentConfig installs in member clusters: it reads its config file, renews its node's
// Lease, enforces the member's policies on the node with nftables, and reports its state in the
// node's NodeAgentInfo (docs/agent.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meridian-io/meridian/internal/agent"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	opts := agent.Options{Version: version}
	var kubeconfig string
	flag.StringVar(&opts.ConfigPath, "config", "/etc/meridian-agent/agent.yaml", "The agent's config file (mounted from its ConfigMap).")
	flag.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "The node the agent runs on (default $NODE_NAME, which the DaemonSet sets from spec.nodeName).")
	flag.StringVar(&opts.Namespace, "namespace", "", "The namespace of the agent's Lease (default meridian-system).")
	flag.StringVar(&opts.MetricsHost, "metrics-host", "", "The address the metrics server binds, with the configured port (default all).")
	flag.StringVar(&kubeconfig, "kubeconfig", "", "A kubeconfig for the member (default: the pod's service account).")
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	if err := run(opts, kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		os.Exit(1)
	}
}

func run(opts agent.Options, kubeconfig string) error {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("member client config: %w", err)
	}
	opts.Dataplane = &agent.DataplaneOptions{RESTConfig: cfg}
	if opts.Client, err = agent.NewClient(cfg); err != nil {
		return err
	}
	a, err := agent.New(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}
