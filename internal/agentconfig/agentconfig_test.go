package agentconfig

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent/agentfile"
)

func sampleConfig() *fleetv1alpha1.AgentConfig {
	audit := fleetv1alpha1.EnforcementAudit
	return &fleetv1alpha1.AgentConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: fleetv1alpha1.AgentConfigSpec{
			Placement: fleetv1alpha1.Placement{ClusterSelector: &metav1.LabelSelector{}},
			Image:     "registry.example/meridian-node-agent:v1.2.0",
			Version:   "v1.2.0",
			Config: fleetv1alpha1.AgentSettings{EnforcementMode: fleetv1alpha1.EnforcementEnforce, HeartbeatIntervalSeconds: 10,
				MetricsPort: 9465, DropLogging: fleetv1alpha1.DropLogging{RatePerSecond: 100}},
			Overrides: []fleetv1alpha1.AgentOverride{
				{Name: "staging-audits", ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"env": "staging"}},
					Config: fleetv1alpha1.AgentSettingsOverride{EnforcementMode: &audit, LogVerbosity: ptr.To[int32](4), FeatureGates: map[string]bool{"ProcessMetrics": true}}},
				{Name: "zone-b-port", ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"zone": "b"}},
					Config: fleetv1alpha1.AgentSettingsOverride{MetricsPort: ptr.To[int32](9500), LogVerbosity: ptr.To[int32](1)}},
			},
		},
	}
}

func member(name string, labels map[string]string) *fleetv1alpha1.MemberCluster {
	return &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among the compiled objects", kind, name)
	return nil
}

func TestOverridesApplyInOrderByLabels(t *testing.T) {
	ac := sampleConfig()
	for _, tc := range []struct {
		labels    map[string]string
		mode      fleetv1alpha1.EnforcementMode
		verbosity int32
		port      int32
		gate      bool
	}{
		{nil, "Enforce", 0, 9465, false},
		{map[string]string{"env": "staging"}, "Audit", 4, 9465, true},
		{map[string]string{"zone": "b"}, "Enforce", 1, 9500, false},
		{map[string]string{"env": "staging", "zone": "b"}, "Audit", 1, 9500, true}, // the later override wins
	} {
		s, err := Settings(ac, tc.labels)
		if err != nil {
			t.Fatal(err)
		}
		if s.EnforcementMode != tc.mode || s.LogVerbosity != tc.verbosity || s.MetricsPort != tc.port || s.FeatureGates["ProcessMetrics"] != tc.gate {
			t.Errorf("labels %v: got %+v", tc.labels, s)
		}
	}
	if len(ac.Spec.Config.FeatureGates) != 0 {
		t.Fatal("applying an override changed the AgentConfig's own settings")
	}
}

func TestCompileMember(t *testing.T) {
	ac := sampleConfig()
	m, err := Compile(ac, member("m1", map[string]string{"zone": "b"}))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range m.Objects {
		kinds = append(kinds, o.GetKind())
	}
	want := "Namespace CustomResourceDefinition CustomResourceDefinition ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding ValidatingAdmissionPolicy ValidatingAdmissionPolicyBinding ConfigMap DaemonSet"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("kinds %v, want %s", kinds, want)
	}
	if crd := m.Objects[1]; crd.GetName() != NodeAgentInfoCRDName {
		t.Fatalf("CRD %s", crd.GetName())
	}
	// With the agent, the member serves MemberNetworkPolicy: the hub chooses the exact form.
	if crd := m.Objects[2]; crd.GetName() != MemberNetworkPolicyCRDName {
		t.Fatalf("CRD %s", crd.GetName())
	}

	role := &rbacv1.ClusterRole{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, m.Objects, "ClusterRole", AgentName).Object, role); err != nil {
		t.Fatal(err)
	}
	var grants []string
	for _, r := range role.Rules {
		if len(r.ResourceNames)+len(r.NonResourceURLs) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				grants = append(grants, fmt.Sprintf("%s/%s:%s", g, res, strings.Join(r.Verbs, ",")))
			}
		}
	}
	// Least privilege: write its NodeAgentInfo; only list and watch what the dataplane compiles.
	wantGrants := "member.meridian.io/nodeagentinfos:get,list,watch,create,update member.meridian.io/membernetworkpolicies:list,watch member.meridian.io/membernetworkpolicies/status:patch networking.k8s.io/networkpolicies:list,watch /pods:list,watch /namespaces:list,watch"
	if got := strings.Join(grants, " "); got != wantGrants {
		t.Errorf("ClusterRole grants %s, want %s", got, wantGrants)
	}

	cm := find(t, m.Objects, "ConfigMap", ConfigMapName)
	file, _, _ := unstructured.NestedString(cm.Object, "data", agentfile.FileName)
	if agentfile.Hash([]byte(file)) != m.ConfigHash {
		t.Fatal("the ConfigMap's file does not hash to the compiled hash")
	}
	cfg, err := agentfile.Parse([]byte(file))
	if err != nil || cfg.MetricsPort != 9500 || cfg.LogVerbosity != 1 {
		t.Fatalf("the config file does not parse to the member's settings: %v %+v", err, cfg)
	}

	ds := &appsv1.DaemonSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, m.Objects, "DaemonSet", AgentName).Object, ds); err != nil {
		t.Fatal(err)
	}
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	switch {
	case ds.Spec.Template.Annotations[fleetv1alpha1.AgentConfigHashAnnotation] != m.ConfigHash:
		t.Error("the pod template does not carry the config hash")
	case !pod.HostNetwork || pod.ServiceAccountName != AgentName:
		t.Error("the agent must run in the host network with its service account")
	case len(pod.Tolerations) != 1 || pod.Tolerations[0].Operator != "Exists" || pod.Tolerations[0].Key != "":
		t.Errorf("tolerations %+v do not tolerate everything", pod.Tolerations)
	case strings.Join(capStrings(c.SecurityContext.Capabilities.Add), ",") != "NET_ADMIN,NET_RAW" || capStrings(c.SecurityContext.Capabilities.Drop)[0] != "ALL":
		t.Errorf("capabilities %+v", c.SecurityContext.Capabilities)
	case *c.SecurityContext.Privileged || *c.SecurityContext.AllowPrivilegeEscalation:
		t.Error("the agent must not be privileged")
	case c.Ports[0].ContainerPort != 9500 || c.ReadinessProbe.HTTPGet.Port.IntValue() != 9500:
		t.Error("the metrics port override does not reach the container")
	case c.Env[0].Name != "NODE_NAME" || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName":
		t.Error("NODE_NAME must come from spec.nodeName")
	case ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() != 1:
		t.Error("the rolling update bound defaults to 1")
	case c.Image != ac.Spec.Image:
		t.Error("image")
	}
	// A changed setting changes the hash in the pod template; an unrelated member keeps its own.
	ac2 := sampleConfig()
	ac2.Spec.Overrides[1].Config.LogVerbosity = ptr.To[int32](2)
	m2, _ := Compile(ac2, member("m1", map[string]string{"zone": "b"}))
	m3, _ := Compile(ac2, member("m2", nil))
	m4, _ := Compile(ac, member("m2", nil))
	if m2.ConfigHash == m.ConfigHash || m2.Revision == m.Revision {
		t.Error("a changed override kept the hash")
	}
	if m3.ConfigHash != m4.ConfigHash {
		t.Error("an override for other clusters changed an unselected member's config")
	}
}

func capStrings[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = string(c)
	}
	return out
}

func TestOwnNodePolicy(t *testing.T) {
	p := ownNodePolicy()
	if p.Spec.MatchConditions[0].Expression != "request.userInfo.username == 'system:serviceaccount:meridian-system:meridian-node-agent'" {
		t.Fatalf("match condition %q", p.Spec.MatchConditions[0].Expression)
	}
	if !strings.Contains(p.Spec.Variables[0].Expression, "'authentication.kubernetes.io/node-name' in request.userInfo.extra") {
		t.Fatalf("node name variable %q", p.Spec.Variables[0].Expression)
	}
	if *p.Spec.FailurePolicy != "Fail" {
		t.Fatal("the policy must fail closed")
	}
}

func TestDesiredWork(t *testing.T) {
	ac := sampleConfig()
	m, err := Compile(ac, member("m1", nil))
	if err != nil {
		t.Fatal(err)
	}
	w, err := DesiredWork(ac, "m1", m)
	if err != nil {
		t.Fatal(err)
	}
	if w.Name != "agent-default" || w.Namespace != "meridian-member-m1" || w.Annotations[RevisionAnnotation] != m.Revision || len(w.Spec.Objects) != len(m.Objects) {
		t.Fatalf("work %s/%s annotations %v objects %d", w.Namespace, w.Name, w.Annotations, len(w.Spec.Objects))
	}
	var first map[string]any
	if err := json.Unmarshal(w.Spec.Objects[0].Raw, &first); err != nil || first["kind"] != "Namespace" {
		t.Fatalf("first object %v %v", first["kind"], err)
	}
	if len(w.Spec.StatusFeedback) != 1 || w.Spec.StatusFeedback[0].Kind != "DaemonSet" {
		t.Fatal("the Work must read the DaemonSet's status back")
	}
}

func TestCompileRefusesABadOverride(t *testing.T) {
	ac := sampleConfig()
	ac.Spec.Overrides[0].ClusterSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}}}
	if _, err := Compile(ac, member("m1", nil)); err == nil || !strings.Contains(err.Error(), "staging-audits") {
		t.Fatalf("error %v does not name the override", err)
	}
}

func TestWaves(t *testing.T) {
	clusters := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		size *intstr.IntOrString
		want string
	}{
		{nil, "[[a] [b] [c] [d] [e]]"},
		{ptr.To(intstr.FromInt32(2)), "[[a b] [c d] [e]]"},
		{ptr.To(intstr.FromString("40%")), "[[a b] [c d] [e]]"},
		{ptr.To(intstr.FromString("1%")), "[[a] [b] [c] [d] [e]]"},
		{ptr.To(intstr.FromString("100%")), "[[a b c d e]]"},
		{ptr.To(intstr.FromInt32(10)), "[[a b c d e]]"},
	} {
		w, err := Waves(clusters, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmtWaves(w); got != tc.want {
			t.Errorf("size %v: %s, want %s", tc.size, got, tc.want)
		}
	}
}

func fmtWaves(w [][]string) string {
	var parts []string
	for _, x := range w {
		parts = append(parts, "["+strings.Join(x, " ")+"]")
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestPlanRollout(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	done := func(n string) ClusterState {
		return ClusterState{Name: n, HasRevision: true, Since: now.Add(-time.Minute), Observed: true, Desired: 3, Updated: 3, Ready: 3,
			Agents: &fleetv1alpha1.AgentSummary{Desired: 3, UpToDate: 3, Ready: 3}}
	}
	// dsOnly: the DaemonSet says done, the agents themselves do not yet (one still on the old config).
	dsOnly := func(n string) ClusterState {
		s := done(n)
		s.Agents = &fleetv1alpha1.AgentSummary{Desired: 3, UpToDate: 2, Ready: 3}
		return s
	}
	old := func(n string) ClusterState {
		return ClusterState{Name: n, Desired: 3, Updated: 3, Ready: 3, Observed: true}
	}
	progressing := func(n string, since time.Duration) ClusterState {
		return ClusterState{Name: n, HasRevision: true, Since: now.Add(-since), Observed: true, Desired: 3, Updated: 1, Ready: 2}
	}
	failed := func(n string) ClusterState {
		s := progressing(n, time.Minute)
		s.Failed, s.Message = true, "node n-1: ConfigValid=False"
		return s
	}
	unobserved := func(n string) ClusterState {
		return ClusterState{Name: n, HasRevision: true, Since: now.Add(-time.Second), Desired: 0, Updated: 0, Ready: 0}
	}
	deadline := fleetv1alpha1.AgentRollout{ProgressDeadlineSeconds: 600}
	for _, tc := range []struct {
		name      string
		rollout   fleetv1alpha1.AgentRollout
		states    []ClusterState
		update    string
		phase     fleetv1alpha1.RolloutPhase
		reason    string
		wave      int
		requeue   time.Duration
		inMessage string
	}{
		{name: "a fresh rollout starts with the first wave only", rollout: deadline,
			states: []ClusterState{old("a"), old("b"), old("c")}, update: "a", phase: "Progressing", reason: "RolloutProgressing", wave: 1, inMessage: "Rolling out wave 1 of 3: clusters a."},
		{name: "the second wave waits while the first progresses", rollout: deadline,
			states: []ClusterState{progressing("a", time.Minute), old("b"), old("c")}, phase: "Progressing", wave: 1, requeue: 9 * time.Minute},
		{name: "a DaemonSet status from before the change does not count as done", rollout: deadline,
			states: []ClusterState{unobserved("a"), old("b")}, phase: "Progressing", wave: 1, requeue: 10*time.Minute - time.Second},
		{name: "the second wave waits while the DaemonSet is done but an agent still reports the old config", rollout: deadline,
			states: []ClusterState{dsOnly("a"), old("b")}, phase: "Progressing", wave: 1, requeue: 9 * time.Minute},
		{name: "the second wave starts when the first is done", rollout: deadline,
			states: []ClusterState{done("a"), old("b"), old("c")}, update: "b", phase: "Progressing", wave: 2, inMessage: "Rolling out wave 2 of 3: clusters b."},
		{name: "waves by percentage", rollout: fleetv1alpha1.AgentRollout{WaveSize: ptr.To(intstr.FromString("50%"))},
			states: []ClusterState{done("a"), done("b"), old("c"), old("d")}, update: "c,d", phase: "Progressing", wave: 2, inMessage: "Rolling out wave 2 of 2: clusters c, d."},
		{name: "complete", rollout: deadline,
			states: []ClusterState{done("a"), done("b")}, phase: "Complete", reason: "RolloutComplete", wave: 2},
		{name: "a failed cluster stalls the rollout and later waves keep the old config", rollout: deadline,
			states: []ClusterState{done("a"), failed("b"), old("c")}, phase: "Stalled", reason: "ConfigInvalid", wave: 2, inMessage: "The rollout stopped at wave 2 of 3: cluster b failed: node n-1: ConfigValid=False"},
		{name: "a failed cluster stalls even its own wave's pending clusters", rollout: fleetv1alpha1.AgentRollout{WaveSize: ptr.To(intstr.FromInt32(2))},
			states: []ClusterState{failed("a"), old("b")}, phase: "Stalled", reason: "ConfigInvalid", wave: 1, inMessage: "stopped at wave 1 of 1:"},
		{name: "a passed deadline stalls the rollout", rollout: deadline,
			states: []ClusterState{progressing("a", 11*time.Minute), old("b")}, phase: "Stalled", reason: "ProgressDeadlineExceeded", wave: 1, inMessage: "1/3 agents updated"},
		{name: "failurePolicy Continue goes on past a failed cluster", rollout: fleetv1alpha1.AgentRollout{FailurePolicy: fleetv1alpha1.RolloutContinue},
			states: []ClusterState{failed("a"), old("b")}, update: "b", phase: "Progressing", wave: 2, inMessage: "Rolling out wave 2 of 2: clusters b."},
		{name: "paused hands the change to nobody new", rollout: fleetv1alpha1.AgentRollout{Paused: true},
			states: []ClusterState{done("a"), old("b")}, phase: "Paused", reason: "RolloutPaused", wave: 2, inMessage: "The rollout is paused at wave 2 of 2; clusters b keep"},
		// Counted as the progress message counts, from 1: paused before its first wave is "wave 1".
		{name: "paused before the first wave", rollout: fleetv1alpha1.AgentRollout{Paused: true},
			states: []ClusterState{old("a"), old("b")}, phase: "Paused", reason: "RolloutPaused", wave: 1, inMessage: "The rollout is paused at wave 1 of 2; clusters a keep"},
		{name: "paused after the last wave is complete", rollout: fleetv1alpha1.AgentRollout{Paused: true},
			states: []ClusterState{done("a"), done("b")}, phase: "Complete", wave: 2},
		{name: "a cluster that joins an earlier wave later is updated before the rollout goes on", rollout: deadline,
			states: []ClusterState{old("a"), done("b"), old("c")}, update: "a", phase: "Progressing", wave: 1},
		{name: "no clusters is complete", rollout: deadline, phase: "Complete", wave: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanRollout(tc.rollout, tc.states, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Update, ","); got != tc.update {
				t.Errorf("update %q, want %q", got, tc.update)
			}
			if p.Phase != tc.phase || p.Wave != tc.wave {
				t.Errorf("phase %s wave %d, want %s %d (%s)", p.Phase, p.Wave, tc.phase, tc.wave, p.Message)
			}
			if tc.reason != "" && p.Reason != tc.reason {
				t.Errorf("reason %s, want %s", p.Reason, tc.reason)
			}
			if p.RequeueAfter != tc.requeue {
				t.Errorf("requeue %s, want %s", p.RequeueAfter, tc.requeue)
			}
			if !strings.Contains(p.Message, tc.inMessage) {
				t.Errorf("message %q lacks %q", p.Message, tc.inMessage)
			}
		})
	}
}
