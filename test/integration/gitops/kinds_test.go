package gitops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/compile"
	"github.com/meridian-io/meridian/test/testbed"
)

// memberName is the bare member most states use; agentMember a second bare member for the
// AgentConfig states (one AgentConfig holds a cluster, and the agent's objects must not change what
// member-1 offers the other kinds); liveMember runs Kubernetes' controllers and a kwok node, so that
// the agent's DaemonSet becomes ready. unreachableMember is a MemberCluster whose kubeconfig points
// at a closed loopback port.
const (
	memberName        = "member-1"
	agentMember       = "member-2"
	liveMember        = "live-1"
	unreachableMember = "unreachable"
)

// kind is one Meridian kind and the states its controller can put it in. Adding a kind: add an
// entry here with a state per kstatus outcome the kind can reach, and a folder
// config/argocd/<group>/<Kind>/ with health.lua and health_test.yaml (docs/gitops.md).
type kind struct {
	gvk schema.GroupVersionKind
	// resource is what kubectl calls the kind (plural.group).
	resource string
	states   []state
}

// state is one situation a kind's controller reports. Its name is the testdata file's name, and
// its prefix says what every tool should read: ready-* Current/Healthy, progressing-* InProgress/
// Progressing, stalled-* Failed/Degraded, suspended-* (a paused rollout) InProgress/Suspended.
type state struct {
	name string
	// readyReason is the Ready condition's reason once the controller has reported the state.
	readyReason string
	// create makes the objects for the state and returns the one to check.
	create func(ctx context.Context) client.Object
	// knownIssue, when set, is how the kind falls short of the state's kstatus today: kstatus
	// returns got instead. The test asserts got, so fixing the kind fails the test until the entry
	// goes: the shortfall stays visible and cannot come back unnoticed.
	knownIssue *knownIssue
}

type knownIssue struct {
	got status.Status
	why string
}

var kinds = []kind{
	{
		gvk:      fleetv1alpha1.GroupVersion.WithKind("MemberCluster"),
		resource: "memberclusters.fleet.meridian.io",
		states: []state{
			{name: "ready", readyReason: fleetv1alpha1.MemberReadyReason, create: func(ctx context.Context) client.Object {
				return &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: memberName}} // joined by BeforeSuite
			}},
			{name: "progressing-unreachable", readyReason: fleetv1alpha1.MemberUnreachableReason, create: func(ctx context.Context) client.Object {
				return ensureUnreachableMember(ctx)
			}},
			{name: "stalled-invalid-kubeconfig", readyReason: fleetv1alpha1.InvalidKubeconfigReason, create: func(ctx context.Context) client.Object {
				create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: "broken-kubeconfig"},
					Data:       map[string][]byte{testbed.KubeconfigSecretKey: []byte("apiVersion: v1\nkind: Config\nclusters: [ {name: x, cluster: {server: 'https://")},
				})
				return create(ctx, memberCluster("broken", "broken-kubeconfig"))
			}},
		},
	},
	{
		gvk:      fleetv1alpha1.GroupVersion.WithKind("ClusterWork"),
		resource: "clusterworks.fleet.meridian.io",
		states: []state{
			{name: "ready", readyReason: fleetv1alpha1.AllAvailableReason, create: func(ctx context.Context) client.Object {
				return create(ctx, work("ready", configMap("default", "gitops-ready")))
			}},
			// A bare member runs no controllers: the Deployment is applied but never becomes available.
			{name: "progressing-unavailable", readyReason: fleetv1alpha1.ProgressingReason, create: func(ctx context.Context) client.Object {
				return create(ctx, work("unavailable", deployment("default", "gitops-web")))
			}},
			{name: "stalled-conflict", readyReason: fleetv1alpha1.ConflictReason, create: func(ctx context.Context) client.Object {
				theirs := configMap("default", "gitops-theirs")
				Expect(bed.Member(memberName).Client.Create(ctx, theirs, client.FieldOwner("team-a-deployer"))).To(Succeed())
				return create(ctx, work("conflict", configMap("default", "gitops-theirs")))
			}},
		},
	},
	{
		gvk:      netv1alpha1.GroupVersion.WithKind("GlobalNamespace"),
		resource: "globalnamespaces.networking.meridian.io",
		states: []state{
			{name: "ready", readyReason: netv1alpha1.AllAppliedReason, create: func(ctx context.Context) client.Object {
				return create(ctx, globalNamespace("gitops-ready", memberName))
			}},
			{name: "progressing-unreachable", readyReason: netv1alpha1.MembersUnreachableReason, create: func(ctx context.Context) client.Object {
				ensureUnreachableMember(ctx)
				return create(ctx, globalNamespace("gitops-unreachable", unreachableMember))
			}},
			{name: "stalled-conflict", readyReason: netv1alpha1.ConflictReason, create: func(ctx context.Context) client.Object {
				Expect(bed.Member(memberName).Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gitops-theirs"}})).To(Succeed())
				return create(ctx, globalNamespace("gitops-theirs", memberName))
			}},
		},
	},
	{
		gvk:      fleetv1alpha1.GroupVersion.WithKind("AgentConfig"),
		resource: "agentconfigs.fleet.meridian.io",
		states: []state{
			// The live member's DaemonSet controller runs the agent's pod on its kwok node.
			{name: "ready", readyReason: fleetv1alpha1.RolloutCompleteReason, create: func(ctx context.Context) client.Object {
				return ensureAgents(ctx)
			}},
			{name: "progressing-unreachable", readyReason: fleetv1alpha1.RolloutProgressingReason, create: func(ctx context.Context) client.Object {
				ensureUnreachableMember(ctx)
				return create(ctx, agentConfig("gitops-unreachable", unreachableMember))
			}},
			// A bare member has no DaemonSet controller: its agents never report ready, and the
			// rollout stops at the deadline.
			{name: "stalled-progress-deadline", readyReason: fleetv1alpha1.ProgressDeadlineExceededReason, create: func(ctx context.Context) client.Object {
				ac := agentConfig("gitops-deadline", agentMember)
				ac.Spec.Rollout.ProgressDeadlineSeconds = 10
				return create(ctx, ac)
			}},
			// Paused before its first wave: the selected cluster keeps what it runs.
			{name: "suspended-paused", readyReason: fleetv1alpha1.RolloutPausedReason, create: func(ctx context.Context) client.Object {
				create(ctx, memberCluster("paused-target", testbed.KubeconfigSecretName(agentMember)))
				ac := agentConfig("gitops-paused", "paused-target")
				ac.Spec.Rollout.Paused = true
				return create(ctx, ac)
			}},
			// A younger AgentConfig selecting a cluster an older one holds: waiting will not give
			// it the cluster. The holder is paused, so neither writes to the member.
			{name: "stalled-conflict", readyReason: fleetv1alpha1.AgentConfigConflictReason, create: func(ctx context.Context) client.Object {
				create(ctx, memberCluster("conflict-target", testbed.KubeconfigSecretName(agentMember)))
				holder := agentConfig("gitops-conflict-1", "conflict-target")
				holder.Spec.Rollout.Paused = true
				create(ctx, holder)
				return create(ctx, agentConfig("gitops-conflict-2", "conflict-target"))
			}},
			// The older of the two keeps the cluster and its agents: still Ready, with Degraded
			// False for reason AgentConfigConflict naming the younger.
			{name: "ready-contested", readyReason: fleetv1alpha1.RolloutCompleteReason, create: func(ctx context.Context) client.Object {
				holder := ensureAgents(ctx).(*fleetv1alpha1.AgentConfig)
				contender := create(ctx, agentConfig("gitops-contender", liveMember))
				degradedReason := func(ctx context.Context) func(Gomega) string {
					return func(g Gomega) string {
						g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(holder), holder)).To(Succeed())
						c := apimeta.FindStatusCondition(holder.Status.Conditions, fleetv1alpha1.DegradedCondition)
						g.Expect(c).NotTo(BeNil(), "AgentConfig %s has no Degraded condition", holder.Name)
						g.Expect(c.Status).To(Equal(metav1.ConditionFalse), "AgentConfig %s: %v", holder.Name, c)
						return c.Reason
					}
				}
				// gitops-ready is the ready state's object, which other specs use: uncontested again.
				DeferCleanup(func(ctx SpecContext) {
					Expect(client.IgnoreNotFound(bed.Hub.Client.Delete(ctx, contender))).To(Succeed())
					Eventually(degradedReason(ctx), timeout, poll).ShouldNot(Equal(fleetv1alpha1.AgentConfigConflictReason))
				})
				Eventually(degradedReason(ctx), timeout, poll).Should(Equal(fleetv1alpha1.AgentConfigConflictReason))
				return holder
			}},
		},
	},
	{
		gvk:      policyv1alpha1.GroupVersion.WithKind("Tier"),
		resource: "tiers.policy.meridian.io",
		states: []state{
			// A tier has nothing to wait for and nothing that can fail on the hub.
			{name: "ready", readyReason: policyv1alpha1.TierAcceptedReason, create: func(ctx context.Context) client.Object {
				tier := create(ctx, &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: "gitops"},
					Spec: policyv1alpha1.TierSpec{Priority: 120, Description: "Policies of the gitops suite."}})
				create(ctx, allowPolicy("gitops-tiered", "gitops", memberName))
				// The saved object says how many policies the tier orders: wait for the count.
				Eventually(func(g Gomega) {
					g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(tier), tier)).To(Succeed())
					g.Expect(tier.(*policyv1alpha1.Tier).Status.Policies).To(BeEquivalentTo(1))
				}, timeout, poll).Should(Succeed())
				return tier
			}},
		},
	},
	{
		gvk:      policyv1alpha1.GroupVersion.WithKind("GlobalNetworkPolicy"),
		resource: "globalnetworkpolicies.policy.meridian.io",
		states: []state{
			// member-1 serves no policy CRDs: NetworkPolicy is its form, which holds Allow rules.
			{name: "ready", readyReason: policyv1alpha1.RealizedReason, create: func(ctx context.Context) client.Object {
				return create(ctx, allowPolicy("gitops-ready", policyv1alpha1.TierApplication, memberName))
			}},
			{name: "progressing-unreachable", readyReason: policyv1alpha1.MembersUnreachableReason, create: func(ctx context.Context) client.Object {
				ensureUnreachableMember(ctx)
				return create(ctx, allowPolicy("gitops-unreachable", policyv1alpha1.TierApplication, unreachableMember))
			}},
			// The live member serves Meridian's CRD, installed with its agent by an AgentConfig, so
			// it gets Meridian's form; its agent runs (in this process) without a dataplane, as
			// kwok's node has no kernel to program, and reports no policy: the policy is written
			// there but nothing enforces it, and the hub says so while it waits.
			{name: "progressing-no-agent-reports", readyReason: policyv1alpha1.NoAgentReportsReason, create: func(ctx context.Context) client.Object {
				ensureAgents(ctx)
				p := create(ctx, allowPolicy("gitops-no-agent-reports", policyv1alpha1.TierApplication, liveMember))
				Eventually(func(g Gomega) {
					g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
					g.Expect(p.(*policyv1alpha1.GlobalNetworkPolicy).Status.Clusters).To(ConsistOf(SatisfyAll(
						HaveField("Form", policyv1alpha1.FormMeridian), HaveField("Phase", policyv1alpha1.PhasePending),
						HaveField("Message", compile.NoAgentReportsMessage), HaveField("NodesRealized", BeNil()))))
				}, timeout, poll).Should(Succeed())
				// The agent is there and says why it enforces nothing.
				infos := &unstructured.UnstructuredList{}
				infos.SetGroupVersionKind(memberv1alpha1.GroupVersion.WithKind("NodeAgentInfoList"))
				Expect(bed.Member(liveMember).Client.List(ctx, infos)).To(Succeed())
				Expect(infos.Items).To(HaveLen(1))
				conds, _, _ := unstructured.NestedSlice(infos.Items[0].Object, "conditions") // NodeAgentInfo has no status stanza
				Expect(conds).To(ContainElement(SatisfyAll(HaveKeyWithValue("type", memberv1alpha1.DataplaneReadyCondition),
					HaveKeyWithValue("status", "False"), HaveKeyWithValue("reason", memberv1alpha1.DataplaneDisabledReason))))
				return p
			}},
			// NetworkPolicy cannot drop: nothing weaker is written, and the policy needs a person.
			// In the baseline tier, so that no Allow of the other states comes after the Drop.
			{name: "stalled-unsupported", readyReason: policyv1alpha1.UnsupportedReason, create: func(ctx context.Context) client.Object {
				p := allowPolicy("gitops-unsupported", policyv1alpha1.TierBaseline, memberName)
				p.Spec.Ingress[0].Action = policyv1alpha1.ActionDrop
				return create(ctx, p)
			}},
		},
	},
}

func create(ctx context.Context, obj client.Object) client.Object {
	Expect(bed.Hub.Client.Create(ctx, obj)).To(Succeed())
	return obj
}

func memberCluster(name, secret string) *fleetv1alpha1.MemberCluster {
	return &fleetv1alpha1.MemberCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fleetv1alpha1.MemberClusterSpec{
			KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: testbed.KubeconfigSecretNamespace, Name: secret},
			Probe:               fleetv1alpha1.ProbeSettings{IntervalSeconds: 1, TimeoutSeconds: 1},
		},
	}
}

// ensureUnreachableMember registers (once) a MemberCluster whose kubeconfig is the member's with
// the server moved to a closed port on loopback: valid, but nothing answers.
func ensureUnreachableMember(ctx context.Context) client.Object {
	kubeconfig := serverLine.ReplaceAll(bed.Member(memberName).Kubeconfig, []byte("${1}https://127.0.0.1:1"))
	Expect(kubeconfig).NotTo(Equal(bed.Member(memberName).Kubeconfig), "the member's kubeconfig has no server line")
	for _, obj := range []client.Object{
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testbed.KubeconfigSecretNamespace, Name: "unreachable-kubeconfig"},
			Data:       map[string][]byte{testbed.KubeconfigSecretKey: kubeconfig},
		},
		memberCluster(unreachableMember, "unreachable-kubeconfig"),
	} {
		if err := bed.Hub.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
	}
	return &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: unreachableMember}}
}

var serverLine = regexp.MustCompile(`(?m)^(\s*server:\s*).*$`)

func work(name string, objs ...any) *fleetv1alpha1.ClusterWork {
	w := &fleetv1alpha1.ClusterWork{ObjectMeta: metav1.ObjectMeta{Namespace: fleetv1alpha1.MemberClusterNamespacePrefix + memberName, Name: name}}
	for _, o := range objs {
		b, err := json.Marshal(o)
		Expect(err).NotTo(HaveOccurred())
		w.Spec.Objects = append(w.Spec.Objects, fleetv1alpha1.WorkObject{RawExtension: runtime.RawExtension{Raw: b}})
	}
	return w
}

func configMap(ns, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string]string{"from": "gitops-test"},
	}
}

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

func globalNamespace(name string, clusters ...string) *netv1alpha1.GlobalNamespace {
	return &netv1alpha1.GlobalNamespace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       netv1alpha1.GlobalNamespaceSpec{Placement: fleetv1alpha1.Placement{ClusterNames: clusters}},
	}
}

// ensureAgents installs (once) the agent on the live member with AgentConfig gitops-ready and
// waits for its rollout: the agent runs on the member's node (BeforeSuite plays its kubelet).
func ensureAgents(ctx context.Context) client.Object {
	ac := agentConfig("gitops-ready", liveMember)
	if err := bed.Hub.Client.Create(ctx, ac); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	Eventually(func(g Gomega) {
		g.Expect(bed.Hub.Client.Get(ctx, client.ObjectKeyFromObject(ac), ac)).To(Succeed())
		g.Expect(apimeta.IsStatusConditionTrue(ac.Status.Conditions, fleetv1alpha1.ReadyCondition)).To(BeTrue(), "AgentConfig %s: %v", ac.Name, ac.Status.Conditions)
	}, 2*timeout, poll).Should(Succeed())
	return ac
}

func agentConfig(name string, clusters ...string) *fleetv1alpha1.AgentConfig {
	return &fleetv1alpha1.AgentConfig{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fleetv1alpha1.AgentConfigSpec{
			Placement: fleetv1alpha1.Placement{ClusterNames: clusters},
			Image:     "meridian-node-agent:v0.1.0",
			Version:   "v0.1.0",
		},
	}
}

// allowPolicy lets the web pods of the clusters take connections from their db pods.
func allowPolicy(name, tier string, clusters ...string) *policyv1alpha1.GlobalNetworkPolicy {
	return &policyv1alpha1.GlobalNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Tier:      tier,
			Priority:  ptr.To[int32](10),
			Placement: fleetv1alpha1.Placement{ClusterNames: clusters},
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			Ingress: []policyv1alpha1.Rule{{Name: "from-db", Action: policyv1alpha1.ActionAllow,
				Peers: []policyv1alpha1.Peer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}}},
		},
	}
}

func (s state) String() string { return fmt.Sprintf("%s (Ready reason %s)", s.name, s.readyReason) }
