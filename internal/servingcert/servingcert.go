// Package servingcert gives the verification service TLS without a kubelet
// mount or a restart: the manager's leader keeps a CA (in the operator
// namespace, which the verifier cannot read) and a serving certificate signed
// by it (a kubernetes.io/tls Secret with ca.crt, in the backing-token
// namespace the verifier already watches), renewing the serving certificate
// well before it expires; the verifier takes its certificate from that Secret
// through its informer on every handshake. cert-manager, or anything else that
// writes a kubernetes.io/tls Secret of that name, can replace the issuer.
package servingcert

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// Defaults.
const (
	// DefaultSecretName is the serving Secret (token namespace).
	DefaultSecretName = "latchkey-verifier-tls"
	// DefaultCASecretName is the CA Secret (operator namespace).
	DefaultCASecretName = "latchkey-verifier-ca"
	// KeyCA is the CA certificate's key in both Secrets.
	KeyCA    = "ca.crt"
	keyCAKey = "ca.key"

	caLifetime   = 10 * 365 * 24 * time.Hour
	certLifetime = 90 * 24 * time.Hour
	// renew once less than a third of the lifetime is left.
	renewBefore = certLifetime / 3
)

// Issuer keeps the CA and the serving certificate. It runs on the leader.
type Issuer struct {
	Client client.Client
	// CANamespace holds the CA Secret; ServingNamespace the serving one.
	CANamespace, ServingNamespace string
	CASecret, ServingSecret       string
	// DNSNames of the serving certificate (the verifier Service's names).
	DNSNames []string
	// IPs of the serving certificate (127.0.0.1 for local use).
	IPs []net.IP
	Now func() time.Time
}

// Start ensures the certificates now and then every hour.
func (is *Issuer) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("servingcert")
	for {
		if err := is.Ensure(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "Ensuring the verifier's serving certificate")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Hour):
		}
	}
}

func (is *Issuer) now() time.Time {
	if is.Now != nil {
		return is.Now()
	}
	return time.Now()
}

// Ensure creates or renews what is missing, expiring or for other names.
func (is *Issuer) Ensure(ctx context.Context) error {
	ca, caKey, err := is.ensureCA(ctx)
	if err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: is.ServingNamespace, Name: is.ServingSecret}
	sec := &corev1.Secret{}
	err = is.Client.Get(ctx, key, sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if err == nil && is.servingValid(sec, ca) {
		return nil
	}
	certPEM, keyPEM, err := is.issue(ca, caKey)
	if err != nil {
		return err
	}
	data := map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, KeyCA: pemCert(ca.Raw)}
	if sec.Name == "" {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: labels("verifier-tls")},
			Type: corev1.SecretTypeTLS, Data: data}
		if err := is.Client.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", key, err)
		}
		return nil
	}
	sec.Data = data
	if err := is.Client.Update(ctx, sec); err != nil {
		return fmt.Errorf("renewing %s: %w", key, err)
	}
	ctrl.LoggerFrom(ctx).Info("Renewed the verifier's serving certificate", "secret", key.String())
	return nil
}

func labels(component string) map[string]string {
	return map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue, "app.kubernetes.io/component": component}
}

func (is *Issuer) ensureCA(ctx context.Context) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key := types.NamespacedName{Namespace: is.CANamespace, Name: is.CASecret}
	sec := &corev1.Secret{}
	err := is.Client.Get(ctx, key, sec)
	if err == nil {
		if ca, caKey, perr := parseCA(sec); perr == nil && is.now().Before(ca.NotAfter.Add(-certLifetime)) {
			return ca, caKey, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("reading %s: %w", key, err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := is.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "latchkey-verifier-ca", Organization: []string{"latchkey"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caLifetime), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, nil, err
	}
	data := map[string][]byte{KeyCA: pemCert(der), keyCAKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})}
	if sec.Name == "" {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: labels("verifier-ca")},
			Type: corev1.SecretTypeOpaque, Data: data}
		if err := is.Client.Create(ctx, sec); err != nil {
			return nil, nil, fmt.Errorf("creating %s: %w", key, err)
		}
	} else {
		sec.Data = data
		if err := is.Client.Update(ctx, sec); err != nil {
			return nil, nil, fmt.Errorf("renewing %s: %w", key, err)
		}
	}
	return ca, caKey, nil
}

func parseCA(sec *corev1.Secret) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(sec.Data[KeyCA])
	kb, _ := pem.Decode(sec.Data[keyCAKey])
	if cb == nil || kb == nil {
		return nil, nil, errors.New("the CA Secret is incomplete")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("the CA key is not ECDSA")
	}
	return ca, ek, nil
}

// servingValid: signed by ca, for the wanted names, and not due for renewal.
func (is *Issuer) servingValid(sec *corev1.Secret, ca *x509.Certificate) bool {
	pair, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil || !bytes.Equal(sec.Data[KeyCA], pemCert(ca.Raw)) {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || leaf.CheckSignatureFrom(ca) != nil || !is.now().Before(leaf.NotAfter.Add(-renewBefore)) {
		return false
	}
	for _, n := range is.DNSNames {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func (is *Issuer) issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := is.now()
	cn := "latchkey-verifier"
	if len(is.DNSNames) > 0 {
		cn = is.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, DNSNames: is.DNSNames, IPAddresses: is.IPs,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(certLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// Source serves the certificate of a kubernetes.io/tls Secret, read through
// get (an informer lookup) on each handshake and parsed once per version.
type Source struct {
	Get func() (*corev1.Secret, error)
	v   atomic.Pointer[parsed]
}

type parsed struct {
	rv   string
	cert *tls.Certificate
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sec, err := s.Get()
	if err != nil {
		return nil, fmt.Errorf("the verifier's serving certificate is not available: %w", err)
	}
	if p := s.v.Load(); p != nil && p.rv == sec.ResourceVersion && sec.ResourceVersion != "" {
		return p.cert, nil
	}
	pair, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("the verifier's serving certificate Secret is invalid: %w", err)
	}
	s.v.Store(&parsed{rv: sec.ResourceVersion, cert: &pair})
	return &pair, nil
}

// TLSConfig is the verifier's TLS configuration: TLS 1.2 and up, HTTP/1.1
// (HTTP/2 is off, as for the webhook and metrics servers: CVE-2023-44487).
func (s *Source) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.GetCertificate, NextProtos: []string{"http/1.1"}}
}
