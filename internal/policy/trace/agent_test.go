package trace

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	memberv1alpha1 "github.com/meridian-io/meridian/apis/member/v1alpha1"
	policyv1alpha1 "github.com/meridian-io/meridian/apis/policy/v1alpha1"
	"github.com/meridian-io/meridian/internal/agent"
	"github.com/meridian-io/meridian/internal/dataplane"
)

// agentPod is the DaemonSet's pod on node, as internal/agentconfig writes it.
func agentPod(node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: memberv1alpha1.AgentNamespace, Name: "meridian-node-agent-" + node, Labels: map[string]string{agentLabel: agentName}},
		Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{{Name: "agent",
			Ports: []corev1.ContainerPort{{Name: agentPortName, ContainerPort: 9465}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// agentServer plays one node's agent: it answers CountersPath with the agent's own type, for
// pods, as the agent does (404 for another pod).
func agentServer(t *testing.T, pods map[string]agent.PodCounters) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pc, ok := pods[r.URL.Query().Get("pod")]
		if r.URL.Path != agent.CountersPath || !ok {
			http.Error(w, "not a pod of this node", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(pc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// proxyTo plays the member apiserver's pods/proxy: requests to the agent's pod and port reach
// srv; the apiserver's error for another answer.
func proxyTo(srv *httptest.Server, wantPod string, calls *int) func(context.Context, string, string, int32, string, url.Values) ([]byte, error) {
	return func(ctx context.Context, ns, pod string, port int32, path string, q url.Values) ([]byte, error) {
		*calls++
		if ns != memberv1alpha1.AgentNamespace || pod != wantPod || port != 9465 {
			return nil, fmt.Errorf("proxy to %s/%s:%d: unexpected", ns, pod, port)
		}
		resp, err := http.Get(srv.URL + path + "?" + q.Encode())
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("the server responded %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return body, nil
	}
}

func TestTraceReadsTheAgentsRule(t *testing.T) {
	guard := gnp("guard-db", policyv1alpha1.TierSecurityOps, 50, toDB("other", policyv1alpha1.ActionAllow, 1), toDB("no-5432", policyv1alpha1.ActionDrop, 5432))
	web0 := pod("shop", "web-0", "198.18.0.10", map[string]string{"app": "web"})
	web0.Spec.NodeName = "node-a"
	b := newBed(t, []client.Object{guard})
	if err := b.members["m1"].Delete(context.Background(), pod("shop", "web-0", "", nil)); err != nil {
		t.Fatal(err)
	}
	// The agent of the other node must not be asked (the proxy refuses its pod).
	for _, o := range []client.Object{web0, agentPod("node-a"), agentPod("node-b")} {
		if err := b.members["m1"].Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	srv := agentServer(t, map[string]agent.PodCounters{"shop/web-0": {Node: "node-a", Mode: "Enforce", Pod: "shop/web-0", Rules: []dataplane.RuleCounter{
		{Direction: "egress", Stage: "tiered", Index: 0, Pod: "shop/web-0", Name: "securityops/guard-db/egress/0", Action: dataplane.Allow, Packets: 1},
		{Direction: "egress", Stage: "tiered", Index: 1, Pod: "shop/web-0", Name: "securityops/guard-db/egress/1", Action: dataplane.Drop, Packets: 7, Bytes: 420},
		{Direction: "ingress", Stage: "default", Index: -1, Pod: "shop/web-0", Action: dataplane.Allow},
	}}})
	calls := 0
	b.proxy["m1"] = proxyTo(srv, "meridian-node-agent-node-a", &calls)

	res, out := b.trace(t, 5432)
	t.Log(out)
	want := AgentRule{Node: "node-a", AgentPod: "meridian-system/meridian-node-agent-node-a", Mode: "Enforce", Rule: "securityops/guard-db/egress/1",
		Found: true, Stage: "tiered", Index: 1, Action: "Drop", Packets: 7, Bytes: 420}
	if len(res.EgressAgent) != 1 || res.EgressAgent[0] != want || calls != 1 {
		t.Fatalf("egress agent rule %+v after %d proxy calls; want [%+v] after 1", res.EgressAgent, calls, want)
	}
	if len(res.IngressAgent) != 0 {
		t.Errorf("the ingress side has no path, yet %+v", res.IngressAgent)
	}
	line := "    nftables rule securityops/guard-db/egress/1 (agent meridian-system/meridian-node-agent-node-a on node node-a): tiered rule #1, Drop, matched 7 packets, 420 bytes\n"
	if !strings.Contains(out, "egress rule no-5432: Drop\n    in m1: the policy's status does not report this cluster yet\n"+line) {
		t.Errorf("the agent's rule is not under the deciding step:\n%s", out)
	}
	js, err := json.Marshal(res)
	if err != nil || !strings.Contains(string(js), `"EgressAgent":[{"node":"node-a","agentPod":"meridian-system/meridian-node-agent-node-a","mode":"Enforce","rule":"securityops/guard-db/egress/1","found":true,"stage":"tiered","index":1,"action":"Drop","packets":7,"bytes":420}]`) {
		t.Errorf("-o json: %s, %v", js, err)
	}

	// The table disagrees with the reference: said, the verdict still printed.
	guard.Spec.Egress[1].Action = policyv1alpha1.ActionReject
	if err := b.hub.Update(context.Background(), guard); err != nil {
		t.Fatal(err)
	}
	res, out = b.trace(t, 5432)
	if res.Decision.Verdict != "Reject" || !strings.Contains(out, "the table's rule does Drop where the policy says Reject") {
		t.Errorf("want the disagreement said:\n%s", out)
	}
}

func TestTraceWithoutTheAgentStillDecides(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(b *bed, calls *int)
		note  string
	}{
		{"no agent on the node", func(b *bed, calls *int) {
			b.proxy["m1"] = proxyTo(agentServer(t, nil), "x", calls)
			_ = b.members["m1"].Create(context.Background(), agentPod("node-b"))
		}, "m1 runs no Meridian node agent on node node-a (no pod app.kubernetes.io/name=meridian-node-agent in meridian-system there): no nftables rule to show"},
		{"agent unreachable", func(b *bed, calls *int) {
			b.proxy["m1"] = func(context.Context, string, string, int32, string, url.Values) ([]byte, error) {
				*calls++
				return nil, fmt.Errorf("error trying to reach service: dial tcp 198.18.0.1:9465: connect: connection refused")
			}
			_ = b.members["m1"].Create(context.Background(), agentPod("node-a"))
		}, "could not read the agent meridian-system/meridian-node-agent-node-a through m1's apiserver (pods/proxy, port 9465): error trying to reach service"},
		{"the pod is not the agent's", func(b *bed, calls *int) {
			b.proxy["m1"] = proxyTo(agentServer(t, nil), "meridian-node-agent-node-a", calls)
			_ = b.members["m1"].Create(context.Background(), agentPod("node-a"))
		}, "the server responded 404: not a pod of this node"},
		{"no such rule in the table", func(b *bed, calls *int) {
			b.proxy["m1"] = proxyTo(agentServer(t, map[string]agent.PodCounters{"shop/web-0": {Node: "node-a", Mode: "Audit", Rules: []dataplane.RuleCounter{
				{Direction: "egress", Stage: "default", Index: -1, Action: dataplane.Allow}}}}), "meridian-node-agent-node-a", calls)
			_ = b.members["m1"].Create(context.Background(), agentPod("node-a"))
		}, "nftables rule securityops/guard-db/egress/0 (agent meridian-system/meridian-node-agent-node-a on node node-a): the agent's table holds no such rule for the pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, []client.Object{gnp("guard-db", policyv1alpha1.TierSecurityOps, 50, toDB("no-5432", policyv1alpha1.ActionDrop, 5432))})
			web0 := &corev1.Pod{}
			if err := b.members["m1"].Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web-0"}, web0); err != nil {
				t.Fatal(err)
			}
			web0.Spec.NodeName = "node-a"
			if err := b.members["m1"].Update(context.Background(), web0); err != nil {
				t.Fatal(err)
			}
			calls := 0
			tc.setup(b, &calls)
			res, out := b.trace(t, 5432)
			if res.Decision.Verdict != "Drop" || !strings.Contains(out, "egress rule no-5432: Drop") {
				t.Fatalf("the verdict must still print:\n%s", out)
			}
			if len(res.EgressAgent) != 1 || res.EgressAgent[0].Found || !strings.Contains(out, tc.note) {
				t.Errorf("want %q, got %+v:\n%s", tc.note, res.EgressAgent, out)
			}
		})
	}
}

// decidingAgent plays one node's agent for one pod: its rules, and the decision it gives only
// for the connection the test expects trace to name (direction, peer, protocol, port).
func decidingAgent(t *testing.T, pc agent.PodCounters, wantConn url.Values, decision *dataplane.Decision) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != agent.CountersPath || q.Get("pod") != pc.Pod {
			http.Error(w, "not a pod of this node", http.StatusNotFound)
			return
		}
		out := pc
		q.Del("pod")
		if q.Encode() == wantConn.Encode() {
			out.Decision = decision
		} else {
			t.Errorf("trace asked the agent about %s, want %s", q.Encode(), wantConn.Encode())
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTraceShowsTheAgentsRuleForNetworkPoliciesAndTheDefault(t *testing.T) {
	isolate := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "deny-all"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	web := AgentRule{Node: "node-a", AgentPod: "meridian-system/meridian-node-agent-node-a", Mode: "Enforce"}
	db := AgentRule{Node: "node-b", AgentPod: "meridian-system/meridian-node-agent-node-b", Mode: "Enforce"}
	isolated := dataplane.RuleCounter{Direction: "ingress", Stage: "networkpolicy", Index: -1, Pod: "data/db-0", Name: "selected by a NetworkPolicy, no rule allows", Action: dataplane.Drop, Packets: 4, Bytes: 240}
	allowRule := dataplane.RuleCounter{Direction: "ingress", Stage: "networkpolicy", Index: 0, Pod: "data/db-0", Name: "networkpolicy/data/deny-all/ingress/0", Action: dataplane.Allow, Packets: 2, Bytes: 120}
	for _, tc := range []struct {
		name     string
		decision *dataplane.Decision
		want     AgentRule
		line     string
	}{
		{"the isolation drop", &dataplane.Decision{Verdict: dataplane.VerdictDrop, Stage: "networkpolicy", Index: -1}, AgentRule{Rule: isolated.Name, Found: true, Stage: "networkpolicy", Index: -1, Action: "Drop", Packets: 4, Bytes: 240},
			"    nftables rule \"selected by a NetworkPolicy, no rule allows\" (agent meridian-system/meridian-node-agent-node-b on node node-b): networkpolicy stage's closing rule, Drop, matched 4 packets, 240 bytes\n"},
		{"the table disagrees", &dataplane.Decision{Verdict: dataplane.VerdictAllow, Stage: "networkpolicy", Index: 0, Name: allowRule.Name},
			AgentRule{Rule: allowRule.Name, Found: true, Stage: "networkpolicy", Index: 0, Action: "Allow", Packets: 2, Bytes: 120,
				Note: "the table decides this side by its networkpolicy stage (Allow) where the reference says Drop by the networkpolicy stage (it lags the member's objects, or differs)"},
			"    nftables rule networkpolicy/data/deny-all/ingress/0 (agent meridian-system/meridian-node-agent-node-b on node node-b): networkpolicy rule #0, Allow, matched 2 packets, 120 bytes\n"},
		{"an agent that does not decide", nil, AgentRule{Note: "the agent did not say which of its rules decides this connection (its table is being rebuilt after a failed change, or the agent is older than this trace)"},
			"    nftables rule (agent meridian-system/meridian-node-agent-node-b on node node-b): the agent did not say"},
		{"no counted rule", &dataplane.Decision{Verdict: dataplane.VerdictDrop, Stage: "networkpolicy", Index: 7}, AgentRule{Note: "the agent decides this connection by its networkpolicy rule 7, but its table holds no counted rule of that stage and index for the pod"},
			"the agent decides this connection by its networkpolicy rule 7, but its table holds no counted rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// web-0's egress: a Pass, then the default (no NetworkPolicy in shop); db-0's ingress:
			// isolated by deny-all.
			b := newBed(t, []client.Object{gnp("pass-db", policyv1alpha1.TierSecurityOps, 1, toDB("pass", policyv1alpha1.ActionPass, 0))}, isolate)
			for m, p := range map[string]client.ObjectKey{"m1": {Namespace: "shop", Name: "web-0"}, "m2": {Namespace: "data", Name: "db-0"}} {
				node := map[string]string{"m1": "node-a", "m2": "node-b"}[m]
				obj := &corev1.Pod{}
				if err := b.members[m].Get(context.Background(), p, obj); err != nil {
					t.Fatal(err)
				}
				obj.Spec.NodeName = node
				if err := b.members[m].Update(context.Background(), obj); err != nil {
					t.Fatal(err)
				}
				if err := b.members[m].Create(context.Background(), agentPod(node)); err != nil {
					t.Fatal(err)
				}
			}
			calls := 0
			b.proxy["m1"] = proxyTo(decidingAgent(t, agent.PodCounters{Node: "node-a", Mode: "Enforce", Pod: "shop/web-0", Rules: []dataplane.RuleCounter{
				{Direction: "egress", Stage: "tiered", Index: 0, Pod: "shop/web-0", Name: "securityops/pass-db/egress/0", Action: dataplane.Pass, Packets: 9, Bytes: 540},
				{Direction: "egress", Stage: "default", Index: -1, Pod: "shop/web-0", Name: "nothing matched: allow", Action: dataplane.Allow, Packets: 5, Bytes: 300},
			}}, url.Values{"direction": {"egress"}, "peer": {"198.18.1.20"}, "protocol": {"TCP"}, "port": {"5432"}},
				&dataplane.Decision{Verdict: dataplane.VerdictAllow, Stage: "default", Index: -1}), "meridian-node-agent-node-a", &calls)
			b.proxy["m2"] = proxyTo(decidingAgent(t, agent.PodCounters{Node: "node-b", Mode: "Enforce", Pod: "data/db-0", Rules: []dataplane.RuleCounter{isolated, allowRule}},
				url.Values{"direction": {"ingress"}, "peer": {"198.18.0.10"}, "protocol": {"TCP"}, "port": {"5432"}}, tc.decision), "meridian-node-agent-node-b", &calls)

			res, out := b.trace(t, 5432)
			t.Log(out)
			if calls != 2 {
				t.Errorf("%d reads of agents; want one per side", calls)
			}
			wantEgress := web
			wantEgress.Rule, wantEgress.Found, wantEgress.Stage, wantEgress.Index, wantEgress.Action, wantEgress.Packets, wantEgress.Bytes = "nothing matched: allow", true, "default", -1, "Allow", 5, 300
			if res.EgressAgentDecision == nil || *res.EgressAgentDecision != wantEgress {
				t.Errorf("egress decision %+v, want %+v", res.EgressAgentDecision, wantEgress)
			}
			if len(res.EgressAgent) != 1 || res.EgressAgent[0].Rule != "securityops/pass-db/egress/0" || res.EgressAgent[0].Packets != 9 {
				t.Errorf("the Pass step's rule is %+v", res.EgressAgent)
			}
			if !strings.Contains(out, "and no baseline rule matched: allowed (nothing decided)\n"+
				"    nftables rule \"nothing matched: allow\" (agent meridian-system/meridian-node-agent-node-a on node node-a): default stage's closing rule, Allow, matched 5 packets, 300 bytes\n") {
				t.Errorf("the default's rule is not under the egress side's default line:\n%s", out)
			}
			want := db
			want.Rule, want.Found, want.Stage, want.Index, want.Action, want.Packets, want.Bytes, want.Note = tc.want.Rule, tc.want.Found, tc.want.Stage, tc.want.Index, tc.want.Action, tc.want.Packets, tc.want.Bytes, tc.want.Note
			if res.IngressAgentDecision == nil || *res.IngressAgentDecision != want {
				t.Errorf("ingress decision %+v, want %+v", res.IngressAgentDecision, want)
			}
			if !strings.Contains(out, "(deny-all): none of them allows the connection: denied\n") || !strings.Contains(out, tc.line) {
				t.Errorf("output lacks %q:\n%s", tc.line, out)
			}
		})
	}
}
