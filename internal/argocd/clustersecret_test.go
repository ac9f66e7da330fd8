package argocd

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestSecretCarriesTheMembersCredentialsAndLabels(t *testing.T) {
	mc := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "east-1", Labels: map[string]string{
		"env": "prod", SecretTypeLabel: "repository", ManagedByLabel: "someone",
	}}}
	cfg := &rest.Config{Host: "https://10.0.0.1:6443", BearerToken: "t0k3n",
		TLSClientConfig: rest.TLSClientConfig{CAData: []byte("CA PEM"), ServerName: "api.east"}}
	s, err := Secret(mc, cfg, "argocd")
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "argocd" || s.Name != "meridian-east-1" {
		t.Errorf("secret %s/%s", s.Namespace, s.Name)
	}
	wantLabels := map[string]string{"env": "prod", SecretTypeLabel: SecretTypeCluster, ManagedByLabel: ManagedBy, MemberLabel: "east-1"}
	if len(s.Labels) != len(wantLabels) {
		t.Errorf("labels %v, want %v", s.Labels, wantLabels)
	}
	for k, v := range wantLabels {
		if s.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, s.Labels[k], v)
		}
	}
	if mc.Labels[SecretTypeLabel] != "repository" {
		t.Error("the MemberCluster's labels were changed")
	}
	if string(s.Data["name"]) != "east-1" || string(s.Data["server"]) != "https://10.0.0.1:6443" {
		t.Errorf("name %q server %q", s.Data["name"], s.Data["server"])
	}
	// Argo CD's format: caData is base64 PEM inside the JSON.
	var raw map[string]any
	if err := json.Unmarshal(s.Data["config"], &raw); err != nil {
		t.Fatal(err)
	}
	tls := raw["tlsClientConfig"].(map[string]any)
	if raw["bearerToken"] != "t0k3n" || tls["caData"] != "Q0EgUEVN" || tls["serverName"] != "api.east" || tls["insecure"] != false {
		t.Errorf("config %s", s.Data["config"])
	}
	if _, ok := raw["username"]; ok {
		t.Errorf("config has credentials the kubeconfig does not: %s", s.Data["config"])
	}
}

func TestConfigKeepsExecAndCertificatesAndRefusesFiles(t *testing.T) {
	_, c, err := Config(&rest.Config{Host: "https://h", TLSClientConfig: rest.TLSClientConfig{CertData: []byte("c"), KeyData: []byte("k")},
		ExecProvider: &clientcmdapi.ExecConfig{Command: "aws", Args: []string{"eks", "get-token"}, APIVersion: "client.authentication.k8s.io/v1",
			Env: []clientcmdapi.ExecEnvVar{{Name: "AWS_PROFILE", Value: "fleet"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(c.TLSClientConfig.CertData) != "c" || string(c.TLSClientConfig.KeyData) != "k" || c.ExecProviderConfig == nil ||
		c.ExecProviderConfig.Command != "aws" || c.ExecProviderConfig.Env["AWS_PROFILE"] != "fleet" {
		t.Errorf("config %+v", c)
	}
	for name, cfg := range map[string]*rest.Config{
		"token file":    {Host: "https://h", BearerTokenFile: "/var/run/token"},
		"CA file":       {Host: "https://h", TLSClientConfig: rest.TLSClientConfig{CAFile: "/ca.crt"}},
		"auth provider": {Host: "https://h", AuthProvider: &clientcmdapi.AuthProviderConfig{Name: "oidc"}},
	} {
		if _, _, err := Config(cfg); !errors.Is(err, ErrNotPortable) {
			t.Errorf("%s: err %v, want ErrNotPortable", name, err)
		}
	}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	grace := 5 * time.Minute
	mc := func(status metav1.ConditionStatus, since time.Duration) *fleetv1alpha1.MemberCluster {
		m := &fleetv1alpha1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "m", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))}}
		if status != "" {
			m.Status.Conditions = []metav1.Condition{{Type: fleetv1alpha1.ReadyCondition, Status: status, LastTransitionTime: metav1.NewTime(now.Add(-since))}}
		}
		return m
	}
	deleting := mc(metav1.ConditionTrue, time.Hour)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	fresh := mc("", 0)
	fresh.CreationTimestamp = metav1.NewTime(now.Add(-time.Minute))
	for _, tc := range []struct {
		name    string
		mc      *fleetv1alpha1.MemberCluster
		want    Action
		requeue time.Duration
	}{
		{"gone", nil, Delete, 0},
		{"being deleted", deleting, Delete, 0},
		{"ready", mc(metav1.ConditionTrue, time.Hour), Write, 0},
		{"unready for a minute", mc(metav1.ConditionFalse, time.Minute), Keep, 4 * time.Minute},
		{"unready past grace", mc(metav1.ConditionFalse, grace), Delete, 0},
		{"unknown past grace", mc(metav1.ConditionUnknown, time.Hour), Delete, 0},
		{"new, no status yet", fresh, Keep, 4 * time.Minute},
		{"no status for an hour", mc("", 0), Delete, 0},
	} {
		a, r := Decide(tc.mc, now, grace)
		if a != tc.want || r != tc.requeue {
			t.Errorf("%s: %s after %s, want %s after %s", tc.name, a, r, tc.want, tc.requeue)
		}
	}
}
