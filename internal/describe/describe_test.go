package describe

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"
)

// The testdata are what the real controllers wrote on a real hub: <Kind>-<state>.yaml holds the
// object and ClusterWorks behind it. They were taken from config/argocd's testdata (member-1's
// with the ClusterWorks saved there, which live in its hub namespace); the gitops suite, run with
// MERIDIAN_UPDATE_TESTDATA=1, rewrites them with every object's own ClusterWorks. Each is printed
// and compared with <Kind>-<state>.txt (rewritten with MERIDIAN_UPDATE_TESTDATA=1).
func TestDescribeGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata: run the gitops suite with MERIDIAN_UPDATE_TESTDATA=1")
	}
	seen := map[string]bool{}
	for _, in := range inputs {
		base := strings.TrimSuffix(filepath.Base(in), ".yaml")
		kindName, _, _ := strings.Cut(base, "-")
		seen[kindName] = true
		t.Run(base, func(t *testing.T) {
			objs := load(t, in)
			hub := fakeHub(t, objs)
			kind, err := ParseKind(kindName)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(context.Background(), hub, kind, objs[0].GetName())
			if err != nil {
				t.Fatal(err)
			}
			// Every ClusterWork of the testdata was read by describe when saved: it must show.
			shown := 0
			for _, c := range r.Clusters {
				shown += len(c.Works)
			}
			if shown+len(r.Works) != len(objs)-1 {
				t.Errorf("describe shows %d ClusterWorks, the testdata hold %d", shown+len(r.Works), len(objs)-1)
			}
			var text bytes.Buffer
			if err := r.Print(&text); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(in, ".yaml") + ".txt"
			if os.Getenv("MERIDIAN_UPDATE_TESTDATA") == "1" {
				if err := os.WriteFile(golden, text.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v: run with MERIDIAN_UPDATE_TESTDATA=1 and review the file", err)
			}
			if text.String() != string(want) {
				t.Errorf("describe prints, for %s:\n%s\nwant (%s):\n%s", in, text.String(), golden, want)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Error(err)
			}
		})
	}
	for _, k := range kinds {
		if !seen[k.Name] {
			t.Errorf("no testdata for %s", k.Name)
		}
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]string{
		"gnp":                 "GlobalNetworkPolicy",
		"GlobalNetworkPolicy": "GlobalNetworkPolicy",
		"globalnetworkpolicies.policy.meridian.io": "GlobalNetworkPolicy",
		"globalnetworkpolicy.policy.meridian.io":   "GlobalNetworkPolicy",
		"mc":                                       "MemberCluster",
		"memberclusters":                           "MemberCluster",
		"ac":                                       "AgentConfig",
		"AGENTCONFIG":                              "AgentConfig",
		"gns":                                      "GlobalNamespace",
		"globalnamespace.networking.meridian.io":   "GlobalNamespace",
	} {
		k, err := ParseKind(in)
		if err != nil || k.Name != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %s", in, k.Name, err, want)
		}
	}
	for _, in := range []string{"clusterwork", "pod", "", "gnp.fleet.meridian.io"} {
		if _, err := ParseKind(in); err == nil || !strings.Contains(err.Error(), "GlobalNetworkPolicy (gnp)") {
			t.Errorf("ParseKind(%q): %v, want an error that lists the kinds", in, err)
		}
	}
}

func TestRunMissingObject(t *testing.T) {
	hub := fakeHub(t, nil)
	kind, _ := ParseKind("gns")
	_, err := Run(context.Background(), hub, kind, "nope")
	if err == nil || !strings.Contains(err.Error(), `get GlobalNamespace nope from the hub`) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("describe of a missing GlobalNamespace: %v", err)
	}
}

// load reads the objects of a testdata file, one YAML document each, as the gitops suite writes them.
func load(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(b), "---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil { // through JSON: integers stay int64
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return out
}

func fakeHub(t *testing.T, objs []*unstructured.Unstructured) client.Reader {
	t.Helper()
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(scheme)
	for _, o := range objs {
		typed, err := scheme.New(o.GroupVersionKind())
		if err != nil {
			t.Fatal(err)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, typed); err != nil {
			t.Fatal(err)
		}
		b = b.WithObjects(typed.(client.Object))
	}
	return b.Build()
}
