package certs

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;update

const (
	// DefaultSecretName holds the CA and serving certificate.
	DefaultSecretName = "latchkey-webhook-server-cert"
	// DefaultServiceName is the webhook Service in config/webhook (with
	// config/default's "latchkey-" name prefix).
	DefaultServiceName = "latchkey-webhook-service"
	// DefaultCertDir is controller-runtime's default serving directory,
	// where the Secret is mounted.
	DefaultCertDir = "/tmp/k8s-webhook-server/serving-certs"
)

// Options configure the rotator.
type Options struct {
	// Namespace is the operator's namespace, where the Secret lives.
	Namespace string
	// SecretName of the Secret holding ca.crt, ca.key, tls.crt, tls.key.
	SecretName string
	// WebhookConfigurationName is the ValidatingWebhookConfiguration whose
	// caBundle is injected.
	WebhookConfigurationName string
	// DNSName the API server uses to reach the webhook, by default
	// <ServiceName>.<Namespace>.svc.
	DNSName     string
	ServiceName string
	// CertDir is where the Secret is mounted (tls.crt, tls.key); the
	// webhook server reads it and reloads on change.
	CertDir string
	// ServerCertDuration and LookaheadInterval (renew this long before
	// expiry) override cert-controller's defaults (1 year, 90 days); CA
	// validity is 10 years.
	ServerCertDuration time.Duration
	LookaheadInterval  time.Duration
	// RotationCheckFrequency overrides the 12h check interval.
	RotationCheckFrequency time.Duration
	// UniqueControllerName suffixes the rotator's controller name with a
	// per-process counter. Controller names are process-global and the
	// rotator cannot skip that check, so a process that builds several
	// managers (tests restarting the operator) needs it.
	UniqueControllerName bool
	// WriteCertFiles makes the operator write tls.crt and tls.key from the
	// Secret into CertDir itself, for a webhook served outside a Pod (no
	// kubelet mounts the Secret there). Leave it false in a Pod: CertDir is
	// then a read-only Secret volume.
	WriteCertFiles bool
	// FilePollInterval is how often WriteCertFiles re-reads the Secret for a
	// renewed certificate; default 10s.
	FilePollInterval time.Duration
	// Ready is closed once the serving certificate is in CertDir and the CA
	// bundle is injected; pass it to Gate. Required.
	Ready chan struct{}
}

// The rotator injects the CA bundle into every webhook's clientConfig,
// whether it names a Service or a URL, so a configuration that points at
// https://localhost:<port>/... (an operator run outside the cluster) works
// too. cert-controller issues DNS names only (no IP SANs): such a URL must use
// a host name, such as localhost, given as DNSName.
//
// Setup ensures the certificate Secret exists and adds the rotator to the
// manager, which closes opts.Ready once the serving certificate is in CertDir
// and the CA bundle is injected. Call it before the manager starts.
//
// The rotator runs on every replica (RequireLeaderElection false): each
// serves webhooks and must see its certificate become ready; concurrent
// writes are resolved by resourceVersion conflicts and a retry that finds
// the winner's valid certificate.
func Setup(ctx context.Context, mgr manager.Manager, opts Options) error {
	if opts.Ready == nil {
		return fmt.Errorf("certs.Options.Ready is required")
	}
	if opts.SecretName == "" {
		opts.SecretName = DefaultSecretName
	}
	if opts.ServiceName == "" {
		opts.ServiceName = DefaultServiceName
	}
	var extra []string
	if opts.DNSName == "" {
		opts.DNSName = fmt.Sprintf("%s.%s.svc", opts.ServiceName, opts.Namespace)
		extra = []string{opts.ServiceName + "." + opts.Namespace, opts.DNSName + ".cluster.local"}
	}
	if opts.CertDir == "" {
		opts.CertDir = DefaultCertDir
	}
	key := types.NamespacedName{Namespace: opts.Namespace, Name: opts.SecretName}
	// The rotator only updates its Secret; it must exist before it starts.
	// It is created here, before the manager runs, rather than shipped in
	// config/: a GitOps tool would otherwise own an empty Secret and wipe
	// the certificates on every sync.
	if err := ensureSecret(ctx, mgr, key); err != nil {
		return err
	}
	r := &rotator.CertRotator{
		SecretKey:              key,
		CertDir:                opts.CertDir,
		CAName:                 "latchkey-webhook-ca",
		CAOrganization:         "latchkey",
		DNSName:                opts.DNSName,
		ExtraDNSNames:          extra,
		IsReady:                opts.Ready,
		Webhooks:               []rotator.WebhookInfo{{Name: opts.WebhookConfigurationName, Type: rotator.Validating}},
		FieldOwner:             "latchkey-cert-rotator",
		RequireLeaderElection:  false,
		RestartOnSecretRefresh: false,
		EnableReadinessCheck:   true,
		ServerCertDuration:     opts.ServerCertDuration,
		LookaheadInterval:      opts.LookaheadInterval,
		RotationCheckFrequency: opts.RotationCheckFrequency,
		ControllerName:         controllerName(opts.UniqueControllerName),
	}
	if err := rotator.AddRotator(mgr, r); err != nil {
		return fmt.Errorf("adding the webhook certificate rotator: %w", err)
	}
	if opts.WriteCertFiles {
		every := opts.FilePollInterval
		if every <= 0 {
			every = 10 * time.Second
		}
		// The API reader: the manager caches only the Secrets Latchkey
		// issues (by label), not this one.
		if err := mgr.Add(&fileWriter{reader: mgr.GetAPIReader(), key: key, dir: opts.CertDir, every: every}); err != nil {
			return fmt.Errorf("adding the webhook certificate file writer: %w", err)
		}
	}
	return nil
}

var rotators atomic.Int64

func controllerName(unique bool) string {
	const name = "latchkey-cert-rotator"
	if !unique {
		return name
	}
	return fmt.Sprintf("%s-%d", name, rotators.Add(1))
}

func ensureSecret(ctx context.Context, mgr manager.Manager, key types.NamespacedName) error {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("creating a client for the webhook certificate Secret: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var s corev1.Secret
	err = c.Get(ctx, key, &s)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading the webhook certificate Secret %s: %w", key, err)
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
			"app.kubernetes.io/name":      "latchkey",
			"app.kubernetes.io/component": "webhook-certificate",
		}},
		Type: corev1.SecretTypeOpaque,
	}
	if err := c.Create(ctx, &s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the webhook certificate Secret %s: %w", key, err)
	}
	return nil
}

// Gate returns a webhook server that starts listening only once every gate
// channel is closed (certificate ready, permission catalog loaded), so the
// API server never reaches a replica that cannot answer correctly. Its
// StartedChecker fails until then, which keeps the Pod out of the Service.
func Gate(s webhook.Server, gates ...<-chan struct{}) webhook.Server {
	return &gatedServer{Server: s, gates: gates}
}

type gatedServer struct {
	webhook.Server
	gates []<-chan struct{}
}

func (g *gatedServer) Start(ctx context.Context) error {
	for _, c := range g.gates {
		select {
		case <-c:
		case <-ctx.Done():
			return nil
		}
	}
	return g.Server.Start(ctx)
}
