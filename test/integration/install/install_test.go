// Package install_test renders the one-line installer (dist/install.yaml, as `make build-installer`
// does) and has a real hub's apiserver accept it with a server-side dry run.
package install_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	install := filepath.Join(t.TempDir(), "install.yaml")
	render := exec.CommandContext(ctx, "go", "run", ".", "-kustomization", filepath.Join(root, "config", "default"), "-o", install)
	render.Dir = filepath.Join(root, "hack", "installer")
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the installer: %v\n%s", err, out)
	}
	objs := readObjects(t, install)

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
		apply := exec.CommandContext(ctx, filepath.Join(testbed.BinDir(), "kubectl"), "--kubeconfig", filepath.Join(bed.Dir(), "hub.kubeconfig"),
			"apply", "--server-side", "--dry-run=server", "--field-manager=meridian-install", "-f", install)
		out, err := apply.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --server-side --dry-run=server: %v\n%s", err, out)
		}
		// One line per object: kubectl reports every object the apiserver accepted.
		if n := strings.Count(string(out), "(server dry run)"); n != len(objs) {
			t.Errorf("the apiserver accepted %d objects, the installer has %d:\n%s", n, len(objs), out)
		}
	})
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
