package testbed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// auditPolicy records who asked what (metadata only), once per request, when it arrives.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["ResponseStarted", "ResponseComplete", "Panic"]
rules:
- level: Metadata
`

// enableAudit makes a member's apiserver write an audit log of every request it receives.
func enableAudit(env *envtest.Environment, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return "", err
	}
	log := filepath.Join(dir, "audit.log")
	api := env.ControlPlane.GetAPIServer()
	api.Configure().Set("audit-policy-file", policy)
	api.Configure().Set("audit-log-path", log)
	api.Configure().Set("audit-log-mode", "blocking")
	return log, nil
}

// AuditEvent is one request a member's apiserver received (Options.AuditMembers).
type AuditEvent struct {
	User       string
	Verb       string
	RequestURI string
}

// AuditEvents returns the requests the cluster's apiserver received, in order, from the audit
// log that Options.AuditMembers turns on.
func (c *Cluster) AuditEvents() ([]AuditEvent, error) {
	if c.auditLog == "" {
		return nil, fmt.Errorf("%s has no audit log: start the bed with AuditMembers", c.Name)
	}
	f, err := os.Open(c.auditLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct {
			Stage      string `json:"stage"`
			Verb       string `json:"verb"`
			RequestURI string `json:"requestURI"`
			User       struct {
				Username string `json:"username"`
			} `json:"user"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Stage != "RequestReceived" {
			continue
		}
		out = append(out, AuditEvent{User: e.User.Username, Verb: e.Verb, RequestURI: e.RequestURI})
	}
	return out, sc.Err()
}

// UserKubeconfig makes a new identity on the cluster (a client certificate for user name, in
// system:masters) and returns a kubeconfig for it: a second set of credentials for the same
// cluster.
func (c *Cluster) UserKubeconfig(name string) ([]byte, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("add user %s to %s: %w", name, c.Name, err)
	}
	return u.KubeConfig()
}
