package gitops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/meridian-io/meridian/test/testbed"
)

var _ = Describe("kubectl manners", func() {
	It("lists every Meridian kind under `kubectl get meridian`, each with short names, printer columns and a row in the kinds table", func(ctx SpecContext) {
		out, err := kubectl(ctx, "api-resources", "--categories=meridian", "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		inCategory := strings.Fields(out)
		slices.Sort(inCategory)
		var tested []string
		for _, k := range kinds {
			tested = append(tested, k.resource)
		}
		slices.Sort(tested)
		Expect(inCategory).To(Equal(tested),
			"the kinds in the meridian category and the kinds this suite checks differ: give a new kind the category and an entry in kinds (docs/gitops.md, Adding a kind)")

		for _, resource := range inCategory {
			out, err := kubectl(ctx, "get", "crd", resource, "-o", "json")
			Expect(err).NotTo(HaveOccurred())
			crd := &apiextensionsv1.CustomResourceDefinition{}
			Expect(json.Unmarshal([]byte(out), crd)).To(Succeed())
			Expect(crd.Spec.Names.ShortNames).NotTo(BeEmpty(), "%s has no short name", resource)
			for _, v := range crd.Spec.Versions {
				var names []string
				for _, c := range v.AdditionalPrinterColumns {
					if c.Priority == 0 {
						names = append(names, c.Name)
					}
				}
				Expect(names).To(ContainElement("Age"), "%s %s", resource, v.Name)
				Expect(len(names)).To(BeNumerically(">=", 3), "%s %s prints only %v: add the columns a user checks first", resource, v.Name, names)
			}
		}

		By("kubectl get meridian listing objects of several kinds at once")
		out, err = kubectl(ctx, "get", "meridian", "-A", "-o", "name")
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.Fields(out)).To(ContainElements(
			"membercluster.fleet.meridian.io/"+memberName,
			"tier.policy.meridian.io/application", // a default tier, created by the manager
		))
	})
})

func kubectl(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"--kubeconfig", filepath.Join(bed.Dir(), "hub.kubeconfig")}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(testbed.BinDir(), "kubectl"), args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("kubectl %s: %w: %s", strings.Join(args[2:], " "), err, stderr)
	}
	return string(out), nil
}
