package conformance

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// argocdDir holds one folder per kind, <group>/<Kind>, laid out as Argo CD's
// resource_customizations: health.lua, health_test.yaml, testdata/*.yaml.
var argocdDir = filepath.Join("..", "..", "config", "argocd")

type kindDir struct {
	group, kind, dir string
}

func (k kindDir) String() string { return k.group + "/" + k.kind }

// kindDirs finds every kind folder, so that a new kind is checked as soon as its folder exists.
func kindDirs(t *testing.T) []kindDir {
	t.Helper()
	groups, err := os.ReadDir(argocdDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []kindDir
	for _, g := range groups {
		if !g.IsDir() {
			continue
		}
		kinds, err := os.ReadDir(filepath.Join(argocdDir, g.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kinds {
			if k.IsDir() {
				out = append(out, kindDir{group: g.Name(), kind: k.Name(), dir: filepath.Join(argocdDir, g.Name(), k.Name())})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no kind folders under %s", argocdDir)
	}
	return out
}

// testdataFiles lists a kind's saved objects by name (without .yaml).
func testdataFiles(t *testing.T, k kindDir) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k.dir, "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("%s has no testdata: run test/integration/gitops with MERIDIAN_UPDATE_TESTDATA=1", k)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".yaml"))
	}
	sort.Strings(names)
	return names
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, so that integers stay int64 as the apiserver's client hands them over.
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

// outcome is what every tool should read from a saved object, by the prefix of its file name.
type outcome struct {
	kstatus, argocd string
}

func outcomeOf(t *testing.T, name string) outcome {
	t.Helper()
	switch {
	case strings.HasPrefix(name, "ready"):
		return outcome{kstatus: "Current", argocd: "Healthy"}
	case strings.HasPrefix(name, "progressing"):
		return outcome{kstatus: "InProgress", argocd: "Progressing"}
	case strings.HasPrefix(name, "stalled"):
		return outcome{kstatus: "Failed", argocd: "Degraded"}
	case strings.HasPrefix(name, "suspended"):
		// kstatus has no paused state: a paused object reads as its conditions say.
		return outcome{argocd: "Suspended"}
	}
	t.Fatalf("testdata %s: names start with ready, progressing, stalled or suspended", name)
	return outcome{}
}
