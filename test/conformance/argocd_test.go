package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// healthTests is Argo CD's health_test.yaml format (resource_customizations/<group>/<Kind>/).
type healthTests struct {
	Tests []healthTest `json:"tests"`
}

type healthTest struct {
	HealthStatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"healthStatus"`
	InputPath string `json:"inputPath"`
}

type health struct{ status, message string }

// runHealth runs a health script as Argo CD runs a customization from argocd-cm without
// useOpenLibs: only the base, package and table libraries are open; string and math are not.
func runHealth(script string, obj *unstructured.Unstructured) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	status, ok := ret.RawGetString("status").(lua.LString)
	if !ok {
		return health{}, fmt.Errorf("the script returned no status string")
	}
	msg := ""
	if m, ok := ret.RawGetString("message").(lua.LString); ok {
		msg = string(m)
	}
	return health{status: string(status), message: msg}, nil
}

// toLua converts a decoded JSON value the way Argo CD hands objects to scripts: maps and lists
// become tables (lists 1-based), numbers Lua numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch t := v.(type) {
	case map[string]any:
		tbl := l.NewTable()
		for k, e := range t {
			tbl.RawSetString(k, toLua(l, e))
		}
		return tbl
	case []any:
		tbl := l.NewTable()
		for _, e := range t {
			tbl.Append(toLua(l, e))
		}
		return tbl
	case string:
		return lua.LString(t)
	case bool:
		return lua.LBool(t)
	case int64:
		return lua.LNumber(t)
	case float64:
		return lua.LNumber(t)
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("unexpected %T in object", v))
}

func TestArgoCDHealth(t *testing.T) {
	for _, k := range kindDirs(t) {
		t.Run(k.String(), func(t *testing.T) {
			script, err := os.ReadFile(filepath.Join(k.dir, "health.lua"))
			if err != nil {
				t.Fatalf("every kind needs a health check: %v", err)
			}
			if updateTestdata {
				writeHealthTests(t, k, string(script))
			}
			b, err := os.ReadFile(filepath.Join(k.dir, "health_test.yaml"))
			if err != nil {
				t.Fatalf("every kind needs health_test.yaml: %v", err)
			}
			var tests healthTests
			if err := yaml.UnmarshalStrict(b, &tests); err != nil {
				t.Fatalf("health_test.yaml: %v", err)
			}
			listed := map[string]bool{}
			for _, tc := range tests.Tests {
				listed[strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml")] = true
				obj := readObject(t, filepath.Join(k.dir, tc.InputPath))
				got, err := runHealth(string(script), obj)
				if err != nil {
					t.Errorf("%s: %v", tc.InputPath, err)
					continue
				}
				if got.status != tc.HealthStatus.Status || got.message != tc.HealthStatus.Message {
					t.Errorf("%s: health %s %q, health_test.yaml says %s %q", tc.InputPath, got.status, got.message, tc.HealthStatus.Status, tc.HealthStatus.Message)
				}
				if want := outcomeOf(t, strings.TrimSuffix(filepath.Base(tc.InputPath), ".yaml")).argocd; tc.HealthStatus.Status != want {
					t.Errorf("%s: health_test.yaml says %s, but the file's name promises %s", tc.InputPath, tc.HealthStatus.Status, want)
				}
			}
			for _, name := range testdataFiles(t, k) {
				if !listed[name] {
					t.Errorf("testdata/%s.yaml is not in health_test.yaml", name)
				}
			}

			// Built from the saved objects: what no controller run leaves lying around.
			for _, name := range testdataFiles(t, k) {
				obj := readObject(t, filepath.Join(k.dir, "testdata", name+".yaml"))
				unstructured.RemoveNestedField(obj.Object, "status")
				if got, err := runHealth(string(script), obj); err != nil || got.status != "Progressing" {
					t.Errorf("%s without status: health %v (%v), want Progressing", name, got, err)
				}
				obj = readObject(t, filepath.Join(k.dir, "testdata", name+".yaml"))
				obj.SetGeneration(obj.GetGeneration() + 1)
				if got, err := runHealth(string(script), obj); err != nil || got.status != "Progressing" {
					t.Errorf("%s with a spec the controller has not seen: health %v (%v), want Progressing", name, got, err)
				}
			}
		})
	}
}

// updateTestdata rewrites each kind's health_test.yaml from what its script says of its testdata,
// as test/integration/gitops rewrites the testdata: after a status change, run both with
// MERIDIAN_UPDATE_TESTDATA=1 and review the diff. A script whose health contradicts a file's name
// still fails.
var updateTestdata = os.Getenv("MERIDIAN_UPDATE_TESTDATA") == "1"

func writeHealthTests(t *testing.T, k kindDir, script string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("tests:\n")
	for _, name := range testdataFiles(t, k) {
		path := filepath.Join("testdata", name+".yaml")
		got, err := runHealth(script, readObject(t, filepath.Join(k.dir, path)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		fmt.Fprintf(&b, "- healthStatus:\n    status: %s\n    message: %s\n  inputPath: %s\n", got.status, yamlScalar(t, got.message), path)
	}
	if err := os.WriteFile(filepath.Join(k.dir, "health_test.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// yamlScalar writes s on one line as Argo CD's own files do: plain when YAML reads it back as
// the same string, else single-quoted.
func yamlScalar(t *testing.T, s string) string {
	t.Helper()
	var back struct{ V string }
	if err := yaml.Unmarshal([]byte("v: "+s), &back); err == nil && back.V == s && s != "" {
		return s
	}
	if strings.ContainsAny(s, "\n\r") {
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// The scripts must not lean on libraries argocd-cm does not open: prove the sandbox lacks them.
func TestHealthSandboxHasNoStringOrMath(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	for _, script := range []string{`return {status = string.upper("x")}`, `return {status = "" .. math.floor(1)}`} {
		if _, err := runHealth(script, obj); err == nil {
			t.Errorf("%q ran, but argocd-cm customizations have no string or math library", script)
		}
	}
	if got, err := runHealth(`local t = {} table.insert(t, "Healthy") for _, v in ipairs(t) do return {status = v} end`, obj); err != nil || got.status != "Healthy" {
		t.Errorf("base and table libraries: %v %v", got, err)
	}
}
