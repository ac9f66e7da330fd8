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
