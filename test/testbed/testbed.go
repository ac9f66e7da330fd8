// Package testbed starts real control planes for Meridian's tests and demo: one hub and any
// number of member clusters, each a real kube-apiserver and etcd on loopback, built from
// Kubernetes' own Go modules by the Makefile into bin/. Nothing is downloaded at run time.
package testbed

import (
	"time"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubeconfigSecretNamespace is the hub namespace the test bed writes member kubeconfig Secrets to.
const KubeconfigSecretNamespace = "meridian-system"

// KubeconfigSecretKey is the key of the kubeconfig in those Secrets (the Cluster API convention).
const KubeconfigSecretKey = "value"

// Options say what to start.
type Options struct {
	// Members names the member clusters to start; default member-1 and member-2.
	Members []string
	// AuditMembers makes every member apiserver log who sent each request (Cluster.AuditEvents).
	AuditMembers bool
	// MemberOptions set up members by name, e.g. as live clusters; members without are bare.
	MemberOptions map[string]MemberOptions
	// Scheme of the clients the test bed hands out; it must know the kinds the test uses.
	Scheme *k8sruntime.Scheme
	// Webhooks installs Meridian's webhook configuration on the hub, pointing at a local server
	// whose address and certificates Hub.Webhook gives.
	Webhooks bool
	// ClusterAPI installs Cluster API's Cluster CRD on the hub, from the module cache.
	ClusterAPI bool
	// ClusterEgressProxy, a Unix socket, is an HTTP CONNECT proxy through which the hub's
	// apiserver opens its connections into the cluster, such as to the ClusterIP of a Service that a
	// webhook configuration names (kube-apiserver --egress-selector-config-file, egress "cluster";
	// a socket, as kube-apiserver v1.36 insists on TLS for a TCP proxy). On loopback no kube-proxy
	// carries ClusterIPs: a test that plays kube-proxy behind this proxy reaches a local webhook
	// server through its Service as a real cluster would.
	ClusterEgressProxy string
	// Dir holds the control planes' files; default a new temporary folder, removed on Stop.
	Dir string
	// Output receives the control planes' logs; default discarded (MERIDIAN_TESTBED_LOGS=1: stderr).
	Output io.Writer
}

// Bed is a running hub and its members.
type Bed struct {
	Hub     *Cluster
	Members []*Cluster
	dir     string
	ownsDir bool
}

// Cluster is one running control plane.
type Cluster struct {
	Name string
	// Config reaches the cluster as a member of system:masters.
	Config *rest.Config
	// Client is a client of Config with the bed's scheme.
	Client client.Client
	// Kubeconfig holds Config as a kubeconfig file.
	Kubeconfig []byte
	// Webhook says where the hub expects Meridian's webhook server (hub only, with Options.Webhooks).
	Webhook *WebhookServing
	// Live is set for a live member: its Nodes, networks and processes (see MemberOptions.Live).
	Live *Live

	env  *envtest.Environment
	mu   sync.Mutex
	hung bool
	cut  bool
	// auditLog is the member apiserver's audit log (Options.AuditMembers).
	auditLog string
}

// WebhookServing is where the hub's webhook configuration sends admission requests.
type WebhookServing struct {
	Host    string
	Port    int
	CertDir string
}

// RepoRoot is the root of the Meridian repository: two folders above this file, or, when the
// build trimmed source paths (make builds tests with -trimpath, so that every clone of the
// repository shares Go's build cache), the nearest folder above the working directory whose
// go.mod is Meridian's module (go test runs a test in its package's folder).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	if filepath.IsAbs(file) {
		return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	}
	wd, err := os.Getwd()
	if err != nil {
		panic(fmt.Sprintf("testbed: finding the repository: %v", err))
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && moduleLine.Match(mod) {
			return dir
		}
		if filepath.Dir(dir) == dir {
			panic(fmt.Sprintf("testbed: %s is not inside the Meridian repository (no go.mod of module %s above it); run from inside it", wd, module))
		}
	}
}

const module = "github.com/meridian-io/meridian"

var moduleLine = regexp.MustCompile(`(?m)^module\s+` + regexp.QuoteMeta(module) + `\s*$`)

// BinDir is where the Makefile puts the control plane binaries (MERIDIAN_BIN_DIR overrides).
func BinDir() string {
	if d := os.Getenv("MERIDIAN_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "bin")
}

// Start starts the hub and members, installs Meridian's CRDs (and webhooks) on the hub and writes a
// kubeconfig Secret per member to the hub. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (_ *Bed, reterr error) {
	if len(opts.Members) == 0 {
		opts.Members = []string{"member-1", "member-2"}
	}
	if opts.Output == nil {
		opts.Output = io.Discard
		if os.Getenv("MERIDIAN_TESTBED_LOGS") == "1" {
			opts.Output = os.Stderr
		}
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(BinDir(), bin)); err != nil {
			return nil, fmt.Errorf("%s is not built in %s: run `make test-tools` first: %w", bin, BinDir(), err)
		}
	}
	b := &Bed{dir: opts.Dir}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "meridian-testbed-")
		if err != nil {
			return nil, err
		}
		b.dir, b.ownsDir = d, true
	}
	defer func() {
		if reterr != nil {
			_ = b.Stop()
		}
	}()

	hubEnv, err := hubEnvironment(opts, b.dir)
	if err != nil {
		return nil, err
	}
	live, err := planLive(opts, b.dir)
	if err != nil {
		return nil, err
	}
	b.Hub = &Cluster{Name: "hub", env: hubEnv}
	for _, name := range opts.Members {
		m := &Cluster{Name: name, env: memberEnvironment(filepath.Join(b.dir, name), opts), Live: live[name]}
		if opts.AuditMembers {
			if m.auditLog, err = enableAudit(m.env, filepath.Join(b.dir, name, "audit")); err != nil {
				return b, err
			}
		}
		if m.Live != nil {
			m.Live.configure(m.env)
		}
		b.Members = append(b.Members, m)
	}

	// Control planes start in parallel: most of their start is waiting for health.
	all := append([]*Cluster{b.Hub}, b.Members...)
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(ctx, opts.Scheme)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return b, err
	}
	if opts.Webhooks {
		w := hubEnv.WebhookInstallOptions
		b.Hub.Webhook = &WebhookServing{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir}
	}
	if err := b.writeKubeconfigSecrets(ctx); err != nil {
		return b, err
	}
	return b, nil
}

// startTimeout bounds the start of one apiserver or etcd. envtest's default (20 s) is too short
// on a loaded 2-core machine, and a start that times out is not retried cleanly on the same port.
const startTimeout = 2 * time.Minute

// memberRequestTimeout is a member apiserver's --request-timeout, which also bounds its shutdown.
const memberRequestTimeout = 10 * time.Second

// apiStopTimeout bounds the stop of one apiserver or etcd. kube-apiserver drains its connections for
// up to its request timeout (60 s) when clients hold watches open, and is slow under load.
const apiStopTimeout = 90 * time.Second

func hubEnvironment(opts Options, dir string) (*envtest.Environment, error) {
	root := RepoRoot()
	crds := []string{filepath.Join(root, "config", "crd", "bases")}
	if opts.ClusterAPI {
		dir, err := ModuleDir("sigs.k8s.io/cluster-api")
		if err != nil {
			return nil, err
		}
		crds = append(crds, filepath.Join(dir, "core", "config", "crd", "bases", "cluster.x-k8s.io_clusters.yaml"))
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    BinDir(),
		CRDDirectoryPaths:        crds,
		ErrorIfCRDPathMissing:    true,
		Scheme:                   opts.Scheme,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  apiStopTimeout,
	}
	env.ControlPlane.GetAPIServer().Out, env.ControlPlane.GetAPIServer().Err = opts.Output, opts.Output
	if opts.ClusterEgressProxy != "" {
		f, err := os.Create(filepath.Join(dir, "hub-egress-selector.yaml"))
		if err != nil {
			return nil, err
		}
		_, err = fmt.Fprintf(f, `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, opts.ClusterEgressProxy)
		if err := errors.Join(err, f.Close()); err != nil {
			return nil, err
		}
		env.ControlPlane.GetAPIServer().Configure().Set("egress-selector-config-file", f.Name())
	}
	if opts.Webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}}
	}
	return env, nil
}

// memberEnvironment keeps the apiserver's certificates and port in dir, so that the apiserver
// can be stopped and started again behind the same kubeconfig.
func memberEnvironment(dir string, opts Options) *envtest.Environment {
	env := &envtest.Environment{BinaryAssetsDirectory: BinDir(), Scheme: opts.Scheme, ControlPlaneStartTimeout: startTimeout, ControlPlaneStopTimeout: apiStopTimeout}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = filepath.Join(dir, "apiserver")
	// On stop, kube-apiserver drains its connections for up to its request timeout (default 60 s),
	// and a manager's open watches keep them busy: a member outage would take a minute to begin.
	api.Configure().Set("request-timeout", memberRequestTimeout.String())
	api.Out, api.Err = opts.Output, opts.Output
	return env
}

func (c *Cluster) start(ctx context.Context, scheme *k8sruntime.Scheme) error {
	if c.env.ControlPlane.APIServer != nil && c.env.ControlPlane.APIServer.CertDir != "" {
		if err := os.MkdirAll(c.env.ControlPlane.APIServer.CertDir, 0o700); err != nil {
			return err
		}
	}
	cfg, err := c.env.Start()
	if err != nil {
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	c.Config = cfg
	c.Kubeconfig = c.env.KubeConfig
	c.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("client of %s: %w", c.Name, err)
	}
	if c.Live != nil {
		return c.startLive(ctx)
	}
	return nil
}

func (b *Bed) writeKubeconfigSecrets(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: KubeconfigSecretNamespace}}
	if err := b.Hub.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s on the hub: %w", ns.Name, err)
	}
	for _, m := range b.Members {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: KubeconfigSecretNamespace, Name: KubeconfigSecretName(m.Name)},
			Data:       map[string][]byte{KubeconfigSecretKey: m.Kubeconfig},
		}
		if err := b.Hub.Client.Create(ctx, s); err != nil {
			return fmt.Errorf("write kubeconfig Secret of %s to the hub: %w", m.Name, err)
		}
	}
	return nil
}

// KubeconfigSecretName is the name of the hub Secret that holds a member's kubeconfig.
func KubeconfigSecretName(member string) string { return member + "-kubeconfig" }

// Member returns the member of that name, or nil.
func (b *Bed) Member(name string) *Cluster {
	for _, m := range b.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Dir is the folder that holds the control planes' files.
func (b *Bed) Dir() string { return b.dir }

// WriteKubeconfigs writes hub.kubeconfig and <member>.kubeconfig into dir, for kubectl.
func (b *Bed) WriteKubeconfigs(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, c := range append([]*Cluster{b.Hub}, b.Members...) {
		if err := os.WriteFile(filepath.Join(dir, c.Name+".kubeconfig"), c.Kubeconfig, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops every control plane and removes the bed's files. The clusters stop in parallel, as
// they start: most of a stop is an apiserver draining its connections and etcd closing.
func (b *Bed) Stop() error {
	all := append([]*Cluster{b.Hub}, b.Members...)
	errs := make([]error, len(all)+1)
	var wg sync.WaitGroup
	for i, c := range all {
		if c == nil || c.env == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.stop()
		}()
	}
	wg.Wait()
	if b.ownsDir {
		errs[len(all)] = os.RemoveAll(b.dir)
	}
	return errors.Join(errs...)
}

// stop resumes or restores the cluster if a fault holds it, then stops its processes.
func (c *Cluster) stop() error {
	var errs []error
	if c.Hung() {
		if err := c.Resume(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Restore(); err != nil {
		errs = append(errs, err)
	}
	if err := c.stopLive(); err != nil {
		errs = append(errs, fmt.Errorf("stop %s: %w", c.Name, err))
	}
	if err := c.env.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stop %s: %w", c.Name, err))
	}
	return errors.Join(errs...)
}

// StopAPIServer stops the cluster's kube-apiserver (etcd keeps running), as a member outage.
func (c *Cluster) StopAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.env.ControlPlane.APIServer.Stop()
}

// StartAPIServer starts a stopped kube-apiserver again, on the same address and certificates, so
// that existing kubeconfigs reach it.
func (c *Cluster) StartAPIServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.env.ControlPlane.APIServer.Start()
}

// ModuleDir returns the folder of a module of Meridian's go.mod in the module cache, downloading
// it through the module proxy when absent. A module that go.mod does not require is named with
// its version, module@version; go.mod and go.sum stay as they are.
func ModuleDir(module string) (string, error) { return moduleDirIn(RepoRoot(), module) }

// moduleDirIn is ModuleDir for the go.mod in dir (e.g. a tools module under hack/).
func moduleDirIn(dir, module string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w: %s", module, err, stderr.String())
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", module, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", module, info.Error)
	}
	return info.Dir, nil
}
