package compile

import (
	"encoding/json"
	"strings"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/policy/translate"
)

func TestChooseFormMostFaithfulFirst(t *testing.T) {
	antreaTier := AntreaKind.GroupVersion().WithKind("Tier")
	for _, tc := range []struct {
		name   string
		served []schema.GroupVersionKind
		want   policyv1alpha1.Form
	}{
		{"nothing", nil, policyv1alpha1.FormNetworkPolicy},
		{"cnp", []schema.GroupVersionKind{CNPKind}, policyv1alpha1.FormClusterNetworkPolicy},
		{"antrea over cnp", []schema.GroupVersionKind{CNPKind, AntreaKind, antreaTier}, policyv1alpha1.FormAntrea},
		{"antrea without its Tier is not enough", []schema.GroupVersionKind{AntreaKind}, policyv1alpha1.FormNetworkPolicy},
		{"meridian over all", []schema.GroupVersionKind{CNPKind, AntreaKind, antreaTier, MeridianKind}, policyv1alpha1.FormMeridian},
		{"cnp of another version", []schema.GroupVersionKind{{Group: CNPKind.Group, Version: "v1alpha1", Kind: CNPKind.Kind}}, policyv1alpha1.FormNetworkPolicy},
	} {
		served := map[schema.GroupVersionKind]bool{}
		for _, g := range tc.served {
			served[g] = true
		}
		if got := ChooseForm(served); got != tc.want {
			t.Errorf("%s: form %s, want %s", tc.name, got, tc.want)
		}
	}
}

func tier(name string, prio int32) policyv1alpha1.Tier {
	t := policyv1alpha1.Tier{Spec: policyv1alpha1.TierSpec{Priority: prio}}
	t.Name = name
	return t
}

func memberCluster(name string, labels map[string]string) fleetv1alpha1.MemberCluster {
	m := fleetv1alpha1.MemberCluster{}
	m.Name, m.Labels = name, labels
	return m
}

func policy(name, tier string, action policyv1alpha1.RuleAction, clusters []string, peer policyv1alpha1.Peer) policyv1alpha1.GlobalNetworkPolicy {
	g := policyv1alpha1.GlobalNetworkPolicy{Spec: policyv1alpha1.GlobalNetworkPolicySpec{
		Tier: tier, Placement: fleetv1alpha1.Placement{ClusterNames: clusters},
		AppliedTo: policyv1alpha1.AppliedTo{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Ingress:   []policyv1alpha1.Rule{{Name: "r", Action: action, Peers: []policyv1alpha1.Peer{peer}}},
	}}
	g.Name = name
	return g
}

var dbEverywhere = policyv1alpha1.Peer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Scope: policyv1alpha1.ScopeClusterSet}

func fixture() translate.Input {
	tiers := []policyv1alpha1.Tier{tier("securityops", 100), tier("application", 250), tier("baseline", 253)}
	members := []fleetv1alpha1.MemberCluster{memberCluster("a", nil), memberCluster("b", nil), memberCluster("c", nil)}
	policies := []policyv1alpha1.GlobalNetworkPolicy{
		policy("allow-db", "application", policyv1alpha1.ActionAllow, []string{"a", "b"}, dbEverywhere),
		policy("drop-db", "securityops", policyv1alpha1.ActionDrop, []string{"a", "c"}, dbEverywhere),
		policy("not-here", "application", policyv1alpha1.ActionAllow, []string{"b"}, dbEverywhere),
		policy("no-tier", "nonexistent", policyv1alpha1.ActionAllow, []string{"a"}, dbEverywhere),
	}
	in := MemberInput("a", tiers, members, policies)
	in.Namespaces = []translate.Namespace{{Name: "default"}}
	in.Pods = []translate.InventoryPod{
		{Cluster: "b", Namespace: "default", Labels: map[string]string{"app": "db"}, IP: "10.1.0.1"},
		{Cluster: "c", Namespace: "default", Labels: map[string]string{"app": "db"}, IP: "10.2.0.1"},
	}
	return in
}

func TestMemberInputKeepsPoliciesPlacedOnTheMemberInKnownTiers(t *testing.T) {
	in := fixture()
	var got []string
	for _, g := range in.Policies {
		got = append(got, g.Name)
	}
	if len(got) != 2 || got[0] != "allow-db" || got[1] != "drop-db" {
		t.Fatalf("policies %v, want [allow-db drop-db]", got)
	}
	if peers := PeerClusters(in); len(peers) != 2 || peers[0] != "b" || peers[1] != "c" {
		t.Fatalf("peer clusters %v, want [b c]", peers)
	}
}

// One Work per policy, named for it in the member's hub namespace, with the policy's objects
// only; Antrea's tiers go to the member's shared Work.
func TestCompileSplitsObjectsByPolicy(t *testing.T) {
	for _, form := range []policyv1alpha1.Form{policyv1alpha1.FormMeridian, policyv1alpha1.FormAntrea, policyv1alpha1.FormClusterNetworkPolicy, policyv1alpha1.FormNetworkPolicy} {
		m, err := Compile(form, fixture())
		if err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		if m.Form != form || len(m.Enforcement) != 2 {
			t.Fatalf("%s: form %s, %d enforcements", form, m.Form, len(m.Enforcement))
		}
		for name, w := range m.Works {
			if w.Name != "gnp-"+name || w.Namespace != fleetv1alpha1.MemberClusterNamespacePrefix+"a" ||
				w.Labels[policyv1alpha1.GlobalNetworkPolicyLabel] != name || w.Labels[policyv1alpha1.FormLabel] != string(form) {
				t.Errorf("%s: work %s/%s labels %v", form, w.Namespace, w.Name, w.Labels)
			}
			if len(w.Spec.Objects) == 0 {
				t.Errorf("%s: work of %s carries nothing", form, name)
			}
			for _, o := range w.Spec.Objects {
				var meta struct {
					Kind     string            `json:"kind"`
					Metadata metav1.ObjectMeta `json:"metadata"`
				}
				if err := json.Unmarshal(o.Raw, &meta); err != nil {
					t.Fatal(err)
				}
				if meta.Kind == "Tier" || (meta.Metadata.Name != name && meta.Metadata.Name != "meridian-"+name) {
					t.Errorf("%s: work of %s carries %s %s", form, name, meta.Kind, meta.Metadata.Name)
				}
			}
		}
		switch form {
		case policyv1alpha1.FormNetworkPolicy, policyv1alpha1.FormClusterNetworkPolicy:
			// NetworkPolicy cannot deny, and the upstream ClusterNetworkPolicy cannot match
			// ingress sources by address: drop-db is Unsupported and nothing is written for it.
			if m.Works["drop-db"] != nil || m.Enforcement["drop-db"].Supported() {
				t.Errorf("%s form wrote the Drop policy", form)
			}
			if m.Works["allow-db"] == nil {
				t.Errorf("%s form wrote nothing for the Allow policy", form)
			}
		case policyv1alpha1.FormAntrea:
			if len(m.Works) != 2 {
				t.Errorf("Antrea: %d works, want 2", len(m.Works))
			}
			if m.Works["allow-db"].Spec.StatusFeedback == nil {
				t.Errorf("Antrea work asks for no node counts")
			}
		default:
			if len(m.Works) != 2 || m.Shared != nil {
				t.Errorf("%s: %d works, shared %v", form, len(m.Works), m.Shared != nil)
			}
		}
	}
}

// ClusterSet peers of the other members are in the translated objects; a pod gone changes them.
func TestCompileResolvesClusterSetPeers(t *testing.T) {
	in := fixture()
	m, err := Compile(policyv1alpha1.FormMeridian, in)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(m.Works["allow-db"].Spec.Objects[0].Raw)
	if !contains(raw, "10.1.0.1") || contains(raw, "10.2.0.1") {
		t.Errorf("allow-db (placed on a, b) resolves to %s; want b's pod only", raw)
	}
	in.Pods = in.Pods[1:]
	m2, err := Compile(policyv1alpha1.FormMeridian, in)
	if err != nil {
		t.Fatal(err)
	}
	if contains(string(m2.Works["allow-db"].Spec.Objects[0].Raw), "10.1.0.1") {
		t.Errorf("a gone pod stays in the peers")
	}
	if string(m2.Works["drop-db"].Spec.Objects[0].Raw) != string(m.Works["drop-db"].Spec.Objects[0].Raw) {
		t.Errorf("drop-db changed though its peers did not")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestPeersMatchOnlyClusterSetPeersSelectingThePod(t *testing.T) {
	g := policy("p", "application", policyv1alpha1.ActionAllow, []string{"a"}, dbEverywhere)
	db := &translate.InventoryPod{Labels: map[string]string{"app": "db"}}
	web := &translate.InventoryPod{Labels: map[string]string{"app": "web"}}
	if !PeersMatch(&g, nil, db) || !PeersMatch(&g, db, web) || PeersMatch(&g, web, nil) {
		t.Error("ClusterSet peer app=db: a db pod before or after must match, a web pod not")
	}
	local := policy("q", "application", policyv1alpha1.ActionAllow, []string{"a"}, policyv1alpha1.Peer{PodSelector: &metav1.LabelSelector{}})
	if PeersMatch(&local, db) {
		t.Error("a Cluster-scoped peer follows pods on the hub")
	}
}

func work(gen, observed int64, conds ...metav1.Condition) *fleetv1alpha1.ClusterWork {
	w := &fleetv1alpha1.ClusterWork{}
	w.Generation, w.Status.ObservedGeneration, w.Status.Conditions = gen, observed, conds
	return w
}

func TestClusterStatusFromWork(t *testing.T) {
	exact := translate.Enforcement{Policy: "p", Enforcement: policyv1alpha1.EnforcementExact}
	applied := metav1.Condition{Type: fleetv1alpha1.AppliedCondition, Status: metav1.ConditionTrue}
	degraded := metav1.Condition{Type: fleetv1alpha1.DegradedCondition, Status: metav1.ConditionTrue, Message: "refused"}
	for _, tc := range []struct {
		name string
		enf  translate.Enforcement
		w    *fleetv1alpha1.ClusterWork
		want policyv1alpha1.Phase
	}{
		{"no work yet", exact, nil, policyv1alpha1.PhasePending},
		{"applied", exact, work(2, 2, applied), policyv1alpha1.PhaseRealized},
		{"applied for an older spec", exact, work(3, 2, applied), policyv1alpha1.PhasePending},
		{"refused", exact, work(2, 2, degraded), policyv1alpha1.PhaseFailed},
		{"unsupported", translate.Enforcement{Policy: "p", Enforcement: policyv1alpha1.EnforcementUnsupported}, nil, policyv1alpha1.PhaseFailed},
	} {
		if got := ClusterStatus("a", policyv1alpha1.FormAntrea, tc.enf, tc.w); got.Phase != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got.Phase, tc.want)
		}
	}
	w := work(1, 1, applied)
	w.Status.Objects = []fleetv1alpha1.ObjectStatus{{Feedback: []fleetv1alpha1.FeedbackValue{{Name: NodesRealizedField, Value: "2"}, {Name: NodesDesiredField, Value: "3"}}}}
	s := ClusterStatus("a", policyv1alpha1.FormAntrea, exact, w)
	if s.NodesRealized == nil || *s.NodesRealized != 2 || *s.NodesDesired != 3 {
		t.Errorf("nodes %v/%v, want 2/3", s.NodesRealized, s.NodesDesired)
	}
	if s.Phase != policyv1alpha1.PhasePending {
		t.Errorf("phase %s with 2 of 3 nodes, want Pending", s.Phase)
	}

	// Meridian's agents: counts for the generation they observed; a zero is omitted.
	meridian := func(realized, desired, gen, observed string) policyv1alpha1.ClusterPolicyStatus {
		w := work(1, 1, applied)
		fb := []fleetv1alpha1.FeedbackValue{{Name: NodesRealizedField, Value: realized}, {Name: NodesDesiredField, Value: desired},
			{Name: GenerationField, Value: gen}, {Name: ObservedGenerationField, Value: observed}}
		w.Status.Objects = []fleetv1alpha1.ObjectStatus{{Feedback: fb}}
		return ClusterStatus("a", policyv1alpha1.FormMeridian, exact, w)
	}
	for _, tc := range []struct {
		name                         string
		realized, desired, gen, seen string
		wantRealized, wantDesired    int32
		want                         policyv1alpha1.Phase
	}{
		{"every node", "2", "2", "3", "3", 2, 2, policyv1alpha1.PhaseRealized},
		{"none yet", "", "2", "3", "3", 0, 2, policyv1alpha1.PhasePending},
		{"counts of an older generation", "2", "2", "4", "3", 0, 2, policyv1alpha1.PhasePending},
	} {
		s := meridian(tc.realized, tc.desired, tc.gen, tc.seen)
		if s.NodesRealized == nil || *s.NodesRealized != tc.wantRealized || *s.NodesDesired != tc.wantDesired || s.Phase != tc.want {
			t.Errorf("%s: nodes %v/%v phase %s, want %d/%d %s", tc.name, s.NodesRealized, s.NodesDesired, s.Phase, tc.wantRealized, tc.wantDesired, tc.want)
		}
	}
}

// Meridian's form is enforced only by Meridian's agents: an applied Work is not a policy in force
// until they report it. The other forms are enforced by the member's own implementation, which
// may report no node counts at all (a NetworkPolicy never does): applied is realized for them.
func TestClusterStatusWaitsForMeridianAgents(t *testing.T) {
	exact := translate.Enforcement{Policy: "p", Enforcement: policyv1alpha1.EnforcementExact}
	applied := metav1.Condition{Type: fleetv1alpha1.AppliedCondition, Status: metav1.ConditionTrue}
	feedback := func(w *fleetv1alpha1.ClusterWork, kv ...string) *fleetv1alpha1.ClusterWork {
		var fb []fleetv1alpha1.FeedbackValue
		for i := 0; i < len(kv); i += 2 {
			fb = append(fb, fleetv1alpha1.FeedbackValue{Name: kv[i], Value: kv[i+1]})
		}
		w.Status.Objects = []fleetv1alpha1.ObjectStatus{{Feedback: fb}}
		return w
	}
	for _, tc := range []struct {
		name        string
		form        policyv1alpha1.Form
		w           *fleetv1alpha1.ClusterWork
		want        policyv1alpha1.Phase
		wantMessage string
		awaiting    bool
	}{
		{"Meridian, applied, no agent has written a status", policyv1alpha1.FormMeridian,
			feedback(work(1, 1, applied), GenerationField, "3"), policyv1alpha1.PhasePending, NoAgentReportsMessage, true},
		{"Meridian, applied, no feedback at all", policyv1alpha1.FormMeridian,
			work(1, 1, applied), policyv1alpha1.PhasePending, NoAgentReportsMessage, true},
		// The realization writer runs but no agent is live: it writes zeros, which the status omits.
		{"Meridian, status of no live agent", policyv1alpha1.FormMeridian,
			feedback(work(1, 1, applied), GenerationField, "3", ObservedGenerationField, "3"), policyv1alpha1.PhasePending, NoAgentReportsMessage, true},
		{"Meridian, zero nodes desired", policyv1alpha1.FormMeridian,
			feedback(work(1, 1, applied), NodesRealizedField, "0", NodesDesiredField, "0", GenerationField, "3", ObservedGenerationField, "3"), policyv1alpha1.PhasePending, NoAgentReportsMessage, true},
		{"Meridian, every agent reports", policyv1alpha1.FormMeridian,
			feedback(work(1, 1, applied), NodesRealizedField, "2", NodesDesiredField, "2", GenerationField, "3", ObservedGenerationField, "3"), policyv1alpha1.PhaseRealized, "", false},
		{"Meridian, not applied yet: the Work's own reason", policyv1alpha1.FormMeridian,
			work(2, 1, applied), policyv1alpha1.PhasePending, "The work engine has not applied the latest objects yet.", false},
		{"Antrea, applied, no node counts", policyv1alpha1.FormAntrea, work(1, 1, applied), policyv1alpha1.PhaseRealized, "", false},
		{"ClusterNetworkPolicy, applied", policyv1alpha1.FormClusterNetworkPolicy, work(1, 1, applied), policyv1alpha1.PhaseRealized, "", false},
		{"NetworkPolicy, applied", policyv1alpha1.FormNetworkPolicy, work(1, 1, applied), policyv1alpha1.PhaseRealized, "", false},
	} {
		s := ClusterStatus("a", tc.form, exact, tc.w)
		if s.Phase != tc.want || s.Message != tc.wantMessage {
			t.Errorf("%s: phase %s %q, want %s %q", tc.name, s.Phase, s.Message, tc.want, tc.wantMessage)
		}
		if AwaitingAgents(s) != tc.awaiting {
			t.Errorf("%s: AwaitingAgents %v, want %v", tc.name, !tc.awaiting, tc.awaiting)
		}
	}
}

// kstatus as Flux checks it: Ready False while Reconciling or Stalled is True, never both, and a
// False Reconciling or Stalled is removed.
func TestSetStatusConditions(t *testing.T) {
	realized := policyv1alpha1.ClusterPolicyStatus{Cluster: "b", Form: policyv1alpha1.FormAntrea, Enforcement: policyv1alpha1.EnforcementExact, Phase: policyv1alpha1.PhaseRealized}
	pending := policyv1alpha1.ClusterPolicyStatus{Cluster: "a", Form: policyv1alpha1.FormNetworkPolicy, Enforcement: policyv1alpha1.EnforcementRestricted, Phase: policyv1alpha1.PhasePending}
	failed := policyv1alpha1.ClusterPolicyStatus{Cluster: "c", Form: policyv1alpha1.FormNetworkPolicy, Enforcement: policyv1alpha1.EnforcementUnsupported, Phase: policyv1alpha1.PhaseFailed}
	g := &policyv1alpha1.GlobalNetworkPolicy{}
	g.Generation = 4
	check := func(step string, ready metav1.ConditionStatus, reason string, reconciling, stalled bool) {
		t.Helper()
		r := apimeta.FindStatusCondition(g.Status.Conditions, policyv1alpha1.ReadyCondition)
		if r == nil || r.Status != ready || r.Reason != reason || r.ObservedGeneration != 4 {
			t.Errorf("%s: Ready %+v, want %s %s", step, r, ready, reason)
		}
		if got := apimeta.IsStatusConditionTrue(g.Status.Conditions, policyv1alpha1.ReconcilingCondition); got != reconciling {
			t.Errorf("%s: Reconciling %v", step, got)
		}
		if got := apimeta.IsStatusConditionTrue(g.Status.Conditions, policyv1alpha1.StalledCondition); got != stalled {
			t.Errorf("%s: Stalled %v", step, got)
		}
		if len(g.Status.Conditions) != 1+btoi(reconciling)+btoi(stalled) {
			t.Errorf("%s: conditions %v keep a False Reconciling or Stalled", step, g.Status.Conditions)
		}
	}
	SetStatus(g, []policyv1alpha1.ClusterPolicyStatus{realized, pending}, Outcome{})
	check("pending", metav1.ConditionFalse, policyv1alpha1.PendingReason, true, false)
	if g.Status.Summary != "1/2" || g.Status.Forms != "a=NetworkPolicy,b=Antrea" || g.Status.Enforcement != policyv1alpha1.EnforcementRestricted {
		t.Errorf("summary %q forms %q enforcement %q", g.Status.Summary, g.Status.Forms, g.Status.Enforcement)
	}
	SetStatus(g, []policyv1alpha1.ClusterPolicyStatus{realized, pending}, Outcome{Unreachable: []string{"a"}})
	check("unreachable", metav1.ConditionFalse, policyv1alpha1.MembersUnreachableReason, true, false)
	noAgent := policyv1alpha1.ClusterPolicyStatus{Cluster: "d", Form: policyv1alpha1.FormMeridian, Enforcement: policyv1alpha1.EnforcementExact,
		Phase: policyv1alpha1.PhasePending, Message: NoAgentReportsMessage}
	SetStatus(g, []policyv1alpha1.ClusterPolicyStatus{realized, pending, noAgent}, Outcome{})
	check("no agent reports", metav1.ConditionFalse, policyv1alpha1.NoAgentReportsReason, true, false)
	if r := apimeta.FindStatusCondition(g.Status.Conditions, policyv1alpha1.ReadyCondition); !strings.Contains(r.Message, "a, d to realize") ||
		!strings.Contains(r.Message, "No Meridian agent reports it yet in d:") {
		t.Errorf("no agent reports: Ready message %q names neither the pending members nor the one without agents", r.Message)
	}
	SetStatus(g, []policyv1alpha1.ClusterPolicyStatus{realized, noAgent}, Outcome{Unreachable: []string{"d"}})
	check("no agent reports, unreachable", metav1.ConditionFalse, policyv1alpha1.MembersUnreachableReason, true, false)
	SetStatus(g, []policyv1alpha1.ClusterPolicyStatus{realized, failed}, Outcome{})
	check("unsupported", metav1.ConditionFalse, policyv1alpha1.UnsupportedReason, false, true)
	SetStatus(g, []policyv1alpha1.ClusterPolicyStatus{realized}, Outcome{})
	check("realized", metav1.ConditionTrue, policyv1alpha1.RealizedReason, false, false)
	SetStatus(g, nil, Outcome{Reason: policyv1alpha1.UnknownTierReason, Message: "x"})
	check("unknown tier", metav1.ConditionFalse, policyv1alpha1.UnknownTierReason, false, true)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
