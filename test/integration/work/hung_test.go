package work_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// A member whose apiserver hangs (SIGSTOP: TCP connections are accepted, nothing is answered)
// costs only its own workers: the others converge within the same bound as with every member
// healthy. A stopped apiserver (connection refused) fails fast and would prove nothing here.
var _ = Describe("ClusterWork isolation from a hung member", Serial, func() {
	const perMember = 10
	// bound is what new and changed Works may take to converge on a healthy member, loaded
	// machine included; the same bound holds with member-2 hung.
	const bound = 30 * time.Second

	// converge creates (or changes) perMember Works on every member and returns how long the
	// Works of live took to be applied.
	converge := func(name, value string, live []string, create bool) time.Duration {
		start := time.Now()
		for _, m := range members {
			if create {
				createWork(newWork(m, name+"-ns", namespace(name)))
			}
			for i := range perMember {
				w := fmt.Sprintf("%s-%d", name, i)
				if create {
					createWork(newWork(m, w, configMap(name, fmt.Sprintf("cm-%d", i), map[string]string{"v": value})))
					continue
				}
				updateWork(m, w, func(cw *fleetv1alpha1.ClusterWork) {
					cw.Spec.Objects = objects(configMap(name, fmt.Sprintf("cm-%d", i), map[string]string{"v": value}))
				})
			}
		}
		for _, m := range live {
			for i := range perMember {
				Eventually(func(g Gomega) {
					cm, err := memberCM(m, name, fmt.Sprintf("cm-%d", i))()
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(cm.Data).To(HaveKeyWithValue("v", value))
				}, bound, poll).Should(Succeed(), "member %s Work %d", m, i)
			}
		}
		return time.Since(start)
	}

	It("applies new and changed Works to member-1 and member-3 within the healthy bound while member-2 hangs, and member-2 catches up after Resume", func() {
		healthyName, hungName := uniqueName("healthy"), uniqueName("hung")
		healthy := converge(healthyName, "a", members, true)
		GinkgoWriter.Printf("all three members healthy: %d new Works per member applied in %s\n", perMember, healthy)

		hung := memberObj("member-2")
		Expect(hung.Hang()).To(Succeed())
		resumed := false
		DeferCleanup(func() {
			if !resumed {
				Expect(hung.Resume()).To(Succeed())
			}
		})
		live := []string{"member-1", "member-3"}
		created := converge(hungName, "a", live, true)
		GinkgoWriter.Printf("member-2 hung: %d new Works per member applied to member-1 and member-3 in %s (healthy: %s)\n", perMember, created, healthy)
		changed := converge(hungName, "b", live, false)
		GinkgoWriter.Printf("member-2 hung: %d changed Works per member applied to member-1 and member-3 in %s (healthy: %s)\n", perMember, changed, healthy)
		Expect(created).To(BeNumerically("<", bound))
		Expect(changed).To(BeNumerically("<", bound))

		By("resuming member-2: its Works catch up with the latest change")
		Expect(hung.Resume()).To(Succeed())
		resumed = true
		for i := range perMember {
			Eventually(func(g Gomega) {
				cm, err := memberCM("member-2", hungName, fmt.Sprintf("cm-%d", i))()
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cm.Data).To(HaveKeyWithValue("v", "b"))
			}, 2*bound, poll).Should(Succeed())
		}
	})
})
