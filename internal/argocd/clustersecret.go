// Package argocd turns Ready MemberClusters into Argo CD cluster Secrets, so that Argo CD can deploy
// to the fleet's members and an ApplicationSet cluster generator can select them by the
// MemberClusters' labels. It is pure: the controller in controllers/fleet reads and writes.
//
// The Secret carries the member's own credentials, exactly as its kubeconfig holds them: Meridian
// never creates an identity in the member or widens one.
package argocd

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// Labels of an Argo CD cluster Secret written by Meridian.
const (
	// SecretTypeLabel with value SecretTypeCluster makes Argo CD read a Secret as a cluster.
	SecretTypeLabel   = "argocd.argoproj.io/secret-type"
	SecretTypeCluster = "cluster"
	// ManagedByLabel marks the Secrets Meridian writes; it never touches one without it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "meridian"
	// MemberLabel names the MemberCluster a Secret describes.
	MemberLabel = fleetv1alpha1.MemberClusterLabel
)

// SecretName is the name of a member's Argo CD cluster Secret.
func SecretName(member string) string { return "meridian-" + member }

// ClusterConfig is the "config" key of an Argo CD cluster Secret (Argo CD's documented format,
// declarative setup: clusters).
type ClusterConfig struct {
	Username           string              `json:"username,omitempty"`
	Password           string              `json:"password,omitempty"`
	BearerToken        string              `json:"bearerToken,omitempty"`
	TLSClientConfig    TLSClientConfig     `json:"tlsClientConfig"`
	ExecProviderConfig *ExecProviderConfig `json:"execProviderConfig,omitempty"`
}

// TLSClientConfig holds PEM data, base64-encoded in JSON as Argo CD expects.
type TLSClientConfig struct {
	Insecure   bool   `json:"insecure"`
	ServerName string `json:"serverName,omitempty"`
	CAData     []byte `json:"caData,omitempty"`
	CertData   []byte `json:"certData,omitempty"`
	KeyData    []byte `json:"keyData,omitempty"`
}

// ExecProviderConfig runs a credential plugin, as the kubeconfig's exec section says.
type ExecProviderConfig struct {
	Command     string            `json:"command"`
	Args        []string          `json:"args,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	APIVersion  string            `json:"apiVersion,omitempty"`
	InstallHint string            `json:"installHint,omitempty"`
}

// ErrNotPortable says a kubeconfig's credentials cannot be handed to Argo CD as they are.
var ErrNotPortable = errors.New("the kubeconfig's credentials cannot be written into an Argo CD cluster Secret")

// Config renders the member's REST config (parsed from its kubeconfig) as Argo CD's cluster
// config. Credentials that live in files on the manager's machine or in an auth-provider plugin
// are refused rather than replaced by anything else.
func Config(cfg *rest.Config) (server string, c ClusterConfig, err error) {
	switch {
	case cfg.BearerTokenFile != "":
		return "", c, fmt.Errorf("%w: the token is read from file %s; embed the token", ErrNotPortable, cfg.BearerTokenFile)
	case cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "":
		return "", c, fmt.Errorf("%w: certificates are read from files; embed them (certificate-authority-data, client-certificate-data, client-key-data)", ErrNotPortable)
	case cfg.AuthProvider != nil:
		return "", c, fmt.Errorf("%w: auth-provider %q has no Argo CD equivalent; use a token, a client certificate or an exec plugin", ErrNotPortable, cfg.AuthProvider.Name)
	}
	c = ClusterConfig{
		Username:    cfg.Username,
		Password:    cfg.Password,
		BearerToken: cfg.BearerToken,
		TLSClientConfig: TLSClientConfig{
			Insecure:   cfg.Insecure,
			ServerName: cfg.ServerName,
			CAData:     cfg.CAData,
			CertData:   cfg.CertData,
			KeyData:    cfg.KeyData,
		},
	}
	if e := cfg.ExecProvider; e != nil {
		c.ExecProviderConfig = &ExecProviderConfig{Command: e.Command, Args: e.Args, APIVersion: e.APIVersion, InstallHint: e.InstallHint}
		if len(e.Env) > 0 {
			c.ExecProviderConfig.Env = map[string]string{}
			for _, v := range e.Env {
				c.ExecProviderConfig.Env[v.Name] = v.Value
			}
		}
	}
	return cfg.Host, c, nil
}

// Secret is the Argo CD cluster Secret of a member, in namespace: named after the member,
// labelled with the MemberCluster's labels (so that a cluster generator's selector picks the
// fleet by them) and with the labels above, which a MemberCluster label cannot override.
func Secret(mc *fleetv1alpha1.MemberCluster, cfg *rest.Config, namespace string) (*corev1.Secret, error) {
	server, config, err := Config(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	labels := maps.Clone(mc.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[SecretTypeLabel] = SecretTypeCluster
	labels[ManagedByLabel] = ManagedBy
	labels[MemberLabel] = mc.Name
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: SecretName(mc.Name), Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			"name":   []byte(mc.Name),
			"server": []byte(server),
			"config": raw,
		},
	}, nil
}

// Action is what to do with a member's Argo CD cluster Secret.
type Action string

const (
	// Write the Secret (create it, or bring it in line).
	Write Action = "Write"
	// Keep whatever exists (nothing is created): the member is not Ready, within the grace period.
	Keep Action = "Keep"
	// Delete the Secret.
	Delete Action = "Delete"
)

// Decide says what a member's Secret should become: written while the MemberCluster is Ready,
// kept for grace after it turns unready (a short outage does not make Argo CD forget the
// cluster), deleted past grace or when the MemberCluster goes (mc nil or being deleted).
// requeue is when to look again for a decision that changes with time alone.
func Decide(mc *fleetv1alpha1.MemberCluster, now time.Time, grace time.Duration) (a Action, requeue time.Duration) {
	if mc == nil || !mc.DeletionTimestamp.IsZero() {
		return Delete, 0
	}
	ready := meta.FindStatusCondition(mc.Status.Conditions, fleetv1alpha1.ReadyCondition)
	if ready != nil && ready.Status == metav1.ConditionTrue {
		return Write, 0
	}
	since := mc.CreationTimestamp.Time
	if ready != nil {
		since = ready.LastTransitionTime.Time
	}
	if left := since.Add(grace).Sub(now); left > 0 {
		return Keep, left
	}
	return Delete, 0
}

// Differs says whether the live Secret must be brought in line with the desired one: its data,
// type or labels differ (annotations are left to others, e.g. Argo CD's own).
func Differs(live, desired *corev1.Secret) bool {
	return live.Type != desired.Type || !maps.EqualFunc(live.Data, desired.Data, func(a, b []byte) bool { return string(a) == string(b) }) ||
		!maps.Equal(live.Labels, desired.Labels)
}

// Owned says whether Meridian wrote the Secret (it never touches another's Secret of that name).
func Owned(s *corev1.Secret) bool { return s.Labels[ManagedByLabel] == ManagedBy }
