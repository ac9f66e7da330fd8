// Package agentfile is the node agent's config file: its format, its validation and its hash. The
// hub renders it from an AgentConfig into a ConfigMap; the agent reads it from the mounted file.
// Both hash the same bytes, so the hash in the DaemonSet's pod template and the one an agent
// reports in its NodeAgentInfo can be compared.
package agentfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
)

// APIVersion and Kind head every config file, so that a later format can be told apart.
const (
	APIVersion = "agent.meridian.io/v1alpha1"
	Kind       = "NodeAgentConfiguration"
	// FileName is the config file's name in the ConfigMap and in the mounted folder.
	FileName = "agent.yaml"
)

// Defaults of the settings a file leaves out (the same as the AgentConfig API's).
const (
	DefaultHeartbeatIntervalSeconds = 10
	DefaultMetricsPort              = 9465
	DefaultDropLogRatePerSecond     = 100
)

// Config is the agent's configuration as the file holds it.
type Config struct {
	APIVersion               string          `json:"apiVersion"`
	Kind                     string          `json:"kind"`
	EnforcementMode          string          `json:"enforcementMode"`
	DropLogging              DropLogging     `json:"dropLogging"`
	HeartbeatIntervalSeconds int32           `json:"heartbeatIntervalSeconds"`
	LogVerbosity             int32           `json:"logVerbosity"`
	MetricsPort              int32           `json:"metricsPort"`
	FeatureGates             map[string]bool `json:"featureGates,omitempty"`
}

// DropLogging configures the drop log.
type DropLogging struct {
	Enabled       bool  `json:"enabled"`
	RatePerSecond int32 `json:"ratePerSecond"`
}

// Default is the configuration the agent runs before it has read a valid file.
func Default() Config {
	c := Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.EnforcementMode == "" {
		c.EnforcementMode = string(fleetv1alpha1.EnforcementEnforce)
	}
	if c.DropLogging.RatePerSecond == 0 {
		c.DropLogging.RatePerSecond = DefaultDropLogRatePerSecond
	}
	if c.HeartbeatIntervalSeconds == 0 {
		c.HeartbeatIntervalSeconds = DefaultHeartbeatIntervalSeconds
	}
	if c.MetricsPort == 0 {
		c.MetricsPort = DefaultMetricsPort
	}
}

// Gate says whether a feature gate is on: the file's value, else the gate's default.
func (c *Config) Gate(name string) bool {
	if v, ok := c.FeatureGates[name]; ok {
		return v
	}
	return fleetv1alpha1.AgentFeatureGates[name]
}

// Parse reads and validates a config file; fields left out take their defaults. The error names
// every problem found, each with the field and what to fix.
func Parse(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("the config file is not a valid %s: %w", Kind, err)
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the configuration against what the agent can obey.
func (c *Config) Validate() error {
	var errs []error
	if c.APIVersion != APIVersion || c.Kind != Kind {
		errs = append(errs, fmt.Errorf("apiVersion/kind must be %s/%s, not %s/%s", APIVersion, Kind, c.APIVersion, c.Kind))
	}
	switch fleetv1alpha1.EnforcementMode(c.EnforcementMode) {
	case fleetv1alpha1.EnforcementEnforce, fleetv1alpha1.EnforcementAudit:
	default:
		errs = append(errs, fmt.Errorf("enforcementMode must be Enforce or Audit, not %q", c.EnforcementMode))
	}
	if r := c.DropLogging.RatePerSecond; r < 1 || r > 10000 {
		errs = append(errs, fmt.Errorf("dropLogging.ratePerSecond must be within 1..10000, not %d", r))
	}
	if h := c.HeartbeatIntervalSeconds; h < 1 || h > 300 {
		errs = append(errs, fmt.Errorf("heartbeatIntervalSeconds must be within 1..300, not %d", h))
	}
	if v := c.LogVerbosity; v < 0 || v > 10 {
		errs = append(errs, fmt.Errorf("logVerbosity must be within 0..10, not %d", v))
	}
	if p := c.MetricsPort; p < 1024 || p > 65535 {
		errs = append(errs, fmt.Errorf("metricsPort must be within 1024..65535, not %d", p))
	}
	var unknown []string
	for g := range c.FeatureGates {
		if _, ok := fleetv1alpha1.AgentFeatureGates[g]; !ok {
			unknown = append(unknown, g)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		errs = append(errs, fmt.Errorf("featureGates: unknown gates %s; known: %s", strings.Join(unknown, ", "), strings.Join(KnownGates(), ", ")))
	}
	return errors.Join(errs...)
}

// KnownGates lists the gates the agent knows, sorted.
func KnownGates() []string {
	var out []string
	for g := range fleetv1alpha1.AgentFeatureGates {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// Hash is the hash of a config file's bytes, as the agent reports it and as the DaemonSet's pod
// template carries it.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// FromSettings is the configuration an AgentConfig's settings (overrides applied) give.
func FromSettings(s fleetv1alpha1.AgentSettings) Config {
	c := Config{
		EnforcementMode:          string(s.EnforcementMode),
		DropLogging:              DropLogging{Enabled: s.DropLogging.Enabled, RatePerSecond: s.DropLogging.RatePerSecond},
		HeartbeatIntervalSeconds: s.HeartbeatIntervalSeconds,
		LogVerbosity:             s.LogVerbosity,
		MetricsPort:              s.MetricsPort,
	}
	if len(s.FeatureGates) > 0 {
		c.FeatureGates = map[string]bool{}
		for k, v := range s.FeatureGates {
			c.FeatureGates[k] = v
		}
	}
	c.setDefaults()
	return c
}

// Render writes the configuration as a file: YAML, keys sorted, every field spelled out, so that
// equal configurations give equal bytes and equal hashes.
func Render(c Config) ([]byte, error) {
	c.setDefaults()
	return yaml.Marshal(c)
}
