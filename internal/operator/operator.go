package operator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/controller"
)

// DefaultNamespace is where the operator keeps its backing tokens when
// neither --namespace nor POD_NAMESPACE says otherwise.
const DefaultNamespace = "latchkey-system"

// Options configure the operator. Zero values are filled by Defaults.
type Options struct {
	// Namespace is the operator's own namespace: backing tokens and the
	// webhook certificate live there.
	Namespace string
	// WatchNamespaces restricts the operator to these namespaces (namespaced
	// mode). Empty: all namespaces.
	WatchNamespaces []string

	MetricsAddr    string
	ProbeAddr      string
	LeaderElection bool
	// LeaderElectionID names the Lease the replicas compete for.
	LeaderElectionID string

	// WebhookPort and WebhookCertDir configure the admission webhook server.
	// EnableWebhooks false skips it (the CRD's CEL rules still hold).
	EnableWebhooks bool
	WebhookHost    string
	WebhookPort    int
	WebhookCertDir string

	// QPS and Burst for the API client. client-go's defaults (5/10) are too
	// low for an operator that writes a Secret, a backing token and a status
	// for every credential on a cold start.
	QPS   float32
	Burst int

	// MaxConcurrentReconciles per controller.
	MaxConcurrentReconciles int
	// EnableHTTP2 on the webhook and metrics servers; off by default
	// (CVE-2023-44487, HTTP/2 rapid reset).
	EnableHTTP2 bool
}

// Defaults fills unset options.
func (o *Options) Defaults() {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = "latchkey.latchkey.dev"
	}
	if o.QPS == 0 {
		o.QPS = 50
	}
	if o.Burst == 0 {
		o.Burst = 100
	}
	if o.MaxConcurrentReconciles == 0 {
		o.MaxConcurrentReconciles = 4
	}
	if o.WebhookPort == 0 {
		o.WebhookPort = 9443
	}
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
func CacheOptions(opts Options) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue})
	co := cache.Options{
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: managed},
		},
	}
	if len(opts.WatchNamespaces) > 0 {
		co.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range append([]string{opts.Namespace}, opts.WatchNamespaces...) {
			co.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return co
}

// NewManager builds the manager with every controller and, when enabled, the
// webhook server registered. It does not start it.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	opts.Defaults()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst

	var tlsOpts []func(*tls.Config)
	if !opts.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	mgrOpts := ctrl.Options{
		Scheme:                        NewScheme(),
		Cache:                         CacheOptions(opts),
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr, TLSOpts: tlsOpts},
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptrDuration(10 * time.Second),
	}
	if opts.EnableWebhooks {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{
			Host:    opts.WebhookHost,
			Port:    opts.WebhookPort,
			CertDir: opts.WebhookCertDir,
			TLSOpts: tlsOpts,
		})
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := controller.Setup(mgr, controller.Options{
		Namespace:               opts.Namespace,
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}); err != nil {
		return nil, err
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
	return mgr, nil
}

// Run builds the manager and runs it until ctx is cancelled.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	mgr, err := NewManager(cfg, opts)
	if err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("Starting manager", "namespace", opts.Namespace, "watchNamespaces", opts.WatchNamespaces)
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

func ptrDuration(d time.Duration) *time.Duration { return &d }
