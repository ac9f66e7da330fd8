package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/test/testbed"
)

// policyDemo is the GlobalNetworkPolicy step: it gives the members policy APIs (Antrea's CRDs in
// member-1, network-policy-api v0.3.0's ClusterNetworkPolicy in member-2), applies a Tier-ordered
// pair of policies across both (a securityops Drop above an application Allow), waits until each
// member holds them, prints how each member enforces them, and traces one connection with the
// kubectl plugin.
func policyDemo(ctx context.Context, bed *testbed.Bed, root, bin, out, hubKubeconfig string, kubectl func(args ...string) error, kubectlTo func(kubeconfig string, args ...string) error) error {
	step("Installing policy APIs: Antrea's CRDs in member-1, network-policy-api v0.3.0's ClusterNetworkPolicy in member-2")
	antreaCRDs := filepath.Join(out, "antrea-crds.yaml")
	if err := os.WriteFile(antreaCRDs, antrea.CRDs, 0o600); err != nil {
		return err
	}
	npa, err := testbed.ModuleDir("sigs.k8s.io/network-policy-api")
	if err != nil {
		return err
	}
	kubeconfigs := filepath.Dir(hubKubeconfig)
	for member, crds := range map[string]string{
		"member-1": antreaCRDs,
		"member-2": filepath.Join(npa, "config", "crd", "standard", "policy.networking.k8s.io_clusternetworkpolicies.yaml"),
	} {
		kc := filepath.Join(kubeconfigs, member+".kubeconfig")
		for _, args := range [][]string{{"apply", "-f", crds}, {"wait", "--for=condition=Established", "-f", crds, "--timeout=60s"}} {
			if err := kubectlTo(kc, args...); err != nil {
				return fmt.Errorf("install policy CRDs in %s: %w", member, err)
			}
		}
	}

	step("Waiting for member-1 to serve Meridian's MemberNetworkPolicy (AgentConfig default's first wave installs it with the agent)")
	mnp := "crd/membernetworkpolicies.member.meridian.io"
	for _, args := range [][]string{{"wait", "--for=create", mnp, "--timeout=120s"}, {"wait", "--for=condition=Established", mnp, "--timeout=60s"}} {
		if err := kubectlTo(filepath.Join(kubeconfigs, "member-1.kubeconfig"), args...); err != nil {
			return fmt.Errorf("wait for MemberNetworkPolicy in member-1: %w", err)
		}
	}

	step("Applying a securityops Drop and an application Allow across both members (test/demo/policy.yaml)")
	if err := kubectl("apply", "-f", filepath.Join(root, "test", "demo", "policy.yaml")); err != nil {
		return err
	}
	step("Waiting for the policies to be in every member (Realized where the member's own implementation enforces the form; Pending where only Meridian's agents can)")
	fmt.Println("   member-1 serves Meridian's MemberNetworkPolicy (installed with the agent by AgentConfig default), the most")
	fmt.Println("   faithful form, which nothing but Meridian's agents enforce; member-2 gets the upstream ClusterNetworkPolicy")
	if err := showPolicies(ctx, bed, kubectl, "", demoPolicies...); err != nil {
		return err
	}

	web, err := firstPod(ctx, bed, "member-2", "demo", "web")
	if err != nil {
		return err
	}
	checkout, err := firstPod(ctx, bed, "member-1", "shop", "checkout")
	if err != nil {
		return err
	}
	args := []string{"meridian", "trace", "--from", "member-2/demo/" + web, "--to", "member-1/shop/" + checkout, "--port", "8080/TCP"}
	step("kubectl " + strings.Join(args, " ") + " (the Drop is decided in securityops, above the application Allow)")
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), args...)
	// kubectl finds the plugin bin/kubectl-meridian on PATH; the plugin reads the hub from KUBECONFIG.
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+hubKubeconfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl meridian trace: %w", err)
	}
	return nil
}

// demoPolicies are the policies of test/demo/policy.yaml.
var demoPolicies = []string{"demo-web-to-shop", "guard-checkout"}

// showPolicies waits until the hub reports each policy in every selected member either Realized
// or Pending for want of a Meridian agent's report (the demo's agents have no dataplane), then
// prints `kubectl get gnp -o wide` and each member's phase and message.
// With wantForm set, every member must hold them in that form (a form follows the member's CRDs).
func showPolicies(ctx context.Context, bed *testbed.Bed, kubectl func(args ...string) error, wantForm policyv1alpha1.Form, names ...string) error {
	err := waitFor(ctx, 120*time.Second, func() error {
		for _, name := range names {
			g := &policyv1alpha1.GlobalNetworkPolicy{}
			if err := bed.Hub.Client.Get(ctx, client.ObjectKey{Name: name}, g); err != nil {
				return err
			}
			if g.Status.ObservedGeneration != g.Generation || len(g.Status.Clusters) != len(bed.Members) {
				return fmt.Errorf("GlobalNetworkPolicy %s: status not reported for every member yet", name)
			}
			for _, c := range g.Status.Clusters {
				if wantForm != "" && c.Form != wantForm {
					return fmt.Errorf("GlobalNetworkPolicy %s in %s: form %s, waiting for %s", name, c.Cluster, c.Form, wantForm)
				}
				if c.Phase != policyv1alpha1.PhaseRealized && !compile.AwaitingAgents(c) {
					return fmt.Errorf("GlobalNetworkPolicy %s in %s: %s %s", name, c.Cluster, c.Phase, c.Message)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for the policies in every member: %w", err)
	}
	step("kubectl get gnp -o wide")
	if err := kubectl("get", "gnp", "-o", "wide"); err != nil {
		return err
	}
	for _, name := range names {
		step("kubectl get gnp " + name + " -o jsonpath='{.status.clusters}' (per member: form, phase, why)")
		if err := kubectl("get", "gnp", name, "-o", `jsonpath={range .status.clusters[*]}   {.cluster}: {.form}, {.enforcement}, {.phase}{" "}{.message}{"\n"}{end}`); err != nil {
			return err
		}
	}
	return nil
}

// firstPod names the first running pod with label app=<app> in a member's namespace.
func firstPod(ctx context.Context, bed *testbed.Bed, member, ns, app string) (string, error) {
	var name string
	err := waitFor(ctx, 60*time.Second, func() error {
		list := &corev1.PodList{}
		if err := bed.Member(member).Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
			return err
		}
		for _, p := range list.Items {
			if p.Status.PodIP != "" && p.DeletionTimestamp.IsZero() {
				name = p.Name
				return nil
			}
		}
		return errors.New("no running pod app=" + app + " in " + member + "/" + ns)
	})
	return name, err
}
