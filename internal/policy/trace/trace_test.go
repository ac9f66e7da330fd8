package trace

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy"
)

func TestParsePort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Port
		err  string
	}{
		{in: "443/TCP", want: Port{443, policyv1alpha1.ProtocolTCP}},
		{in: "53/udp", want: Port{53, policyv1alpha1.ProtocolUDP}},
		{in: "8080", want: Port{8080, policyv1alpha1.ProtocolTCP}},
		{in: "9/SCTP", want: Port{9, policyv1alpha1.ProtocolSCTP}},
		{in: "0/TCP", err: "from 1 to 65535"},
		{in: "65536", err: "from 1 to 65535"},
		{in: "https", err: "must be a number"},
		{in: "443/ICMP", err: `protocol "ICMP" is not one of TCP, UDP, SCTP`},
		{in: "", err: "must be a number"},
	} {
		got, err := ParsePort(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePort(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePod(t *testing.T) {
	got, err := ParsePod("from", "member-1/shop/web-0")
	if err != nil || got != (PodName{"member-1", "shop", "web-0"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, in := range []string{"web-0", "shop/web-0", "member-1//web-0", "a/b/c/d", "member-1/Shop/web-0"} {
		if _, err := ParsePod("from", in); err == nil || !strings.Contains(err.Error(), "--from") {
			t.Errorf("ParsePod(%q): want an error naming --from, got %v", in, err)
		}
	}
}

var (
	web = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	db  = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
)

func gnp(name, tier string, prio int32, egress ...policyv1alpha1.Rule) *policyv1alpha1.GlobalNetworkPolicy {
	return &policyv1alpha1.GlobalNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1alpha1.GlobalNetworkPolicySpec{
			Tier: tier, Priority: ptr.To(prio),
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			AppliedTo: policyv1alpha1.AppliedTo{PodSelector: web},
			Egress:    egress,
		},
	}
}

func toDB(name string, action policyv1alpha1.RuleAction, port int) policyv1alpha1.Rule {
	r := policyv1alpha1.Rule{Name: name, Action: action, Peers: []policyv1alpha1.Peer{{PodSelector: db, Scope: policyv1alpha1.ScopeClusterSet}}}
	if port != 0 {
		r.Ports = []policyv1alpha1.Port{{Port: ptrTo(intstr.FromInt32(int32(port)))}}
	}
	return r
}

func ptrTo[T any](v T) *T { return &v }

func pod(ns, name, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{{Name: "pg", ContainerPort: 5432}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

// bed is a hub with two members, m1 (web-0 in shop) and m2 (db-0 in data), and the policies given.
type bed struct {
	hub     client.Client
	members map[string]client.Client
	// proxy plays each member apiserver's pods/proxy (nil: the member's agents are not asked).
	proxy map[string]func(ctx context.Context, namespace, pod string, port int32, path string, query url.Values) ([]byte, error)
}

func newBed(t *testing.T, hubObjs []client.Object, m2Objs ...client.Object) *bed {
	t.Helper()
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	objs := append([]client.Object{}, hubObjs...)
	for _, tier := range policyv1alpha1.DefaultTiers {
		objs = append(objs, &policyv1alpha1.Tier{ObjectMeta: metav1.ObjectMeta{Name: tier.Name}, Spec: policyv1alpha1.TierSpec{Priority: tier.Priority}})
	}
	for _, m := range []string{"m1", "m2"} {
		objs = append(objs, &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: m}})
	}
	b := &bed{hub: fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build(), members: map[string]client.Client{},
		proxy: map[string]func(context.Context, string, string, int32, string, url.Values) ([]byte, error){}}
	b.members["m1"] = fake.NewClientBuilder().WithScheme(s).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}},
		pod("shop", "web-0", "198.18.0.10", map[string]string{"app": "web"}),
		pod("shop", "pending-0", "", map[string]string{"app": "web"}),
	).Build()
	b.members["m2"] = fake.NewClientBuilder().WithScheme(s).WithObjects(append([]client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "data"}},
		pod("data", "db-0", "198.18.1.20", map[string]string{"app": "db"}),
	}, m2Objs...)...).Build()
	return b
}

func (b *bed) connect(_ context.Context, mc *fleetv1alpha1.MemberCluster) (*Member, error) {
	c, ok := b.members[mc.Name]
	if !ok {
		return nil, fmt.Errorf("no member %s", mc.Name)
	}
	return &Member{Reader: c, ProxyGet: b.proxy[mc.Name]}, nil
}

func (b *bed) trace(t *testing.T, port int32) (*Result, string) {
	t.Helper()
	res, err := Run(context.Background(), b.hub, b.connect, Request{
		From: PodName{"m1", "shop", "web-0"}, To: PodName{"m2", "data", "db-0"}, Port: Port{port, policyv1alpha1.ProtocolTCP},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.Print(&out)
	return res, out.String()
}

func TestTraceTierOrderDecides(t *testing.T) {
	b := newBed(t, []client.Object{
		gnp("allow-db", policyv1alpha1.TierApplication, 1, toDB("to-db", policyv1alpha1.ActionAllow, 0)),
		gnp("guard-db", policyv1alpha1.TierSecurityOps, 50, toDB("no-5432", policyv1alpha1.ActionDrop, 5432)),
	})
	res, out := b.trace(t, 5432)
	want := policy.Step{Tier: policyv1alpha1.TierSecurityOps, Policy: "guard-db", Rule: "no-5432", Action: policyv1alpha1.ActionDrop}
	if res.Decision.Verdict != policy.Drop || len(res.Decision.Egress.Path) != 1 || res.Decision.Egress.Path[0] != want {
		t.Fatalf("want Drop by %v on the egress side, got %+v\n%s", want, res.Decision, out)
	}
	for _, s := range []string{
		"Drop: m1/shop/web-0 (198.18.0.10) -> m2/data/db-0 (198.18.1.20) on 5432/TCP",
		"Denied on the egress side, in m1.",
		"tier securityops (priority 100) > policy guard-db (priority 50) > egress rule no-5432: Drop",
		"in m1: the policy's status does not report this cluster yet",
		"Ingress side, in m2: Allow",
		"no rule of any tier matched, no NetworkPolicy of namespace data selects the pod for ingress",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}

	res, out = b.trace(t, 443)
	want = policy.Step{Tier: policyv1alpha1.TierApplication, Policy: "allow-db", Rule: "to-db", Action: policyv1alpha1.ActionAllow}
	if res.Decision.Verdict != policy.Allow || res.Decision.Egress.DecidedBy != policy.ByRule || res.Decision.Egress.Path[0] != want {
		t.Fatalf("want Allow by %v, got %+v\n%s", want, res.Decision, out)
	}
	if !strings.Contains(out, "Allowed by both sides.") {
		t.Errorf("output:\n%s", out)
	}
}

func TestTracePassHandsOverToNetworkPolicies(t *testing.T) {
	// The db's namespace isolates it for ingress; a securityops Pass on the web's egress lets the
	// namespaces decide.
	isolate := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "deny-all"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	g := gnp("pass-db", policyv1alpha1.TierSecurityOps, 1, toDB("pass", policyv1alpha1.ActionPass, 0))
	g.Status.Clusters = []policyv1alpha1.ClusterPolicyStatus{{Cluster: "m1", Form: policyv1alpha1.FormAntrea, Enforcement: policyv1alpha1.EnforcementExact, Phase: policyv1alpha1.PhaseRealized}}
	b := newBed(t, []client.Object{g}, isolate)
	res, out := b.trace(t, 5432)
	t.Log(out)
	d := res.Decision
	if d.Verdict != policy.Drop || d.Egress.Verdict != policy.Allow || d.Egress.DecidedBy != policy.ByDefault ||
		d.Ingress.DecidedBy != policy.ByNetworkPolicy || d.Ingress.NetworkPolicies[0] != "deny-all" {
		t.Fatalf("want egress Pass then default, ingress denied by deny-all; got %+v\n%s", d, out)
	}
	for _, s := range []string{
		"Denied on the ingress side, in m2.",
		"egress rule pass: Pass",
		"Pass hands the decision to the NetworkPolicies of namespace shop, then to the baseline tier",
		"in m1: form Antrea, Exact, Realized",
		"NetworkPolicies of namespace data select the pod for ingress (deny-all): none of them allows the connection: denied",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestTraceSkipsWhatTheManagerDoesNotEnforce(t *testing.T) {
	b := newBed(t, []client.Object{
		gnp("lost", "no-such-tier", 1, toDB("drop", policyv1alpha1.ActionDrop, 0)),
	})
	res, out := b.trace(t, 5432)
	if res.Decision.Verdict != policy.Allow || len(res.Skipped) != 1 || !strings.Contains(out, `lost: tier "no-such-tier" does not exist`) {
		t.Fatalf("want the policy in an unknown tier skipped and the connection allowed:\n%s", out)
	}
}

func TestTraceErrors(t *testing.T) {
	b := newBed(t, nil)
	for _, tc := range []struct {
		from, to PodName
		err      string
	}{
		{PodName{"m9", "shop", "web-0"}, PodName{"m2", "data", "db-0"}, `no MemberCluster "m9" on the hub (members: m1, m2)`},
		{PodName{"m1", "shop", "web-9"}, PodName{"m2", "data", "db-0"}, "no pod web-9 in namespace shop of member cluster m1"},
		{PodName{"m1", "shop", "web-0"}, PodName{"m2", "other", "db-0"}, "no pod db-0 in namespace other of member cluster m2"},
		{PodName{"m1", "shop", "pending-0"}, PodName{"m2", "data", "db-0"}, "pod m1/shop/pending-0 has no IP yet"},
	} {
		_, err := Run(context.Background(), b.hub, b.connect, Request{From: tc.from, To: tc.to, Port: Port{80, policyv1alpha1.ProtocolTCP}})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v -> %v: want an error with %q, got %v", tc.from, tc.to, tc.err, err)
		}
	}
}

func TestTraceSamePodAndNamespaceOnce(t *testing.T) {
	b := newBed(t, nil)
	res, err := Run(context.Background(), b.hub, b.connect, Request{From: PodName{"m1", "shop", "web-0"}, To: PodName{"m1", "shop", "web-0"}, Port: Port{80, policyv1alpha1.ProtocolTCP}})
	if err != nil || res.Decision.Verdict != policy.Allow {
		t.Fatalf("got %+v, %v", res, err)
	}
}
