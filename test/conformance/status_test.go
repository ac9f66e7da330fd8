package conformance

import (
	"context"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fluxcd/pkg/runtime/conditions/check"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// negativePolarity lists, per kind, the conditions that are abnormal when True, for Flux's
// checker. Reconciling and Stalled are negative for every kind.
var negativePolarity = map[string][]string{
	"fleet.meridian.io/ClusterWork": {"Degraded"},
	"fleet.meridian.io/AgentConfig": {"Degraded"},
}

// knownIssues are the ways a kind falls short today, asserted exactly so that a fix (or a new
// shortfall) fails the test until this table says so. Keyed by <group>/<Kind> or
// <group>/<Kind>/<testdata name>. Each is reported in docs/gitops.md.
var knownIssues = map[string]knownIssue{}

type knownIssue struct {
	// kstatus is what kstatus computes instead of the file name's promise.
	kstatus string
	// flux are the Flux check failures the kind's objects show.
	flux []string
}

// withConditions lets Flux's checker read an unstructured object's conditions.
type withConditions struct {
	*unstructured.Unstructured
	conditions []metav1.Condition
}

func (o withConditions) GetConditions() []metav1.Condition  { return o.conditions }
func (o withConditions) SetConditions(c []metav1.Condition) { o.conditions = c }

func TestStatusConventions(t *testing.T) {
	for _, k := range kindDirs(t) {
		for _, name := range testdataFiles(t, k) {
			t.Run(k.String()+"/"+name, func(t *testing.T) {
				obj := readObject(t, filepath.Join(k.dir, "testdata", name+".yaml"))
				want := outcomeOf(t, name)
				issue := knownIssues[k.String()+"/"+name]
				if i, ok := knownIssues[k.String()]; ok {
					issue.flux = i.flux
				}

				res, err := status.Compute(obj)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case issue.kstatus != "":
					if string(res.Status) != issue.kstatus {
						t.Errorf("kstatus %s (%s); the known issue says %s, the file name promises %s: update knownIssues", res.Status, res.Message, issue.kstatus, want.kstatus)
					}
				case want.kstatus != "" && string(res.Status) != want.kstatus:
					t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, want.kstatus)
				}

				var conds []metav1.Condition
				raw, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
				for _, c := range raw {
					var cond metav1.Condition
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(c.(map[string]any), &cond); err != nil {
						t.Fatal(err)
					}
					conds = append(conds, cond)
				}
				// A settled object (ready or stalled) gets every check; one mid-way the checks
				// Flux applies to work in progress.
				var checker *check.Checker
				if want.argocd == "Progressing" {
					checker = check.NewInProgressChecker(nil)
				} else {
					checker = check.NewChecker(nil, &check.Conditions{
						NegativePolarity: append([]string{"Stalled", "Reconciling"}, negativePolarity[k.String()]...),
					})
				}
				checker.DisableFetch = true
				fail, warn := checker.Check(context.Background(), withConditions{obj, conds})
				if warn != nil {
					t.Logf("Flux warnings: %v", warn)
				}
				if got, wantFails := messages(fail), append([]string(nil), issue.flux...); !equal(got, wantFails) {
					t.Errorf("Flux check failures %q, want %q", got, wantFails)
				}
			})
		}
	}
}

func messages(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if agg, ok := err.(kerrors.Aggregate); ok {
		for _, e := range agg.Errors() {
			out = append(out, e.Error())
		}
	} else {
		out = append(out, err.Error())
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	sort.Strings(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
