package install_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1alpha1 "github.com/meridian-io/meridian/apis/fleet/v1alpha1"
	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

// The installer's manager issues its own webhook certificate: installed for real on a hub, the
// manager binary (run as a local process, as no container runtime is here) fills the Secret, writes
// the CA into the ValidatingWebhookConfiguration, and turns ready once the certificate is mounted.
// Then the hub's apiserver calls the installed webhook configuration as a cluster's would: through
// the webhook Service, whose endpoint is the manager, with the CA the manager injected.
func TestInstalledManagerRotatesItsCertificateAndAnswersThroughItsService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := testbed.RepoRoot()
	dir := t.TempDir()
	install := renderInstaller(ctx, t, "default")
	manager := filepath.Join(dir, "manager")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", manager, filepath.Join(root, "cmd", "manager")).CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}

	scheme, err := controllers.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	// The hub's apiserver reaches the webhook Service's ClusterIP through the test, which plays
	// kube-proxy (no kube-proxy runs on loopback).
	proxy := startKubeProxy(t)
	bed, err := testbed.Start(ctx, testbed.Options{Scheme: scheme, ClusterEgressProxy: proxy.socket()})
	if bed != nil {
		defer func() {
			if err := bed.Stop(); err != nil {
				t.Error(err)
			}
		}()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.WriteKubeconfigs(bed.Dir()); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(bed.Dir(), "hub.kubeconfig")
	if out, err := kubectl(ctx, kubeconfig, "apply", "--server-side", "--field-manager=meridian-install", "-f", install); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	probe := freeAddr(t)
	_, webhookPort, _ := net.SplitHostPort(freeAddr(t)) // 0 would mean controller-runtime's 9443
	cmd := exec.CommandContext(ctx, manager, "--kubeconfig", kubeconfig, "--webhook-cert-rotation", "--webhook-cert-dir", certDir,
		"--metrics-bind-address", "0", "--health-probe-bind-address", probe, "--webhook-host", "127.0.0.1", "--webhook-port", webhookPort)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	}()

	c := bed.Hub.Client
	secret := &corev1.Secret{}
	waitFor(t, 2*time.Minute, "the manager to write its certificate into the Secret", func() error {
		if err := c.Get(ctx, client.ObjectKey{Namespace: "meridian-system", Name: "meridian-webhook-server-cert"}, secret); err != nil {
			return err
		}
		for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
			if len(secret.Data[k]) == 0 {
				return fmt.Errorf("no %s yet", k)
			}
		}
		return nil
	})
	waitFor(t, 2*time.Minute, "the CA in every webhook of the ValidatingWebhookConfiguration", func() error {
		cfg := &admissionv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: "meridian-validating-webhook-configuration"}, cfg); err != nil {
			return err
		}
		for _, w := range cfg.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
				return fmt.Errorf("webhook %s has no CA from the Secret", w.Name)
			}
		}
		return nil
	})
	if err := readyz(probe); err == nil {
		t.Fatal("the manager is ready before its certificate is mounted")
	}
	// Play the kubelet: mount the Secret into the certificate folder.
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if err := os.WriteFile(filepath.Join(certDir, k), secret.Data[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The manager turns ready only once the default Tiers exist, which it creates through its own
	// Tier webhook, reached through the Service: the Service publishes not-ready addresses, so its
	// endpoint is there before readiness (checkWebhookThroughService plays the endpoints
	// controller and kube-proxy), and the manager turns ready after.
	checkWebhookThroughService(ctx, t, c, proxy, net.JoinHostPort("127.0.0.1", webhookPort), func() {
		waitFor(t, 2*time.Minute, "the manager to turn ready with its webhook server started", func() error { return readyz(probe) })
	})
}

// checkWebhookThroughService has the hub's apiserver call the installed
// ValidatingWebhookConfiguration, whose webhooks name the Service meridian-webhook-service, the
// manager listening at endpoint.
// ready runs once the Service has its endpoint, before the webhook calls that must succeed.
func checkWebhookThroughService(ctx context.Context, t *testing.T, c client.Client, proxy *kubeProxy, endpoint string, ready func()) {
	t.Helper()
	valid := func(name string) *fleetv1alpha1.MemberCluster {
		return &fleetv1alpha1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: fleetv1alpha1.MemberClusterSpec{
				KubeconfigSecretRef: &fleetv1alpha1.KubeconfigSecretReference{Namespace: "meridian-system", Name: name + "-kubeconfig"},
				Probe:               fleetv1alpha1.ProbeSettings{IntervalSeconds: 10, TimeoutSeconds: 5},
			},
		}
	}
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "meridian-system", Name: "meridian-webhook-service"}, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || len(svc.Spec.Ports) != 1 {
		t.Fatalf("the webhook Service has ClusterIP %q and ports %v, want a ClusterIP and one port", svc.Spec.ClusterIP, svc.Spec.Ports)
	}
	clusterIPPort := net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(svc.Spec.Ports[0].Port)))
	if !svc.Spec.PublishNotReadyAddresses {
		t.Fatal("the webhook Service does not publish not-ready addresses: the manager, unready until it has created the default Tiers through its own webhook, would never be reached")
	}

	// The Service has no endpoint yet (no kubelet runs the manager's pod): the apiserver's call
	// to the ClusterIP is refused and, the webhooks failing closed, so is the object.
	err := c.Create(ctx, valid("before-endpoints"), client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "vmembercluster-v1alpha1.fleet.meridian.io"`) {
		t.Fatalf("creating a MemberCluster while the webhook Service has no endpoint: got %v, want the webhook call to fail", err)
	}

	// The endpoint is the manager's webhook server, on loopback at its own port rather than the
	// pod's 9443 (the Service's targetPort).
	proxy.setEndpoint(clusterIPPort, endpoint)
	ready()
	waitFor(t, time.Minute, "the apiserver to call the webhook through its Service and accept a valid MemberCluster", func() error {
		return c.Create(ctx, valid("good"), client.DryRunAll)
	})

	bad := valid("overlapping-probes")
	bad.Spec.Probe = fleetv1alpha1.ProbeSettings{IntervalSeconds: 2, TimeoutSeconds: 5} // within the schema's bounds
	err = c.Create(ctx, bad)
	for _, want := range []string{
		`admission webhook "vmembercluster-v1alpha1.fleet.meridian.io" denied the request`,
		"spec.probe.timeoutSeconds: Invalid value: 5: must not exceed spec.probe.intervalSeconds (2), or probes would overlap",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("creating a MemberCluster whose probe timeout exceeds its interval: got %v, want an error with %q", err, want)
		}
	}
	if !apierrors.IsInvalid(err) {
		t.Errorf("the refusal is not an Invalid error (HTTP 422): %v", err)
	}
}

func readyz(addr string) error {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, last)
	}
}
