package main

import (
	"errors"
	"net/http"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// Names the installer (config/default) gives the webhook's objects.
const (
	webhookCertSecret    = "meridian-webhook-server-cert"
	webhookService       = "meridian-webhook-service"
	validatingWebhookCfg = "meridian-validating-webhook-configuration"
	defaultWebhookCert   = "/tmp/k8s-webhook-server/serving-certs"
)

// The rotator keeps the CA and serving certificate in the webhook Secret and writes the CA into
// the webhook configuration.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;update
// +kubebuilder:rbac:groups="",namespace=meridian-system,resources=secrets,verbs=get;list;watch;update

// addCertRotation makes the manager issue and rotate its own webhook serving certificate (for
// clusters without cert-manager). The webhook server must start only after ready is closed: it
// reads the certificate from certDir, where the Secret is mounted.
func addCertRotation(mgr ctrl.Manager, namespace, certDir string) (ready chan struct{}, err error) {
	if certDir == "" {
		certDir = defaultWebhookCert
	}
	ready = make(chan struct{})
	return ready, rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: namespace, Name: webhookCertSecret},
		CertDir:        certDir,
		CAName:         "meridian-webhook-ca",
		CAOrganization: "meridian",
		DNSName:        webhookService + "." + namespace + ".svc",
		ExtraDNSNames:  []string{webhookService + "." + namespace + ".svc.cluster.local"},
		IsReady:        ready,
		Webhooks:       []rotator.WebhookInfo{{Name: validatingWebhookCfg, Type: rotator.Validating}},
		// Every replica serves webhooks, so every replica needs the certificate.
		RequireLeaderElection: false,
	})
}

// readyAfter reports not ready until ready is closed, then asks check.
func readyAfter(ready <-chan struct{}, check func() healthz.Checker) healthz.Checker {
	return func(req *http.Request) error {
		select {
		case <-ready:
			return check()(req)
		default:
			return errors.New("waiting for the webhook serving certificate")
		}
	}
}
