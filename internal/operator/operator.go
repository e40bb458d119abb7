package operator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/go-logr/logr"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/catalog"
	"github.com/latchkey-dev/latchkey/internal/catalog/configmap"
	"github.com/latchkey-dev/latchkey/internal/controller"
	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/servingcert"
	"github.com/latchkey-dev/latchkey/internal/signingkeys"
	"github.com/latchkey-dev/latchkey/internal/verifier"
	"github.com/latchkey-dev/latchkey/internal/webhook/certs"
	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

// DefaultNamespace is where the operator keeps its backing tokens when
// neither --namespace nor POD_NAMESPACE says otherwise.
const DefaultNamespace = "latchkey-system"

// Defaults of the operator, shared by Options.Defaults and the command-line
// flags (cmd/main.go) so each is written once.
const (
	// DefaultQPS and DefaultBurst: client-go's own (5/10) are too low for an
	// operator that writes a Secret, a backing token and a status for every
	// credential on a cold start.
	DefaultQPS                     = 50
	DefaultBurst                   = 100
	DefaultMaxConcurrentReconciles = 4
	DefaultWebhookPort             = 9443
	DefaultLeaderElectionID        = "latchkey.latchkey.dev"
	// DefaultAccessTokenKeyRotation is the flags' signing-key rotation
	// period (0 in Options rotates only on request).
	DefaultAccessTokenKeyRotation = 30 * 24 * time.Hour
)

// Options configure the operator. Zero values are filled by Defaults.
type Options struct {
	// Namespace is the operator's own namespace: the leader-election Lease,
	// the webhook certificate and the permission catalog ConfigMap live there.
	Namespace string
	// TokenNamespace is where backing tokens (lk-*), client-id claims
	// (lkid-*), the access-token signing keys and the heartbeat live: a
	// namespace of their own lets the verifier be granted read access to
	// exactly them (RBAC cannot narrow list/watch by name or label). Default:
	// Namespace.
	TokenNamespace string
	// WatchNamespaces restricts the operator to these namespaces (namespaced
	// mode). Empty: all namespaces.
	WatchNamespaces []string

	MetricsAddr string
	// MetricsSecure serves metrics over HTTPS (a self-signed certificate)
	// and admits only requests whose bearer token the API server
	// authenticates (TokenReview) and authorizes for GET on the metrics path
	// (SubjectAccessReview), as the kubebuilder v4 scaffold does.
	MetricsSecure  bool
	ProbeAddr      string
	LeaderElection bool
	// LeaderElectionID names the Lease the replicas compete for.
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// zero keeps controller-runtime's defaults (15s, 10s, 2s). After a hard
	// kill of the leader, another replica takes over within about
	// LeaseDuration + RetryPeriod.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	// WebhookPort and WebhookCertDir configure the admission webhook server.
	// EnableWebhooks false skips it (the CRD's CEL rules still hold).
	EnableWebhooks bool
	WebhookHost    string
	WebhookPort    int
	WebhookCertDir string

	// CertManagement is CertManagementSelf (default: the operator creates and
	// rotates its own CA and serving certificate and injects the CA bundle)
	// or CertManagementCertManager (certificates are mounted into
	// WebhookCertDir by cert-manager or any other provider).
	CertManagement string
	// WebhookServiceName is the Service the API server reaches the webhook
	// through; the self-managed certificate is issued for
	// <WebhookServiceName>.<Namespace>.svc.
	WebhookServiceName string
	// WebhookCertDNSName overrides that name, for an API server that reaches
	// the webhook by URL (running the operator outside the cluster).
	WebhookCertDNSName string
	// WebhookCertSecretName is the Secret, in Namespace, that holds the
	// self-managed CA and serving certificate.
	WebhookCertSecretName string
	// PermissionCatalogFile is a YAML permission catalog; empty for none.
	PermissionCatalogFile string
	// PermissionCatalogConfigMap names a ConfigMap in Namespace holding a
	// permission catalog under key catalog.yaml, watched live; merged with
	// PermissionCatalogFile. Empty for none.
	PermissionCatalogConfigMap string
	// MaxCredentialLifetime bounds a CredentialGrant's spec.expiresAt from
	// the time it is written; 0 disables the rule.
	MaxCredentialLifetime time.Duration

	// QPS and Burst for the API client. client-go's defaults (5/10) are too
	// low for an operator that writes a Secret, a backing token and a status
	// for every credential on a cold start.
	QPS   float32
	Burst int
	// APICompression asks the API server to gzip its responses, watch
	// streams included. Off by default: on the same network as the API
	// server the gzip costs more (API server CPU, the operator's CPU to
	// decompress) than the bytes save. A replica starting up is bound by
	// that CPU: 10,000 tokens, a verifier-only start cost kube-apiserver
	// 1.1 CPU-seconds without gzip and 1.9 with it (docs/performance.md).
	APICompression bool

	// MaxConcurrentReconciles per controller.
	MaxConcurrentReconciles int
	// EnableHTTP2 on the webhook and metrics servers; off by default
	// (CVE-2023-44487, HTTP/2 rapid reset).
	EnableHTTP2 bool

	// VerifierAddr is the verification service's listen address (":8082");
	// empty or "0" disables it. VerifierListener, when set, wins (tests).
	VerifierAddr     string
	VerifierListener net.Listener
	// VerifierGRPCAddr is the listen address of the verifier's gRPC
	// ext_authz and health service (":8083"); empty or "0" disables it.
	// VerifierGRPCListener, when set, wins (tests).
	VerifierGRPCAddr     string
	VerifierGRPCListener net.Listener
	// VerifierOnly runs only the verification service: no controllers, no
	// webhook, read-only access (a separate Deployment with several replicas).
	VerifierOnly bool
	// extraReadyz is one more readiness check (Run's verifier manager asks
	// the controllers' manager whether its webhook server started).
	extraReadyz healthz.Checker
	// Verifier tunes the verification service; Namespace is filled in.
	Verifier verifier.Options
	// AccessTokenKeyRotation is how often the access-token signing key is
	// rotated (by the leader); 0 rotates only on request (annotation
	// latchkey.dev/rotate on the key Secret).
	AccessTokenKeyRotation time.Duration

	// VerifierTLSIssue makes the leader issue and renew Verifier.TLSSecret
	// from its own CA (kept in Namespace); false when cert-manager or
	// another issuer writes that Secret.
	VerifierTLSIssue bool
	// VerifierServiceName is the verifier's Service, for the DNS names of
	// the certificate the leader issues; default "latchkey-verifier".
	VerifierServiceName string

	// HeartbeatInterval is how often every manager replica stamps the
	// heartbeat Secret that verifiers use to bound the age of their view
	// (verifier.Options.MaxStaleness); default heartbeat.DefaultInterval.
	HeartbeatInterval time.Duration

	// Now is the clock of the controllers and the signing-key manager
	// (tests move it); time.Now when nil. The verifier has its own.
	Now func() time.Time

	// SkipControllerNameValidation lets one process build several managers
	// (tests that restart the operator); controller names are global.
	SkipControllerNameValidation bool
}

// Certificate management modes for the admission webhook.
const (
	CertManagementSelf        = "self"
	CertManagementCertManager = "cert-manager"
)

// Defaults fills unset options.
func (o *Options) Defaults() {
	if o.CertManagement == "" {
		o.CertManagement = CertManagementSelf
	}
	if o.WebhookServiceName == "" {
		o.WebhookServiceName = certs.DefaultServiceName
	}
	if o.WebhookCertSecretName == "" {
		o.WebhookCertSecretName = certs.DefaultSecretName
	}
	if o.WebhookCertDir == "" {
		o.WebhookCertDir = certs.DefaultCertDir
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = DefaultLeaderElectionID
	}
	if o.QPS == 0 {
		o.QPS = DefaultQPS
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxConcurrentReconciles == 0 {
		o.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if o.WebhookPort == 0 {
		o.WebhookPort = DefaultWebhookPort
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = heartbeat.DefaultInterval
	}
	if o.VerifierServiceName == "" {
		o.VerifierServiceName = verifier.DefaultServiceName
	}
	if o.TokenNamespace == "" {
		o.TokenNamespace = o.Namespace
	}
	// The issuer names the verifier Service, in the operator's namespace;
	// everything else the verifier reads lives in the token namespace.
	if o.Verifier.Issuer == "" {
		o.Verifier.Issuer = verifier.DefaultIssuer(o.Namespace)
	}
	o.Verifier.Namespace = o.TokenNamespace
	if o.Verifier.Informers == nil {
		o.Verifier.Informers = &verifier.Informers{}
	}
	o.Verifier.Defaults()
}

// NewScheme returns a scheme with the Kubernetes built-in types and Latchkey's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(latchkeyv1alpha1.AddToScheme(s))
	return s
}

// CacheOptions caches only what the operator owns or serves from: Latchkey's
// resources and the Secrets it wrote (label-selected). A request for any other
// kind from the cache fails instead of silently starting a cluster-wide
// informer; user-referenced Secrets are read with the uncached API reader.
// Anyone can put the label on a Secret, so the Secret transform (cache.go)
// keeps data only of what Latchkey writes: a tenant's labelled Secrets cost
// almost nothing.
func CacheOptions(opts Options) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue})
	secrets := cache.ByObject{Label: managed, Transform: secretTransform(opts)}
	tokens := opts.TokenNamespace
	if tokens == "" {
		tokens = opts.Namespace
	}
	var namespaces map[string]cache.Config
	if len(opts.WatchNamespaces) > 0 {
		namespaces = map[string]cache.Config{}
		for _, ns := range append([]string{opts.Namespace}, opts.WatchNamespaces...) {
			namespaces[ns] = cache.Config{}
		}
	}
	switch {
	case opts.VerifierOnly:
		// The verifier reads only backing tokens, claims and signing keys: no
		// Secret elsewhere (its RBAC allows nothing else).
		secrets.Namespaces = map[string]cache.Config{tokens: {}}
	case namespaces != nil:
		// Namespaced mode: consumer Secrets where the manager manages, and
		// the token namespace (Latchkey's resources are not cached there).
		secrets.Namespaces = map[string]cache.Config{tokens: {}}
		for ns := range namespaces {
			secrets.Namespaces[ns] = cache.Config{}
		}
	}
	var newInformer func(toolscache.ListerWatcher, runtime.Object, time.Duration, toolscache.Indexers) toolscache.SharedIndexInformer
	if opts.Verifier.Informers != nil {
		// The verifier reads the informers' indexers, also of a
		// namespace-restricted cache (whose informers do not expose them).
		newInformer = opts.Verifier.Informers.NewInformer
	}
	// ByObject is keyed by pointer: each kind must appear exactly once.
	byObject := map[client.Object]cache.ByObject{&corev1.Secret{}: secrets,
		// Revocation records (POST /oauth2/revoke): the token namespace
		// only, and only they (the permission catalog has its own cache).
		&corev1.ConfigMap{}: {
			Namespaces: map[string]cache.Config{tokens: {}},
			Label: labels.SelectorFromSet(labels.Set{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
				backing.LabelComponent: backing.ComponentRevocation}),
		}}
	if opts.VerifierOnly {
		// Only what verification reads (cache.go).
		byObject[&latchkeyv1alpha1.ApiClient{}] = cache.ByObject{Transform: verifierClientTransform}
		byObject[&latchkeyv1alpha1.CredentialGrant{}] = cache.ByObject{Transform: verifierGrantTransform}
	} else {
		byObject[&latchkeyv1alpha1.ApiClient{}] = cache.ByObject{Transform: dropLastApplied}
		byObject[&latchkeyv1alpha1.CredentialGrant{}] = cache.ByObject{Transform: dropLastApplied}
	}
	return cache.Options{
		NewInformer:                 newInformer,
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		DefaultNamespaces:           namespaces,
		ByObject:                    byObject,
	}
}

var stripManagedFields = cache.TransformStripManagedFields()

// dropLastApplied strips managedFields and kubectl's last-applied
// configuration from a cached ApiClient or CredentialGrant: a copy of the
// whole object that `kubectl apply` keeps in an annotation, which would
// double what the manager holds per object. Nothing reads it; the
// controllers write these objects only with patches of their own fields
// (the finalizer, server-side applied status), never an update of the
// cached object, so nothing can write the cached copy back without it.
func dropLastApplied(in any) (any, error) {
	out, err := stripManagedFields(in)
	if o, ok := out.(client.Object); ok {
		if a := o.GetAnnotations(); a[corev1.LastAppliedConfigAnnotation] != "" {
			delete(a, corev1.LastAppliedConfigAnnotation)
			o.SetAnnotations(maps.Clone(a)) // a map does not shrink
		}
	}
	return out, err
}

// NewManager builds the manager with every controller and, when enabled, the
// webhook server registered. It does not start it.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	opts.Defaults()
	if opts.VerifierOnly {
		opts.EnableWebhooks, opts.LeaderElection = false, false
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	cfg.DisableCompression = !opts.APICompression

	var tlsOpts []func(*tls.Config)
	if !opts.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	mgrOpts := ctrl.Options{
		Scheme:                        NewScheme(),
		Cache:                         CacheOptions(opts),
		Metrics:                       metricsOptions(opts, tlsOpts),
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(opts.LeaseDuration),
		RenewDeadline:                 nonZero(opts.RenewDeadline),
		RetryPeriod:                   nonZero(opts.RetryPeriod),
		GracefulShutdownTimeout:       ptrDuration(10 * time.Second),
		Controller:                    config.Controller{SkipNameValidation: &opts.SkipControllerNameValidation},
	}
	var adm admission
	if opts.EnableWebhooks {
		var err error
		if adm, err = newAdmission(opts); err != nil {
			return nil, err
		}
		mgrOpts.WebhookServer = certs.Gate(webhook.NewServer(webhook.Options{
			Host:    opts.WebhookHost,
			Port:    opts.WebhookPort,
			CertDir: opts.WebhookCertDir,
			TLSOpts: tlsOpts,
		}), adm.gates...)
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if !opts.VerifierOnly {
		if err := controller.Setup(mgr, controller.Options{
			Namespace:               opts.TokenNamespace,
			MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
			Now:                     opts.Now,
		}); err != nil {
			return nil, err
		}
		if err := signingkeys.Setup(mgr, &signingkeys.Manager{
			Namespace: opts.TokenNamespace, Name: opts.Verifier.SigningKeySecret, Now: opts.Now,
			RotateEvery: opts.AccessTokenKeyRotation, MaxTTL: opts.Verifier.AccessTokenTTL,
		}); err != nil {
			return nil, err
		}
		if opts.Verifier.TLSSecret != "" && opts.VerifierTLSIssue {
			svc := opts.VerifierServiceName
			if err := mgr.Add(&servingcert.Issuer{Client: mgr.GetClient(), Now: opts.Now,
				CANamespace: opts.Namespace, CASecret: servingcert.DefaultCASecretName,
				ServingNamespace: opts.Verifier.Namespace, ServingSecret: opts.Verifier.TLSSecret,
				DNSNames: []string{svc + "." + opts.Namespace + ".svc", svc + "." + opts.Namespace + ".svc.cluster.local", svc + "." + opts.Namespace, svc, "localhost"},
				IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			}); err != nil {
				return nil, err
			}
		}
		// Every replica beats, in the namespace verifiers watch, so they can
		// bound the age of their view (--max-staleness).
		if err := mgr.Add(&heartbeat.Writer{Client: mgr.GetClient(), Namespace: opts.Verifier.Namespace,
			Interval: opts.HeartbeatInterval, Now: opts.Now}); err != nil {
			return nil, err
		}
	}
	if opts.servesVerifier() {
		vopts := opts.Verifier
		vopts.Namespace, vopts.Addr, vopts.Listener = opts.TokenNamespace, opts.VerifierAddr, opts.VerifierListener
		vopts.GRPCAddr, vopts.GRPCListener = opts.VerifierGRPCAddr, opts.VerifierGRPCListener
		// A verifier-only process records usage too: its RBAC lets it patch
		// the status of ApiClients and CredentialGrants and nothing else.
		if _, err := verifier.Setup(mgr, vopts); err != nil {
			return nil, err
		}
	}
	if opts.EnableWebhooks {
		if err := adm.setup(mgr, opts); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	readyz := healthz.Ping
	if opts.EnableWebhooks {
		readyz = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", readyz); err != nil {
		return nil, fmt.Errorf("adding ready check: %w", err)
	}
	if opts.extraReadyz != nil {
		if err := mgr.AddReadyzCheck("webhook", opts.extraReadyz); err != nil {
			return nil, fmt.Errorf("adding ready check: %w", err)
		}
	}
	return mgr, nil
}

// Run builds the manager and runs it until ctx is cancelled.
//
// Verification never depends on leadership. When this process both runs the
// controllers under leader election and serves the verifier (the chart's
// verifier.servedByManager), they run in two managers: the verifier, with the
// health probes and metrics, in one without leader election; the controllers
// and the webhook in another, which is built again and campaigns again when
// it loses its lease (an API server outage longer than the lease). Losing
// the lease stops the controllers, not the verifier, which goes on answering
// from its cache (bounded by --max-staleness). The cost: the verifier keeps a
// cache of its own (backing tokens, ApiClients, CredentialGrants) beside the
// controllers'.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	log := ctrl.LoggerFrom(ctx)
	if !opts.LeaderElection || opts.VerifierOnly || !opts.servesVerifier() {
		mgr, err := NewManager(cfg, opts)
		if err != nil {
			return err
		}
		log.Info("Starting manager", "namespace", opts.Namespace, "watchNamespaces", opts.WatchNamespaces)
		if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("running manager: %w", err)
		}
		return nil
	}

	vopts := opts
	vopts.VerifierOnly = true
	copts := opts
	copts.VerifierAddr, copts.VerifierListener, copts.ProbeAddr, copts.MetricsAddr = "0", nil, "0", "0"
	var current atomic.Pointer[ctrl.Manager]
	if opts.EnableWebhooks {
		// The process is ready when its webhook server is, as with one manager.
		vopts.extraReadyz = func(req *http.Request) error {
			m := current.Load()
			if m == nil {
				return errors.New("the webhook server is not started")
			}
			return (*m).GetWebhookServer().StartedChecker()(req)
		}
	}
	vmgr, err := NewManager(cfg, vopts)
	if err != nil {
		return err
	}
	vctx, stopVerifier := context.WithCancel(ctx)
	defer stopVerifier()
	verr, vdone := make(chan error, 1), make(chan struct{})
	log.Info("Starting the verifier", "namespace", opts.Namespace)
	go func() { verr <- vmgr.Start(vctx); close(vdone) }()

	for rebuilt := false; ; rebuilt = true {
		mgr, err := NewManager(cfg, copts)
		if err != nil && rebuilt {
			// Rebuilding after a lost lease reads the API server (discovery),
			// which may still be unreachable: try again, the verifier serving
			// meanwhile, rather than exit and take the verifier with us.
			mgr, err = retryNewManager(ctx, log, cfg, copts, vdone)
			if errors.Is(err, errVerifierDone) {
				return verifierStopped(ctx, <-verr)
			}
			if err != nil && ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			return err
		}
		current.Store(&mgr)
		log.Info("Starting manager", "namespace", opts.Namespace, "watchNamespaces", opts.WatchNamespaces)
		err = mgr.Start(ctx)
		current.Store(nil)
		select {
		case err := <-verr:
			return verifierStopped(ctx, err)
		default:
		}
		if ctx.Err() != nil {
			break
		}
		if err == nil || !strings.Contains(err.Error(), "leader election lost") {
			stopVerifier()
			if verifierErr := <-verr; verifierErr != nil && !errors.Is(verifierErr, context.Canceled) {
				return errors.Join(fmt.Errorf("running manager: %w", err), fmt.Errorf("running the verifier: %w", verifierErr))
			}
			return fmt.Errorf("running manager: %w", err)
		}
		log.Info("Lost the leader lease: the controllers stopped and campaign again; the verifier goes on serving")
		// The controllers' names are registered once per process.
		copts.SkipControllerNameValidation = true
	}
	return verifierStopped(ctx, <-verr)
}

// servesVerifier reports whether this process serves the verification
// service.
func (o Options) servesVerifier() bool {
	return o.VerifierListener != nil || (o.VerifierAddr != "" && o.VerifierAddr != "0")
}

// admission is the webhook wiring decided before the manager exists: the
// permission catalog source and what the webhook server waits for.
type admission struct {
	catalog    catalog.Source
	configMap  *configmap.Source
	certsReady chan struct{}
	gates      []<-chan struct{}
}

func newAdmission(opts Options) (admission, error) {
	var a admission
	switch opts.CertManagement {
	case CertManagementSelf:
		a.certsReady = make(chan struct{})
		a.gates = append(a.gates, a.certsReady)
	case CertManagementCertManager:
	default:
		return a, fmt.Errorf("--cert-management must be %q or %q, not %q", CertManagementSelf, CertManagementCertManager, opts.CertManagement)
	}
	var base *catalog.Catalog
	if opts.PermissionCatalogFile != "" {
		var err error
		if base, err = catalog.LoadFile(opts.PermissionCatalogFile); err != nil {
			return a, err
		}
		a.catalog = catalog.Static{Catalog: base}
	}
	if opts.PermissionCatalogConfigMap != "" {
		a.configMap = configmap.NewSource(base, opts.Namespace, opts.PermissionCatalogConfigMap)
		a.catalog = a.configMap
		a.gates = append(a.gates, a.configMap.Ready())
	}
	return a, nil
}

func (a admission) setup(mgr ctrl.Manager, opts Options) error {
	if a.configMap != nil {
		if err := a.configMap.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	if err := webhookv1alpha1.Setup(mgr, webhookv1alpha1.Options{
		Catalog:               a.catalog,
		MaxCredentialLifetime: opts.MaxCredentialLifetime,
	}); err != nil {
		return err
	}
	if a.certsReady == nil {
		return nil
	}
	// A certificate for a name other than the Service's (WebhookCertDNSName)
	// means the operator runs outside a Pod, where no kubelet mounts the
	// Secret: it writes the files into WebhookCertDir itself.
	return certs.Setup(context.Background(), mgr, certs.Options{
		Namespace:                opts.Namespace,
		SecretName:               opts.WebhookCertSecretName,
		ServiceName:              opts.WebhookServiceName,
		DNSName:                  opts.WebhookCertDNSName,
		WebhookConfigurationName: webhookv1alpha1.WebhookConfigurationName,
		CertDir:                  opts.WebhookCertDir,
		WriteCertFiles:           opts.WebhookCertDNSName != "",
		Ready:                    a.certsReady,
		UniqueControllerName:     opts.SkipControllerNameValidation,
	})
}

// metricsOptions serves metrics on MetricsAddr: over HTTPS with
// authentication (TokenReview) and authorization (SubjectAccessReview of GET
// on the path) when MetricsSecure, as the kubebuilder v4 scaffold does.
func metricsOptions(opts Options, tlsOpts []func(*tls.Config)) metricsserver.Options {
	m := metricsserver.Options{BindAddress: opts.MetricsAddr, TLSOpts: tlsOpts}
	if opts.MetricsSecure {
		m.SecureServing = true
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return m
}

func ptrDuration(d time.Duration) *time.Duration { return &d }

// nonZero is nil for zero, so controller-runtime applies its default.
func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}

// errVerifierDone: the verifier's manager returned (its result is on verr).
var errVerifierDone = errors.New("the verifier stopped")

// retryNewManager builds the controllers' manager again until it can (the
// API server answers discovery), ctx ends, or the verifier stops.
func retryNewManager(ctx context.Context, log logr.Logger, cfg *rest.Config, opts Options, vdone <-chan struct{}) (ctrl.Manager, error) {
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		mgr, err := NewManager(cfg, opts)
		if err == nil {
			return mgr, nil
		}
		log.Info("Cannot build the controllers' manager yet; the verifier goes on serving", "error", err.Error(), "retryIn", delay.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-vdone:
			return nil, errVerifierDone
		case <-time.After(delay):
		}
	}
}

// verifierStopped is the error of Run when its verifier's manager returned
// err: none when it stopped because ctx ended.
func verifierStopped(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)):
		return nil
	case err == nil:
		return errVerifierDone
	}
	return fmt.Errorf("running the verifier: %w", err)
}
