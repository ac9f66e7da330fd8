package gitops_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/meridian-io/meridian/test/testbed"
)

const (
	timeout = 60 * time.Second
	poll    = 200 * time.Millisecond
)

// updateTestdata rewrites config/argocd/<group>/<Kind>/testdata from what the controllers produce.
var updateTestdata = os.Getenv("MERIDIAN_UPDATE_TESTDATA") == "1"

var _ = Describe("Every kind's status", func() {
	for _, k := range kinds {
		Describe(k.gvk.Kind, func() {
			for _, st := range k.states {
				want := wantStatus(st.name)
				It(fmt.Sprintf("reads as kstatus %s and answers kubectl wait when %s", want, st), func(ctx SpecContext) {
					obj := st.create(ctx)
					key := client.ObjectKeyFromObject(obj)
					var u *unstructured.Unstructured
					Eventually(func(g Gomega) {
						u = getObject(g, k, key)
						gen, _, _ := unstructured.NestedInt64(u.Object, "metadata", "generation")
						observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
						g.Expect(observed).To(Equal(gen), "status describes an older generation")
						ready := findCondition(u, "Ready")
						g.Expect(ready).NotTo(BeNil(), "no Ready condition")
						g.Expect(ready["reason"]).To(Equal(st.readyReason), "Ready condition: %v", ready)
					}, timeout, poll).Should(Succeed())

					res, err := status.Compute(u)
					Expect(err).NotTo(HaveOccurred())
					if st.knownIssue != nil {
						Expect(res.Status).To(Equal(st.knownIssue.got),
							"%s %s: kstatus is no longer %s; if it is now %s, remove the known issue", k.gvk.Kind, st.name, st.knownIssue.got, want)
						AddReportEntry("known issue", fmt.Sprintf("%s %s: kstatus %s, want %s: %s", k.gvk.Kind, st.name, res.Status, want, st.knownIssue.why))
					} else {
						Expect(res.Status).To(Equal(want), "kstatus message: %s", res.Message)
					}

					checkTestdata(k, st, u)
					checkDescribe(ctx, k, st, u)

					By("kubectl wait reading the Ready condition")
					name := k.resource + "/" + key.Name
					if want == status.CurrentStatus {
						Expect(kubectlWait(ctx, key.Namespace, name, "--for=condition=Ready")).To(Succeed())
					} else {
						Expect(kubectlWait(ctx, key.Namespace, name, "--for=condition=Ready=false")).To(Succeed())
					}
				}, SpecTimeout(3*time.Minute))
			}
		})
	}
})

// wantStatus is the kstatus a state's name promises.
func wantStatus(name string) status.Status {
	switch {
	case strings.HasPrefix(name, "ready"):
		return status.CurrentStatus
	case strings.HasPrefix(name, "progressing"):
		return status.InProgressStatus
	case strings.HasPrefix(name, "stalled"):
		return status.FailedStatus
	case strings.HasPrefix(name, "suspended"):
		// kstatus has no paused state: a paused rollout is work not done (Reconciling=True).
		return status.InProgressStatus
	}
	panic("state names start with ready, progressing, stalled or suspended: " + name)
}

func getObject(g Gomega, k kind, key client.ObjectKey) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.gvk)
	g.Expect(bed.Hub.Client.Get(context.Background(), key, u)).To(Succeed())
	return u
}

func findCondition(u *unstructured.Unstructured, t string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == t {
			return m
		}
	}
	return nil
}

func kubectlWait(ctx context.Context, namespace, name, cond string) error {
	args := []string{"--kubeconfig", filepath.Join(bed.Dir(), "hub.kubeconfig"), "wait", cond, name, "--timeout=60s"}
	if namespace != "" {
		args = append(args, "-n", namespace)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(testbed.BinDir(), "kubectl"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args[2:], " "), err, out)
	}
	return nil
}

func testdataPath(k kind, st state) string {
	return filepath.Join(testbed.RepoRoot(), "config", "argocd", k.gvk.Group, k.gvk.Kind, "testdata", st.name+".yaml")
}

// checkTestdata saves the object (MERIDIAN_UPDATE_TESTDATA=1) or checks that the saved one still
// says what the controller says: the same conditions (type, status, reason) and kstatus.
func checkTestdata(k kind, st state, live *unstructured.Unstructured) {
	GinkgoHelper()
	path := testdataPath(k, st)
	if updateTestdata {
		b, err := yaml.Marshal(sanitize(live).Object)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
		Expect(os.WriteFile(path, b, 0o644)).To(Succeed())
		return
	}
	b, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred(), "no testdata for %s %s: run this suite with MERIDIAN_UPDATE_TESTDATA=1", k.gvk.Kind, st.name)
	j, err := yaml.YAMLToJSON(b)
	Expect(err).NotTo(HaveOccurred())
	saved := &unstructured.Unstructured{}
	Expect(saved.UnmarshalJSON(j)).To(Succeed()) // through JSON: integers stay int64

	Expect(saved.GroupVersionKind()).To(Equal(k.gvk))
	Expect(conditionSet(saved)).To(Equal(conditionSet(live)),
		"%s no longer matches what the controller writes: rerun with MERIDIAN_UPDATE_TESTDATA=1 and review the diff", path)
	savedRes, err := status.Compute(saved)
	Expect(err).NotTo(HaveOccurred())
	liveRes, err := status.Compute(live)
	Expect(err).NotTo(HaveOccurred())
	Expect(savedRes.Status).To(Equal(liveRes.Status), "%s: kstatus differs from the live object's", path)
}

func conditionSet(u *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		out[fmt.Sprint(m["type"])] = fmt.Sprintf("%v/%v", m["status"], m["reason"])
	}
	return out
}

var (
	loopbackPort = regexp.MustCompile(`127\.0\.0\.1:\d{2,5}`)
	timestamp    = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$`)
)

// sanitize drops what is particular to one run: server-set identity, managed fields, times and
// the test bed's random ports.
func sanitize(in *unstructured.Unstructured) *unstructured.Unstructured {
	u := in.DeepCopy()
	for _, f := range []string{"managedFields", "uid", "resourceVersion", "creationTimestamp"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	u.Object = scrub(u.Object).(map[string]any)
	return u
}

func scrub(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = scrub(e)
		}
	case []any:
		for i, e := range t {
			t[i] = scrub(e)
		}
	case string:
		if timestamp.MatchString(t) {
			return "2026-01-01T00:00:00Z"
		}
		return loopbackPort.ReplaceAllString(t, "127.0.0.1:6443")
	}
	return v
}
