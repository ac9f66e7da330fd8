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
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meridian-io/meridian/controllers"
	"github.com/meridian-io/meridian/test/testbed"
)

// The installer's manager issues its own webhook certificate: installed for real on a hub, the
// manager binary (run as a local process, as no container runtime is here) fills the Secret, writes
// the CA into the ValidatingWebhookConfiguration, and turns ready once the certificate is mounted.
func TestInstalledManagerRotatesItsCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := testbed.RepoRoot()
	dir := t.TempDir()
	install := filepath.Join(dir, "install.yaml")
	render := exec.CommandContext(ctx, "go", "run", ".", "-kustomization", filepath.Join(root, "config", "default"), "-o", install)
	render.Dir = filepath.Join(root, "hack", "installer")
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("rendering the installer: %v\n%s", err, out)
	}
	manager := filepath.Join(dir, "manager")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", manager, filepath.Join(root, "cmd", "manager")).CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}

	scheme, err := controllers.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	bed, err := testbed.Start(ctx, testbed.Options{Scheme: scheme})
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
	if out, err := exec.CommandContext(ctx, filepath.Join(testbed.BinDir(), "kubectl"), "--kubeconfig", kubeconfig,
		"apply", "--server-side", "--field-manager=meridian-install", "-f", install).CombinedOutput(); err != nil {
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
	waitFor(t, 2*time.Minute, "the manager to turn ready with its webhook server started", func() error { return readyz(probe) })
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
