package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agenttest/kubelet"
	"github.com/meridian-io/meridian/test/testbed"
)

// showAgents is the demo's node agent step. The AgentConfig in config/samples installs the agent
// on both members (ClusterWorks → the DaemonSet, whose pods the members' controllers and kwok
// run). kwok runs no containers, so the agents themselves run here, in the demo process, one per
// simulated node, as the tests run them (kubelet.Kubelet: a token bound to the node's pod, the
// ConfigMap as a mounted folder, the agent's own code). It waits for the rollout to complete and
// prints the hub's view. The returned stop ends the agents.
func showAgents(ctx context.Context, bed *testbed.Bed, out, hubKubeconfig string, kubectl func(args ...string) error, kubectlTo func(kubeconfig string, args ...string) error) (stop func(), err error) {
	step("Node agents: AgentConfig default (config/samples) installs the agent on both members, one cluster at a time")
	fmt.Println("   kwok runs no containers: one agent per simulated node runs as a goroutine of this demo process,")
	fmt.Println("   as the tests run them, each with a token bound to its node's DaemonSet pod (log: " + filepath.Join(out, "agents.log") + ")")
	log, err := os.Create(filepath.Join(out, "agents.log"))
	if err != nil {
		return func() {}, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var done []chan error
	for i, m := range bed.Members {
		k := &kubelet.Kubelet{Config: m.Config, Dir: filepath.Join(out, "agents", m.Name), HostPrefix: fmt.Sprintf("127.0.%d.", 10+i), Log: log}
		d := make(chan error, 1)
		go func() { d <- k.Run(runCtx) }()
		done = append(done, d)
	}
	stop = func() {
		cancel()
		for _, d := range done {
			select {
			case <-d:
			case <-time.After(30 * time.Second):
			}
		}
		_ = log.Close()
	}
	step("Waiting for AgentConfig default to be Ready (every agent on both members up to date and ready)")
	if err := kubectl("wait", "--for=condition=Ready", "agentconfigs/default", "--timeout=240s"); err != nil {
		_ = kubectl("get", "agentconfigs", "-o", "yaml")
		return stop, fmt.Errorf("wait for the agents' rollout: %w", err)
	}
	if err := kubectl("wait", "--for=jsonpath={.status.agents.summary}=3/3", "memberclusters", "--all", "--timeout=60s"); err != nil {
		return stop, fmt.Errorf("wait for the MemberClusters to count 3/3 ready agents: %w", err)
	}
	step("kubectl get memberclusters -o wide (AGENTS: ready/desired agents per member)")
	if err := kubectl("get", "memberclusters", "-o", "wide"); err != nil {
		return stop, err
	}
	step("kubectl get agentconfigs -o wide")
	if err := kubectl("get", "agentconfigs", "-o", "wide"); err != nil {
		return stop, err
	}
	step("kubectl --kubeconfig member-2.kubeconfig get nodeagentinfos (DATAPLANE False: these agents run without one)")
	if err := kubectlTo(filepath.Join(filepath.Dir(hubKubeconfig), "member-2.kubeconfig"), "get", "nodeagentinfos"); err != nil {
		return stop, err
	}
	step("The policies now: both members serve Meridian's form, which only the agents enforce")
	fmt.Println("   kwok's nodes have no kernel, so the agents program no dataplane and report no policy: the hub says")
	fmt.Println("   Pending (NoAgentReports), not Realized. test/e2e/dataplane runs the same chain with agents programming")
	fmt.Println("   nftables on real network namespaces, where the hub reports every node realized (docs/policy.md, Status).")
	if err := showPolicies(ctx, bed, kubectl, policyv1alpha1.FormMeridian, demoPolicies...); err != nil {
		return stop, err
	}
	return stop, ctx.Err()
}
