package gitops_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/describe"
	"github.com/meridian-io/meridian/test/testbed"
)

// checkDescribe runs `kubectl meridian describe`'s view over the object as the controllers left
// it on the hub: the view shows the object's own conditions, every cluster its status names with
// the state there, and the ClusterWorks behind it. With MERIDIAN_UPDATE_TESTDATA=1 it saves what it
// read under internal/describe/testdata, where the package's golden test prints it.
func checkDescribe(ctx SpecContext, k kind, st state, live *unstructured.Unstructured) {
	GinkgoHelper()
	dk, err := describe.ParseKind(k.gvk.Kind)
	if err != nil {
		return // a kind describe does not cover (ClusterWork, Tier)
	}
	var report *describe.Report
	Eventually(func(g Gomega) {
		report, err = describe.Run(ctx, bed.Hub.Client, dk, live.GetName())
		g.Expect(err).NotTo(HaveOccurred())
		live = getObject(g, k, client.ObjectKeyFromObject(live))
		g.Expect(conditionsOf(report)).To(Equal(conditionSet(live)), "describe shows other conditions than the object's")
		// The Works' own status may lag the object's by a pass of the syncer.
		for _, c := range report.Clusters {
			for _, w := range c.Works {
				g.Expect(w.Conditions).NotTo(BeEmpty(), "ClusterWork %s/%s has no status yet", w.Namespace, w.Name)
			}
		}
	}, timeout, poll).Should(Succeed())

	clusters := map[string]describe.Cluster{}
	for _, c := range report.Clusters {
		clusters[c.Name] = c
	}
	statusClusters, _, _ := unstructured.NestedSlice(live.Object, "status", "clusters")
	for _, sc := range statusClusters {
		m := sc.(map[string]any)
		name := m["cluster"].(string)
		Expect(clusters).To(HaveKey(name), "describe leaves out cluster %s of the status", name)
		for _, field := range []string{"phase", "state"} {
			if v, ok := m[field]; ok {
				Expect(clusters[name].State).To(Equal(v), "cluster %s", name)
			}
		}
		if rules, ok := m["rules"].([]any); ok {
			Expect(clusters[name].Rules).To(HaveLen(len(rules)), "cluster %s: the rules not held exactly", name)
		}
	}
	if k.gvk.Kind == "MemberCluster" {
		Expect(report.Clusters).To(HaveLen(1))
		reach := findCondition(live, fleetv1alpha1.ReachableCondition)
		if reach != nil && reach["status"] == "True" {
			Expect(report.Clusters[0].State).To(Equal("Reachable"))
		}
	}
	if wantStatus(st.name) == status.CurrentStatus && k.gvk.Kind != "MemberCluster" {
		for _, c := range report.Clusters {
			Expect(c.Works).NotTo(BeEmpty(), "describe shows no ClusterWork behind %s in cluster %s", live.GetName(), c.Name)
		}
	}

	var text bytes.Buffer
	Expect(report.Print(&text)).To(Succeed())
	Expect(text.String()).To(HavePrefix(k.gvk.Kind + "/" + live.GetName() + "\n"))
	for name := range clusters {
		Expect(text.String()).To(ContainSubstring(name))
	}
	b, err := json.Marshal(report)
	Expect(err).NotTo(HaveOccurred())
	back := &describe.Report{}
	Expect(json.Unmarshal(b, back)).To(Succeed())
	Expect(back.Name).To(Equal(live.GetName()))

	if updateTestdata {
		saveDescribeInputs(ctx, k, st, live, report)
	}
}

func conditionsOf(r *describe.Report) map[string]string {
	out := map[string]string{}
	for _, c := range r.Conditions {
		out[c.Type] = string(c.Status) + "/" + c.Reason
	}
	return out
}

// saveDescribeInputs writes the object and the ClusterWorks describe read, sanitized as the
// config/argocd testdata are, to internal/describe/testdata/<Kind>-<state>.yaml.
func saveDescribeInputs(ctx SpecContext, k kind, st state, live *unstructured.Unstructured, r *describe.Report) {
	GinkgoHelper()
	objs := []*unstructured.Unstructured{sanitize(live)}
	var works []describe.Work
	for _, c := range r.Clusters {
		works = append(works, c.Works...)
	}
	works = append(works, r.Works...)
	for _, w := range works {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(fleetv1alpha1.GroupVersion.WithKind("ClusterWork"))
		Expect(bed.Hub.Client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: w.Name}, u)).To(Succeed())
		// The objects' manifests are not what describe shows, and can be large (an agent's RBAC).
		unstructured.RemoveNestedField(u.Object, "spec", "objects")
		objs = append(objs, sanitize(u))
	}
	var out bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		Expect(err).NotTo(HaveOccurred())
		out.WriteString("---\n")
		out.Write(b)
	}
	path := filepath.Join(testbed.RepoRoot(), "internal", "describe", "testdata", k.gvk.Kind+"-"+st.name+".yaml")
	Expect(os.MkdirAll(filepath.Dir(path), 0o755)).To(Succeed())
	Expect(os.WriteFile(path, out.Bytes(), 0o644)).To(Succeed())
}
