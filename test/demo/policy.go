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

	"github.com/meridian-io/meridian/internal/policy/translate/antrea"
	"github.com/meridian-io/meridian/test/testbed"
)

// policyDemo is the GlobalNetworkPolicy step: it gives the members policy APIs (Antrea's CRDs in
// member-1, network-policy-api v0.3.0's ClusterNetworkPolicy in member-2), applies a Tier-ordered
// pair of policies across both (a securityops Drop above an application Allow), waits until they
// are Ready, prints them, and traces one connection with the kubectl plugin.
func policyDemo(ctx context.Context, bed *testbed.Bed, root, bin, out, hubKubeconfig string, kubectl func(args ...string) error) error {
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
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", kc}, args...)...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("install policy CRDs in %s: %w", member, err)
			}
		}
	}

	step("Applying a securityops Drop and an application Allow across both members (test/demo/policy.yaml)")
	if err := kubectl("apply", "-f", filepath.Join(root, "test", "demo", "policy.yaml")); err != nil {
		return err
	}
	step("Waiting for both GlobalNetworkPolicies to be Ready")
	if err := kubectl("wait", "--for=condition=Ready", "globalnetworkpolicies/guard-checkout", "globalnetworkpolicies/demo-web-to-shop", "--timeout=120s"); err != nil {
		return err
	}
	step("kubectl get gnp -o wide")
	if err := kubectl("get", "gnp", "-o", "wide"); err != nil {
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
