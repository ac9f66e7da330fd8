package gitops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	netv1alpha1 "github.com/meridian-io/meridian/apis/networking/v1alpha1"
	"github.com/meridian-io/meridian/test/testbed"
)

// memberName is the one bare member the suite joins; unreachableMember is a MemberCluster whose
// kubeconfig points at a closed loopback port.
const (
	memberName        = "member-1"
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
// Progressing, stalled-* Failed/Degraded.
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

func (s state) String() string { return fmt.Sprintf("%s (Ready reason %s)", s.name, s.readyReason) }
