package agentfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

func TestRenderParseRoundTripAndStableHash(t *testing.T) {
	s := fleetv1alpha1.AgentSettings{EnforcementMode: "Audit", HeartbeatIntervalSeconds: 5, LogVerbosity: 2,
		MetricsPort: 9999, DropLogging: fleetv1alpha1.DropLogging{Enabled: true, RatePerSecond: 7},
		FeatureGates: map[string]bool{"ProcessMetrics": true}}
	a, err := Render(FromSettings(s))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Render(FromSettings(s))
	if string(a) != string(b) || Hash(a) != Hash(b) {
		t.Fatal("equal settings rendered differently")
	}
	c, err := Parse(a)
	if err != nil {
		t.Fatalf("a rendered file does not parse: %v\n%s", err, a)
	}
	if c.EnforcementMode != "Audit" || c.HeartbeatIntervalSeconds != 5 || c.MetricsPort != 9999 || !c.DropLogging.Enabled || c.DropLogging.RatePerSecond != 7 || !c.Gate("ProcessMetrics") {
		t.Fatalf("round trip lost settings: %+v", c)
	}
	s.LogVerbosity = 3
	d, _ := Render(FromSettings(s))
	if Hash(d) == Hash(a) {
		t.Fatal("a changed setting kept the hash")
	}
}

func TestParseDefaultsAndRejections(t *testing.T) {
	c, err := Parse([]byte("apiVersion: agent.meridian.io/v1alpha1\nkind: NodeAgentConfiguration\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsPort != DefaultMetricsPort || c.EnforcementMode != "Enforce" || c.HeartbeatIntervalSeconds != DefaultHeartbeatIntervalSeconds {
		t.Fatalf("defaults: %+v", c)
	}
	for _, tc := range []struct{ body, want string }{
		{"enforcementMode: Block\n", `enforcementMode must be Enforce or Audit, not "Block"`},
		{"heartbeatIntervalSeconds: 0\nmetricsPort: 80\n", "metricsPort must be within 1024..65535, not 80"},
		{"logVerbosity: 11\n", "logVerbosity must be within 0..10"},
		{"dropLogging: {ratePerSecond: 20000}\n", "dropLogging.ratePerSecond must be within 1..10000"},
		{"featureGates: {Zeta: true, Alpha: false}\n", "unknown gates Alpha, Zeta; known: ProcessMetrics"},
		{"heartbeat: 10\n", `unknown field "heartbeat"`},
		{"kind: Other\n", "apiVersion/kind must be"},
	} {
		_, err := Parse([]byte("apiVersion: agent.meridian.io/v1alpha1\nkind: NodeAgentConfiguration\n" + tc.body))
		if tc.body == "kind: Other\n" {
			_, err = Parse([]byte("apiVersion: agent.meridian.io/v1alpha1\n" + tc.body))
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.body, err, tc.want)
		}
	}
}

// The CRD's CEL rule lists the gates by hand; it must name exactly the gates the agent knows.
func TestCRDKnowsTheAgentsGates(t *testing.T) {
	// go test runs a test in its package's folder.
	crd, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "fleet.meridian.io_agentconfigs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Unquote the YAML's single-quoted scalars and unfold their lines before looking.
	text := strings.Join(strings.Fields(strings.ReplaceAll(string(crd), "''", "'")), " ")
	want := "g in ['" + strings.Join(KnownGates(), "', '") + "']"
	if strings.Count(text, want) != 2 {
		t.Fatalf("the AgentConfig CRD's featureGates rules do not both read %q", want)
	}
}
