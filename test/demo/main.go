// Command demo runs Meridian's main job on one machine: a hub and two live members on loopback
// (each an apiserver, etcd, controller-manager, scheduler and three nodes simulated by kwok) with
// a small application in each, the manager against the hub, the samples applied and the fleet's
// status printed.
// DEMO_EXIT=1 makes it exit after printing; otherwise it runs until interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run() (reterr error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := testbed.RepoRoot()
	bin := testbed.BinDir()
	out := os.Getenv("DEMO_DIR")
	if out == "" {
		out = filepath.Join(root, "demo-out")
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	kubeconfigs := filepath.Join(out, "kubeconfigs")

	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	step("Starting a hub and two live members on loopback (kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok with three nodes each)")
	start := time.Now()
	members := []string{"member-1", "member-2"}
	bed, err := testbed.Start(ctx, testbed.Options{
		Members: members,
		MemberOptions: map[string]testbed.MemberOptions{
			"member-1": {Live: true, Nodes: 3},
			"member-2": {Live: true, Nodes: 3},
		},
		Scheme:     scheme,
		Webhooks:   true,
		ClusterAPI: true,
	})
	if bed != nil {
		defer func() {
			step("Stopping the control planes")
			reterr = errors.Join(reterr, bed.Stop())
		}()
	}
	if err != nil {
		return err
	}
	fmt.Printf("   started in %s\n", time.Since(start).Round(100*time.Millisecond))
	if err := bed.WriteKubeconfigs(kubeconfigs); err != nil {
		return err
	}
	hubKubeconfig := filepath.Join(kubeconfigs, "hub.kubeconfig")
	for _, m := range bed.Members {
		fmt.Printf("   %s: pods from %s, services from %s, nodes %v\n", m.Name, m.Live.PodCIDR, m.Live.ServiceCIDR, m.Live.Nodes)
	}

	kubectlTo := func(kubeconfig string, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	step("Running a sample application (a Deployment and a Service) in each member")
	for _, name := range members {
		kc := filepath.Join(kubeconfigs, name+".kubeconfig")
		if err := kubectlTo(kc, "apply", "-f", filepath.Join(root, "test", "demo", "sample-app.yaml")); err != nil {
			return fmt.Errorf("apply the sample application to %s: %w", name, err)
		}
		if err := kubectlTo(kc, "-n", "demo", "rollout", "status", "deployment/web", "--timeout=120s"); err != nil {
			return fmt.Errorf("roll out the sample application in %s: %w", name, err)
		}
	}
	step("kubectl --kubeconfig member-1.kubeconfig get nodes,pods,endpointslices -n demo -o wide")
	if err := kubectlTo(filepath.Join(kubeconfigs, "member-1.kubeconfig"), "get", "nodes,pods,endpointslices", "-n", "demo", "-o", "wide"); err != nil {
		return err
	}

	step("Starting the manager against the hub (log: " + filepath.Join(out, "manager.log") + ")")
	logFile, err := os.Create(filepath.Join(out, "manager.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	healthPort, err := freePort()
	if err != nil {
		return err
	}
	mgr := exec.Command(filepath.Join(bin, "manager"),
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(healthPort),
		"--webhook-host="+bed.Hub.Webhook.Host,
		"--webhook-port="+strconv.Itoa(bed.Hub.Webhook.Port),
		"--webhook-cert-dir="+bed.Hub.Webhook.CertDir,
	)
	mgr.Env = append(os.Environ(), "KUBECONFIG="+hubKubeconfig)
	mgr.Stdout, mgr.Stderr = logFile, logFile
	if err := mgr.Start(); err != nil {
		return fmt.Errorf("start the manager: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- mgr.Wait() }()
	defer func() {
		step("Stopping the manager")
		_ = mgr.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = mgr.Process.Kill()
			<-exited
		}
	}()
	if err := waitReady(ctx, healthPort, exited); err != nil {
		return err
	}

	kubectl := func(args ...string) error { return kubectlTo(hubKubeconfig, args...) }
	// Ready means the default Tiers exist too (the manager creates them when it starts; a policy
	// naming one is refused until then): the samples' policy can go at once.
	step("Applying config/samples to the hub")
	if err := kubectl("apply", "-k", filepath.Join(root, "config", "samples")); err != nil {
		return fmt.Errorf("apply the samples: %w", err)
	}
	step("Waiting for both MemberClusters to be Ready and to count 3/3 ready nodes")
	if err := kubectl("wait", "--for=condition=Ready", "memberclusters", "--all", "--timeout=120s"); err != nil {
		return fmt.Errorf("wait for the MemberClusters: %w", err)
	}
	if err := kubectl("wait", "--for=jsonpath={.status.nodes.summary}=3/3", "memberclusters", "--all", "--timeout=60s"); err != nil {
		return fmt.Errorf("wait for the MemberClusters to count 3/3 ready nodes: %w", err)
	}
	step("kubectl get memberclusters -o wide")
	if err := kubectl("get", "memberclusters", "-o", "wide"); err != nil {
		return err
	}
	step("Waiting for GlobalNamespace shop to be Ready in both members")
	if err := kubectl("wait", "--for=condition=Ready", "globalnamespaces/shop", "--timeout=60s"); err != nil {
		return fmt.Errorf("wait for the GlobalNamespace: %w", err)
	}
	member1 := filepath.Join(kubeconfigs, "member-1.kubeconfig")
	member2 := filepath.Join(kubeconfigs, "member-2.kubeconfig")
	step("Exporting a checkout Service from member-1's namespace shop (Deployment, Service, ServiceExport)")
	if err := waitFor(ctx, 60*time.Second, func() error {
		return kubectlTo(member1, "get", "crd", "serviceexports.multicluster.x-k8s.io", "-o", "name")
	}); err != nil {
		return fmt.Errorf("wait for Meridian to install the Multi-Cluster Services CRDs in member-1: %w", err)
	}
	if err := kubectlTo(member1, "apply", "-f", filepath.Join(root, "test", "demo", "shop-app.yaml")); err != nil {
		return fmt.Errorf("apply the shop application to member-1: %w", err)
	}
	if err := kubectlTo(member1, "-n", "shop", "rollout", "status", "deployment/checkout", "--timeout=120s"); err != nil {
		return fmt.Errorf("roll out the shop application in member-1: %w", err)
	}
	step("Waiting for the import in member-2 (ServiceImport with a VIP, 2 ready endpoints)")
	if err := kubectlTo(member2, "-n", "shop", "wait", "--for=jsonpath={.spec.ips[0]}", "serviceimport/checkout", "--timeout=60s"); err != nil {
		return fmt.Errorf("wait for the ServiceImport in member-2: %w", err)
	}
	if err := kubectl("wait", "--for=jsonpath={.status.services[0].readyEndpoints}=2", "globalnamespaces/shop", "--timeout=60s"); err != nil {
		return fmt.Errorf("wait for the GlobalNamespace to report the service: %w", err)
	}
	step("kubectl get globalnamespaces -o wide")
	if err := kubectl("get", "globalnamespaces", "-o", "wide"); err != nil {
		return err
	}
	step("kubectl get globalnamespace shop -o jsonpath='{.status.services}'")
	if err := kubectl("get", "globalnamespace", "shop", "-o", "jsonpath={.status.services}{\"\\n\"}"); err != nil {
		return err
	}
	step("kubectl --kubeconfig member-2.kubeconfig -n shop get serviceimports,services,endpointslices -o wide")
	if err := kubectlTo(member2, "-n", "shop", "get", "serviceimports,services,endpointslices", "-o", "wide"); err != nil {
		return err
	}
	step("kubectl --kubeconfig member-1.kubeconfig -n shop get pods -o wide (the endpoints' source)")
	if err := kubectlTo(member1, "-n", "shop", "get", "pods", "-o", "wide"); err != nil {
		return err
	}

	// GlobalNetworkPolicy: tiered policies across both members and a trace (policy.go).
	if err := policyDemo(ctx, bed, root, bin, out, hubKubeconfig, kubectl, kubectlTo); err != nil {
		return fmt.Errorf("policy step: %w", err)
	}

	// Node agents (issue 18): their own step, see agents.go.
	stopAgents, err := showAgents(ctx, bed, out, hubKubeconfig, kubectl, kubectlTo)
	defer stopAgents()
	if err != nil {
		return err
	}

	fmt.Printf("\nKubeconfigs of the hub and the members are in %s:\n", kubeconfigs)
	fmt.Printf("  %s --kubeconfig %s get memberclusters -o wide\n", filepath.Join(bin, "kubectl"), hubKubeconfig)
	fmt.Printf("  %s --kubeconfig %s get nodes,pods -A -o wide\n", filepath.Join(bin, "kubectl"), filepath.Join(kubeconfigs, "member-1.kubeconfig"))
	if os.Getenv("DEMO_EXIT") == "1" {
		return nil
	}
	fmt.Println("\nThe demo keeps running; press Ctrl-C to stop it.")
	select {
	case <-ctx.Done():
	case err := <-exited:
		return fmt.Errorf("the manager exited: %v (see %s)", err, logFile.Name())
	}
	return nil
}

func step(s string) { fmt.Printf("==> %s\n", s) }

// waitFor retries f every second until it succeeds or the timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until the manager's readiness check (its webhook server) answers.
func waitReady(ctx context.Context, port int, exited <-chan error) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	deadline := time.After(60 * time.Second)
	for {
		if ok, _ := get(url); ok {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the manager exited before it was ready: %v", err)
		case <-deadline:
			return errors.New("the manager was not ready within 60s")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
