package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/webhook/certs"
	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Webhooks: true})
}

// TestSelfManagedCertificates: no cert-manager and no envtest CA. The
// installed ValidatingWebhookConfiguration is stripped of envtest's caBundle
// and points at https://localhost:<port>; the operator's rotator must issue a
// certificate for "localhost", inject its CA, and keep the webhook working
// across a server certificate renewal and a full CA rotation.
func TestSelfManagedCertificates(t *testing.T) {
	ctx := context.Background()
	untrust(t)
	certDir := t.TempDir()
	env.WebhookInstallOptions.LocalServingCertDir = certDir
	secretKey := types.NamespacedName{Namespace: operator.DefaultNamespace, Name: certs.DefaultSecretName}
	stopKubelet := mountSecret(t, secretKey, certDir)
	defer stopKubelet()

	env.StartManager(t, operator.Options{
		EnableWebhooks:     true,
		CertManagement:     operator.CertManagementSelf,
		WebhookCertDNSName: "localhost",
		// A rule only the webhook holds, to tell its answers apart.
		MaxCredentialLifetime: time.Hour,
	})
	ns := env.Namespace(t)

	var secret corev1.Secret
	if err := env.Client.Get(ctx, secretKey, &secret); err != nil {
		t.Fatalf("the operator did not create its certificate Secret: %v", err)
	}
	testenv.Eventually(t, 90*time.Second, func() error { return webhookWorks(ctx, ns, "first") })
	caBundle := injectedCA(t)
	if bytes.Equal(caBundle, env.WebhookInstallOptions.LocalServingCAData) || len(caBundle) == 0 {
		t.Fatal("the caBundle is not the operator's")
	}
	if err := env.Client.Get(ctx, secretKey, &secret); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBundle, secret.Data["ca.crt"]) {
		t.Fatal("the injected caBundle is not the Secret's ca.crt")
	}
	assertServing(t, secret.Data["tls.crt"])

	t.Run("server certificate renewal", func(t *testing.T) {
		// An expired or unreadable serving certificate is renewed with the
		// same CA, so the caBundle does not change.
		before := secret.Data["tls.crt"]
		var renewed corev1.Secret
		updateSecret(t, secretKey, func(s *corev1.Secret) { s.Data["tls.crt"] = []byte("garbage") })
		testenv.Eventually(t, 60*time.Second, func() error {
			if err := env.Client.Get(ctx, secretKey, &renewed); err != nil {
				return err
			}
			if c := renewed.Data["tls.crt"]; bytes.Equal(c, before) || bytes.Equal(c, []byte("garbage")) || len(c) == 0 {
				return fmt.Errorf("tls.crt not renewed yet")
			}
			return nil
		})
		if !bytes.Equal(injectedCA(t), caBundle) {
			t.Fatal("a server certificate renewal changed the CA")
		}
		assertServing(t, renewed.Data["tls.crt"])
		testenv.Eventually(t, 30*time.Second, func() error { return webhookWorks(ctx, ns, "renewed") })
	})

	t.Run("CA rotation", func(t *testing.T) {
		// Emptying the Secret makes the rotator issue a new CA and serving
		// certificate and re-inject the bundle.
		updateSecret(t, secretKey, func(s *corev1.Secret) { s.Data = nil })
		var rotated corev1.Secret
		testenv.Eventually(t, 60*time.Second, func() error {
			if err := env.Client.Get(ctx, secretKey, &rotated); err != nil {
				return err
			}
			ca := injectedCA(t)
			if len(rotated.Data["ca.crt"]) == 0 || bytes.Equal(ca, caBundle) || !bytes.Equal(ca, rotated.Data["ca.crt"]) {
				return fmt.Errorf("new CA not issued and injected yet")
			}
			return nil
		})
		assertServing(t, rotated.Data["tls.crt"])
		testenv.Eventually(t, 30*time.Second, func() error { return webhookWorks(ctx, ns, "rotated") })
	})
}

// untrust points the installed webhooks at localhost and removes envtest's
// CA, so only a caBundle the operator injects can make them work.
func untrust(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := env.Client.Get(ctx, types.NamespacedName{Name: webhookv1alpha1.WebhookConfigurationName}, &vwc); err != nil {
		t.Fatalf("the webhook configuration %s is not installed: %v", webhookv1alpha1.WebhookConfigurationName, err)
	}
	port := strconv.Itoa(env.WebhookInstallOptions.LocalServingPort)
	for i := range vwc.Webhooks {
		cc := &vwc.Webhooks[i].ClientConfig
		if cc.URL == nil {
			t.Fatalf("webhook %s has no URL", vwc.Webhooks[i].Name)
		}
		u := strings.Replace(*cc.URL, net.JoinHostPort(env.WebhookInstallOptions.LocalServingHost, port), net.JoinHostPort("localhost", port), 1)
		cc.URL, cc.CABundle = &u, nil
	}
	if err := env.Client.Update(ctx, &vwc); err != nil {
		t.Fatal(err)
	}
}

func injectedCA(t *testing.T) []byte {
	t.Helper()
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: webhookv1alpha1.WebhookConfigurationName}, &vwc); err != nil {
		t.Fatal(err)
	}
	ca := vwc.Webhooks[0].ClientConfig.CABundle
	for _, w := range vwc.Webhooks[1:] {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			t.Fatalf("webhooks carry different caBundles")
		}
	}
	return ca
}

// webhookWorks: a grant living longer than the maximum gets the webhook's
// own message, a valid one is admitted (dry-run, so nothing accumulates).
func webhookWorks(ctx context.Context, ns, name string) error {
	grant := func(name string, lifetime time.Duration) *latchkeyv1alpha1.CredentialGrant {
		return &latchkeyv1alpha1.CredentialGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: latchkeyv1alpha1.CredentialGrantSpec{
				ClientName: "owner",
				ExpiresAt:  &metav1.Time{Time: time.Now().Add(lifetime)},
			},
		}
	}
	err := env.Client.Create(ctx, grant("long-"+name, 48*time.Hour), client.DryRunAll)
	if err == nil || !strings.Contains(err.Error(), `admission webhook "vcredentialgrant-v1alpha1.latchkey.dev" denied the request`) ||
		!strings.Contains(err.Error(), "credentials may live at most 1h0m0s") {
		return fmt.Errorf("want the webhook to reject an over-long grant, got: %v", err)
	}
	if err := env.Client.Create(ctx, grant("short-"+name, 30*time.Minute), client.DryRunAll); err != nil {
		return fmt.Errorf("want a valid grant admitted, got: %v", err)
	}
	return nil
}

// assertServing waits until the webhook server presents certificate pemCert
// (it reloads the mounted files on change).
func assertServing(t *testing.T, pemCert []byte) {
	t.Helper()
	block, _ := pem.Decode(pemCert)
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	want, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := want.VerifyHostname("localhost"); err != nil {
		t.Fatalf("the serving certificate is not for localhost: %v", err)
	}
	addr := net.JoinHostPort(env.WebhookInstallOptions.LocalServingHost, strconv.Itoa(env.WebhookInstallOptions.LocalServingPort))
	testenv.Eventually(t, 30*time.Second, func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // comparing the served certificate, not trusting it
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(want) {
			return fmt.Errorf("serving certificate %s, want %s", got.SerialNumber, want.SerialNumber)
		}
		return nil
	})
}

// mountSecret stands in for the kubelet: it keeps certDir in sync with the
// Secret's tls.crt and tls.key, replacing files atomically as a Secret
// volume does.
func mountSecret(t *testing.T, key types.NamespacedName, certDir string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last []byte
		for ctx.Err() == nil {
			var s corev1.Secret
			if err := env.Client.Get(ctx, key, &s); err == nil && len(s.Data["tls.crt"]) > 0 && len(s.Data["tls.key"]) > 0 {
				if cur := append(append([]byte{}, s.Data["tls.crt"]...), s.Data["tls.key"]...); !bytes.Equal(cur, last) {
					if writeAtomic(certDir, "tls.key", s.Data["tls.key"]) == nil && writeAtomic(certDir, "tls.crt", s.Data["tls.crt"]) == nil {
						last = cur
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

func writeAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

func updateSecret(t *testing.T, key types.NamespacedName, mut func(*corev1.Secret)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), key, &s); err != nil {
			return err
		}
		mut(&s)
		return env.Client.Update(context.Background(), &s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWritesCertFilesOutsideAPod: with a certificate for a URL host
// (WebhookCertDNSName) the operator runs outside a Pod, where no kubelet
// mounts the Secret: it must write tls.crt and tls.key into its CertDir
// itself, or the rotator waits for them and the webhook never serves.
func TestWritesCertFilesOutsideAPod(t *testing.T) {
	ctx := context.Background()
	untrust(t)
	certDir := filepath.Join(t.TempDir(), "not-yet-created")
	env.WebhookInstallOptions.LocalServingCertDir = certDir
	env.StartManager(t, operator.Options{
		EnableWebhooks:        true,
		CertManagement:        operator.CertManagementSelf,
		WebhookCertDNSName:    "localhost",
		MaxCredentialLifetime: time.Hour,
	})
	ns := env.Namespace(t)
	testenv.Eventually(t, 90*time.Second, func() error { return webhookWorks(ctx, ns, "unmounted") })

	var secret corev1.Secret
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: operator.DefaultNamespace, Name: certs.DefaultSecretName}, &secret); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
		got, err := os.ReadFile(filepath.Join(certDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, secret.Data[name]) {
			t.Errorf("%s in the cert dir is not the Secret's", name)
		}
		if fi, err := os.Stat(filepath.Join(certDir, name)); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is readable by others: %v", name, fi.Mode())
		}
	}
	assertServing(t, secret.Data[corev1.TLSCertKey])
}
