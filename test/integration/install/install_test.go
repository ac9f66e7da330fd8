// Package install_test renders the one-line installers (dist/install.yaml and
// dist/install-cert-manager.yaml, as `make build-installer` does) and has a real hub's apiserver
// accept them with a server-side dry run, then installs the first for real.
package install_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

func TestInstallerDryRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := testbed.RepoRoot()
	install := renderInstaller(ctx, t, "default")
	objs := readObjects(t, install)
	withCertManager := renderInstaller(ctx, t, "default-cert-manager")
	cmObjs := readObjects(t, withCertManager)

	t.Run("holds every hub CRD, the manager, RBAC and the webhook", func(t *testing.T) {
		kinds := map[string][]string{}
		for _, o := range objs {
			kinds[o.GetKind()] = append(kinds[o.GetKind()], o.GetName())
		}
		bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, b := range bases {
			// <group>_<plural>.yaml is the CRD <plural>.<group>.
			g, p, _ := strings.Cut(strings.TrimSuffix(filepath.Base(b), ".yaml"), "_")
			want = append(want, p+"."+g)
		}
		got := kinds["CustomResourceDefinition"]
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("CRDs %v, want every file of config/crd/bases %v (list new ones in config/crd/kustomization.yaml)", got, want)
		}
		for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service", "Secret", "ValidatingWebhookConfiguration"} {
			if len(kinds[k]) == 0 {
				t.Errorf("no %s in the installer", k)
			}
		}
		if objs[0].GetKind() != "Namespace" {
			t.Errorf("the installer starts with a %s, not the Namespace", objs[0].GetKind())
		}
	})

	t.Run("is accepted by a hub's apiserver with a server-side dry run", func(t *testing.T) {
		scheme, err := controllers.NewScheme()
		if err != nil {
			t.Fatal(err)
		}
		bed, err := testbed.Start(ctx, testbed.Options{Scheme: scheme})
		if bed != nil {
			defer func() {
				if err := bed.Stop(); err != nil {
					t.Error(err)
				}
			}()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := bed.WriteKubeconfigs(bed.Dir()); err != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(bed.Dir(), "hub.kubeconfig")
		dryRun(ctx, t, kubeconfig, install, len(objs))

		t.Run("and so is the cert-manager installer, once cert-manager's CRDs are there", func(t *testing.T) {
			// Without cert-manager the apiserver knows no Certificate: the installer needs it.
			out, err := kubectl(ctx, kubeconfig, "apply", "--server-side", "--dry-run=server", "--field-manager=meridian-install", "-f", withCertManager)
			if err == nil || !strings.Contains(out, `no matches for kind "Certificate" in version "cert-manager.io/v1"`) {
				t.Errorf("dry run of the cert-manager installer without cert-manager: %v, want no Certificate kind:\n%s", err, out)
			}
			dir, err := testbed.ModuleDir("github.com/cert-manager/cert-manager@" + certManagerVersion)
			if err != nil {
				t.Fatal(err)
			}
			crds := filepath.Join(dir, "deploy", "crds")
			for _, args := range [][]string{
				{"apply", "--server-side", "--field-manager=cert-manager-install", "-f", crds},
				{"wait", "--for=condition=Established", "--timeout=2m", "crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io"},
			} {
				if out, err := kubectl(ctx, kubeconfig, args...); err != nil {
					t.Fatalf("installing cert-manager %s's CRDs: kubectl %v: %v\n%s", certManagerVersion, args, err, out)
				}
			}
			dryRun(ctx, t, kubeconfig, withCertManager, len(cmObjs))
		})
	})
}

// certManagerVersion is the cert-manager release whose CRDs (deploy/crds of its Go module, from
// the module proxy) the cert-manager installer is checked against.
const certManagerVersion = "v1.21.2"

// The cert-manager installer is config/default with the certificate issued by cert-manager: every
// name that ties the Certificate, its Secret, the manager and the webhook configuration together
// must agree, as nothing but cert-manager running would show it otherwise.
func TestCertManagerInstaller(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	byKind := map[string][]*unstructured.Unstructured{}
	for _, o := range readObjects(t, renderInstaller(ctx, t, "default-cert-manager")) {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
	}
	one := func(kind string) *unstructured.Unstructured {
		t.Helper()
		if len(byKind[kind]) != 1 {
			t.Fatalf("%d objects of kind %s in the cert-manager installer, want 1", len(byKind[kind]), kind)
		}
		return byKind[kind][0]
	}
	cert, issuer, deploy, vwc := one("Certificate"), one("Issuer"), one("Deployment"), one("ValidatingWebhookConfiguration")

	if got, want := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"], cert.GetNamespace()+"/"+cert.GetName(); got != want {
		t.Errorf("the webhook configuration's cert-manager.io/inject-ca-from is %q, want the Certificate %q", got, want)
	}
	if ref, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name"); ref != issuer.GetName() {
		t.Errorf("the Certificate's issuer is %q, the installer's Issuer %q", ref, issuer.GetName())
	}
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	var mounted []string
	volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	for _, v := range volumes {
		if name, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName"); name != "" {
			mounted = append(mounted, name)
		}
	}
	if !slices.Contains(mounted, secret) {
		t.Errorf("the manager mounts the Secrets %v, not the Certificate's %q", mounted, secret)
	}
	for _, s := range byKind["Secret"] {
		if s.GetName() == secret {
			t.Errorf("the installer carries the Secret %s: it is cert-manager's to write", secret)
		}
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		a, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
		if slices.Contains(a, "--webhook-cert-rotation") {
			t.Errorf("the manager rotates its own certificate (--webhook-cert-rotation) beside cert-manager")
		}
	}
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	webhooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	for _, w := range webhooks {
		svc, _, _ := unstructured.NestedStringMap(w.(map[string]any), "clientConfig", "service")
		if host := svc["name"] + "." + svc["namespace"] + ".svc"; !slices.Contains(dnsNames, host) {
			t.Errorf("webhook %v calls %s, which the Certificate's dnsNames %v do not cover", w.(map[string]any)["name"], host, dnsNames)
		}
	}
	for _, crd := range byKind["CustomResourceDefinition"] {
		if strategy, _, _ := unstructured.NestedString(crd.Object, "spec", "conversion", "strategy"); strategy == "Webhook" &&
			crd.GetAnnotations()["cert-manager.io/inject-ca-from"] == "" {
			t.Errorf("CRD %s converts with a webhook but has no cert-manager.io/inject-ca-from", crd.GetName())
		}
	}
}

// renderInstaller renders config/<kustomization> with hack/installer, as `make build-installer` does.
func renderInstaller(ctx context.Context, t *testing.T, kustomization string) string {
	t.Helper()
	root := testbed.RepoRoot()
	out := filepath.Join(t.TempDir(), kustomization+".yaml")
	render := exec.CommandContext(ctx, "go", "run", ".", "-kustomization", filepath.Join(root, "config", kustomization), "-o", out)
	render.Dir = filepath.Join(root, "hack", "installer")
	if b, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the installer of config/%s: %v\n%s", kustomization, err, b)
	}
	return out
}

// dryRun has the apiserver accept every object of the installer with a server-side dry run.
func dryRun(ctx context.Context, t *testing.T, kubeconfig, install string, objects int) {
	t.Helper()
	out, err := kubectl(ctx, kubeconfig, "apply", "--server-side", "--dry-run=server", "--field-manager=meridian-install", "-f", install)
	if err != nil {
		t.Fatalf("kubectl apply --server-side --dry-run=server -f %s: %v\n%s", filepath.Base(install), err, out)
	}
	// One line per object: kubectl reports every object the apiserver accepted.
	if n := strings.Count(out, "(server dry run)"); n != objects {
		t.Errorf("the apiserver accepted %d objects of %s, the installer has %d:\n%s", n, filepath.Base(install), objects, out)
	}
}

func kubectl(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(testbed.BinDir(), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		t.Fatal("the installer is empty")
	}
	return out
}
