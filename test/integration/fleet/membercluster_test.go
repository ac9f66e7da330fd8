package fleet_test

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/names"
	"github.com/meridian-io/meridian/test/testbed"
)

const (
	probeInterval = 1
	probeTimeout  = 1
	// failureThreshold is the API's default: probes that must fail in a row.
	failureThreshold = 3
	// bound is how long the probes may take to see a change: the threshold times one interval
	// plus the timeout, plus slack for a loaded 2-core machine.
	bound = failureThreshold*(probeInterval+probeTimeout)*time.Second + 8*time.Second
)

func memberFromSecret(name, secretName string) *fleetv1alpha1.MemberCluster {
	return &fleetv1alpha1.MemberCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fleetv1alpha1.MemberClusterSpec{
			KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: testbed.KubeconfigSecretNamespace, Name: secretName},
			Probe:               fleetv1alpha1.ProbeSettings{IntervalSeconds: probeInterval, TimeoutSeconds: probeTimeout},
		},
	}
}

func condition(name, condType string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		m := &fleetv1alpha1.MemberCluster{}
		g.Expect(bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: name}, m)).To(Succeed())
		c := meta.FindStatusCondition(m.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), "MemberCluster %s has no %s condition yet", name, condType)
		return c
	}
}

func haveStatus(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(
		HaveField("Status", status),
		HaveField("Reason", reason),
	)
}

func create(obj client.Object) {
	ExpectWithOffset(1, bed.Hub.Client.Create(ctx(), obj)).To(Succeed())
	DeferCleanup(func() { _ = client.IgnoreNotFound(bed.Hub.Client.Delete(ctx(), obj)) })
}

var _ = Describe("MemberCluster", func() {
	It("connects through a kubeconfig Secret and reports version, nodes and its hub namespace", func() {
		create(memberFromSecret("member-1", testbed.KubeconfigSecretName("member-1")))
		Eventually(condition("member-1", fleetv1alpha1.ReadyCondition), bound, 200*time.Millisecond).
			Should(haveStatus(metav1.ConditionTrue, fleetv1alpha1.MemberReadyReason))

		m := &fleetv1alpha1.MemberCluster{}
		Expect(bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: "member-1"}, m)).To(Succeed())
		Expect(m.Status.KubernetesVersion).To(HavePrefix("v1.36."))
		Expect(m.Status.Nodes).To(Equal(&fleetv1alpha1.NodeSummary{Total: 0, Ready: 0, Summary: "0/0"}))
		Expect(m.Status.ObservedGeneration).To(Equal(m.Generation))
		Expect(m.Status.LastProbeTime).NotTo(BeNil())
		Expect(m.Status.Namespace).To(Equal("meridian-member-member-1"))
		Expect(meta.FindStatusCondition(m.Status.Conditions, fleetv1alpha1.ReachableCondition).Status).To(Equal(metav1.ConditionTrue))

		ns := &corev1.Namespace{}
		Expect(bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: "meridian-member-member-1"}, ns)).To(Succeed())
		Expect(metav1.IsControlledBy(ns, m)).To(BeTrue(), "the hub namespace is owned by its MemberCluster")
	})

	It("counts the member's nodes and their readiness", func() {
		member := bed.Member("member-3")
		for i, ready := range []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse} {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)}}
			Expect(member.Client.Create(ctx(), node)).To(Succeed())
			node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
			Expect(member.Client.Status().Update(ctx(), node)).To(Succeed())
			DeferCleanup(func() { _ = member.Client.Delete(ctx(), node) })
		}
		create(memberFromSecret("member-3", testbed.KubeconfigSecretName("member-3")))
		Eventually(func(g Gomega) *fleetv1alpha1.NodeSummary {
			m := &fleetv1alpha1.MemberCluster{}
			g.Expect(bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: "member-3"}, m)).To(Succeed())
			return m.Status.Nodes
		}, bound, 200*time.Millisecond).Should(Equal(&fleetv1alpha1.NodeSummary{Total: 2, Ready: 1, Summary: "1/2"}))
	})

	It("reports a broken kubeconfig as InvalidKubeconfig and reconnects when the Secret is fixed", func() {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: "broken-kubeconfig"},
			Data:       map[string][]byte{"value": []byte("apiVersion: v1\nkind: Config\nclusters: [ {name: x, cluster: {server: 'https://")},
		}
		create(secret)
		create(memberFromSecret("broken", "broken-kubeconfig"))
		Eventually(condition("broken", fleetv1alpha1.ReachableCondition), bound, 200*time.Millisecond).
			Should(And(haveStatus(metav1.ConditionFalse, fleetv1alpha1.InvalidKubeconfigReason),
				HaveField("Message", ContainSubstring("meridian-system/broken-kubeconfig"))))
		Expect(condition("broken", fleetv1alpha1.ReadyCondition)(Default)).To(haveStatus(metav1.ConditionFalse, fleetv1alpha1.InvalidKubeconfigReason))

		By("replacing the Secret's kubeconfig with a working one")
		secret.Data["value"] = bed.Member("member-2").Kubeconfig
		Expect(bed.Hub.Client.Update(ctx(), secret)).To(Succeed())
		Eventually(condition("broken", fleetv1alpha1.ReadyCondition), bound, 200*time.Millisecond).
			Should(haveStatus(metav1.ConditionTrue, fleetv1alpha1.MemberReadyReason))
	})

	It("reports a missing Secret and a missing key with reasons", func() {
		create(memberFromSecret("nosecret", "does-not-exist"))
		Eventually(condition("nosecret", fleetv1alpha1.ReachableCondition), bound, 200*time.Millisecond).
			Should(haveStatus(metav1.ConditionFalse, fleetv1alpha1.KubeconfigSecretNotFoundReason))

		create(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: "wrong-key"},
			Data:       map[string][]byte{"kubeconfig": bed.Member("member-2").Kubeconfig},
		})
		create(memberFromSecret("wrongkey", "wrong-key"))
		Eventually(condition("wrongkey", fleetv1alpha1.ReachableCondition), bound, 200*time.Millisecond).
			Should(And(haveStatus(metav1.ConditionFalse, fleetv1alpha1.InvalidKubeconfigReason),
				HaveField("Message", ContainSubstring(`has no key "value"`))))
	})

	It("turns Reachable=False when a member's apiserver stops and back when it returns, while another member stays Ready", func() {
		create(memberFromSecret("member-1", testbed.KubeconfigSecretName("member-1")))
		create(memberFromSecret("member-2", testbed.KubeconfigSecretName("member-2")))
		for _, name := range []string{"member-1", "member-2"} {
			Eventually(condition(name, fleetv1alpha1.ReadyCondition), bound, 200*time.Millisecond).
				Should(haveStatus(metav1.ConditionTrue, fleetv1alpha1.MemberReadyReason))
		}

		// member-1 must stay Ready for the whole outage of member-2.
		stopWatching := make(chan struct{})
		watched := make(chan error, 1)
		go func() {
			defer GinkgoRecover()
			for {
				select {
				case <-stopWatching:
					watched <- nil
					return
				case <-time.After(200 * time.Millisecond):
				}
				c, err := func() (c *metav1.Condition, err error) {
					defer func() {
						if r := recover(); r != nil {
							err = fmt.Errorf("%v", r)
						}
					}()
					return condition("member-1", fleetv1alpha1.ReadyCondition)(Default), nil
				}()
				if err != nil || c.Status != metav1.ConditionTrue {
					watched <- fmt.Errorf("member-1 left Ready during member-2's outage: %v %v", c, err)
					return
				}
			}
		}()

		member2 := bed.Member("member-2")
		By("stopping member-2's apiserver")
		stoppedAt := time.Now()
		Expect(member2.StopAPIServer()).To(Succeed())
		Eventually(condition("member-2", fleetv1alpha1.ReachableCondition), bound, 100*time.Millisecond).
			Should(haveStatus(metav1.ConditionFalse, fleetv1alpha1.MemberUnreachableReason))
		GinkgoWriter.Printf("member-2 turned unreachable %s after its apiserver stopped\n", time.Since(stoppedAt))
		Expect(condition("member-2", fleetv1alpha1.ReadyCondition)(Default)).To(haveStatus(metav1.ConditionFalse, fleetv1alpha1.MemberUnreachableReason))

		By("starting member-2's apiserver again")
		Expect(member2.StartAPIServer()).To(Succeed())
		Eventually(condition("member-2", fleetv1alpha1.ReachableCondition), bound, 100*time.Millisecond).
			Should(haveStatus(metav1.ConditionTrue, fleetv1alpha1.ProbeSucceededReason))

		close(stopWatching)
		Expect(<-watched).To(Succeed())
	})

	It("registers a Cluster API Cluster labelled to join as a Ready MemberCluster and removes it when the label goes", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "capi-fleet"}}
		create(ns)
		create(&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "capi-fleet", Name: "edge-kubeconfig"},
			Data:       map[string][]byte{"value": bed.Member("member-3").Kubeconfig},
		})
		cluster := &clusterv1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: "capi-fleet", Name: "edge", Labels: map[string]string{fleetv1alpha1.JoinLabel: "true"}},
			// The Cluster needs some spec; its control plane is marked initialised by the test below.
			Spec: clusterv1.ClusterSpec{Paused: ptr.To(true)},
		}
		create(cluster)

		// Namespace "capi-fleet" name "edge" could also be namespace "capi" name "fleet-edge": the
		// MemberCluster's name carries a hash of both.
		edgeMember := names.Join(fleetv1alpha1.MaxMemberClusterNameLength, "", "capi-fleet", "edge")
		Expect(edgeMember).To(HavePrefix("capi-fleet-edge-"))

		By("waiting while the control plane is not initialised")
		Consistently(func() error {
			return bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: edgeMember}, &fleetv1alpha1.MemberCluster{})
		}, bound, 200*time.Millisecond).Should(Satisfy(apierrors.IsNotFound))

		By("initialising the control plane")
		cluster.Status.Initialization.ControlPlaneInitialized = ptr.To(true)
		Expect(bed.Hub.Client.Status().Update(ctx(), cluster)).To(Succeed())
		Eventually(condition(edgeMember, fleetv1alpha1.ReadyCondition), bound, 200*time.Millisecond).
			Should(haveStatus(metav1.ConditionTrue, fleetv1alpha1.MemberReadyReason))
		m := &fleetv1alpha1.MemberCluster{}
		Expect(bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: edgeMember}, m)).To(Succeed())
		Expect(m.Spec.ClusterRef).To(Equal(&fleetv1alpha1.ClusterReference{Namespace: "capi-fleet", Name: "edge"}))

		By("removing the join label")
		Expect(bed.Hub.Client.Get(ctx(), client.ObjectKeyFromObject(cluster), cluster)).To(Succeed())
		delete(cluster.Labels, fleetv1alpha1.JoinLabel)
		Expect(bed.Hub.Client.Update(ctx(), cluster)).To(Succeed())
		Eventually(func() error {
			return bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: edgeMember}, &fleetv1alpha1.MemberCluster{})
		}, bound, 200*time.Millisecond).Should(Satisfy(apierrors.IsNotFound))

		By("labelling it again and then deleting the Cluster")
		Expect(bed.Hub.Client.Get(ctx(), client.ObjectKeyFromObject(cluster), cluster)).To(Succeed())
		cluster.Labels = map[string]string{fleetv1alpha1.JoinLabel: "true"}
		Expect(bed.Hub.Client.Update(ctx(), cluster)).To(Succeed())
		Eventually(func() error {
			return bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: edgeMember}, &fleetv1alpha1.MemberCluster{})
		}, bound, 200*time.Millisecond).Should(Succeed())
		Expect(bed.Hub.Client.Delete(ctx(), cluster)).To(Succeed())
		Eventually(func() error {
			return bed.Hub.Client.Get(ctx(), client.ObjectKey{Name: edgeMember}, &fleetv1alpha1.MemberCluster{})
		}, bound, 200*time.Millisecond).Should(Satisfy(apierrors.IsNotFound))
	})
})

var _ = Describe("MemberCluster admission", func() {
	DescribeTable("rejects a MemberCluster with a message that says what to fix",
		func(m *fleetv1alpha1.MemberCluster, wantMessage string) {
			err := bed.Hub.Client.Create(ctx(), m)
			if err == nil {
				_ = bed.Hub.Client.Delete(ctx(), m)
			}
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "unexpected error kind: %v", err)
			Expect(err.Error()).To(ContainSubstring(wantMessage))
		},
		Entry("a name too long for its hub namespace (webhook)",
			memberFromSecret(strings.Repeat("a", fleetv1alpha1.MaxMemberClusterNameLength+1), "x"),
			"so that the hub namespace meridian-member-"),
		Entry("a dotted name (webhook)",
			memberFromSecret("east.example", "x"),
			"must be a DNS label"),
		Entry("a timeout longer than the interval (webhook)",
			func() *fleetv1alpha1.MemberCluster {
				m := memberFromSecret("slowprobe", "x")
				m.Spec.Probe = fleetv1alpha1.ProbeSettings{IntervalSeconds: 2, TimeoutSeconds: 5}
				return m
			}(),
			"must not exceed spec.probe.intervalSeconds"),
		Entry("no connection source (schema)",
			&fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "nowhere"}},
			"set exactly one of spec.kubeconfigSecretRef and spec.clusterRef"),
		Entry("two connection sources (schema)",
			func() *fleetv1alpha1.MemberCluster {
				m := memberFromSecret("both", "x")
				m.Spec.ClusterRef = &fleetv1alpha1.ClusterReference{Namespace: "default", Name: "c"}
				return m
			}(),
			"set exactly one of spec.kubeconfigSecretRef and spec.clusterRef"),
	)
})

var _ = Describe("ClusterWork admission", func() {
	It("rejects a Work whose objects cannot be applied, with a message that says what to fix", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meridian-member-admission"}}
		create(ns)
		w := &fleetv1alpha1.ClusterWork{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "bad"},
			Spec: fleetv1alpha1.ClusterWorkSpec{Objects: []fleetv1alpha1.WorkObject{
				{RawExtension: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"namespace":"x"}}`)}},
			}},
		}
		err := bed.Hub.Client.Create(ctx(), w)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.objects[0]"))
		Expect(err.Error()).To(ContainSubstring("needs metadata.name"))
	})
})
