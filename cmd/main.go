// Command manager runs the Latchkey operator: the ApiClient and
// CredentialGrant controllers and the admission webhook.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/verifier"
	"github.com/latchkey-dev/latchkey/internal/version"
	"github.com/latchkey-dev/latchkey/internal/webhook/certs"
)

func main() {
	var opts operator.Options
	var watch string
	flag.StringVar(&opts.Namespace, "namespace", envOr("POD_NAMESPACE", operator.DefaultNamespace),
		"The operator's own namespace: leader election, the webhook certificate and the permission catalog ConfigMap.")
	flag.StringVar(&opts.TokenNamespace, "token-namespace", "",
		"Namespace of the backing tokens, client-id claims and access-token signing keys, which the verifier reads; a namespace of their own lets RBAC grant the verifier exactly them. Empty: --namespace.")
	flag.StringVar(&watch, "watch-namespaces", "",
		"Comma-separated namespaces to manage (namespaced mode). Empty: all namespaces.")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; 0 disables it.")
	flag.BoolVar(&opts.MetricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, only to callers whose bearer token the API server authenticates (TokenReview) and authorizes for GET /metrics (SubjectAccessReview); false: plain HTTP to anyone.")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", false, "Elect a leader so only one replica runs the controllers.")
	flag.DurationVar(&opts.LeaseDuration, "leader-elect-lease-duration", 0,
		"How long a leader's Lease is valid; after a hard kill of the leader another replica takes over within about this plus the retry period. 0: 15s.")
	flag.DurationVar(&opts.RenewDeadline, "leader-elect-renew-deadline", 0,
		"How long the leader retries renewing its Lease before it gives up leadership; below the lease duration. 0: 10s.")
	flag.DurationVar(&opts.RetryPeriod, "leader-elect-retry-period", 0,
		"How often candidates try to acquire or renew the Lease. 0: 2s.")
	flag.BoolVar(&opts.EnableWebhooks, "enable-webhooks", true, "Serve the validating admission webhook.")
	flag.IntVar(&opts.WebhookPort, "webhook-port", operator.DefaultWebhookPort, "Port of the admission webhook server.")
	flag.StringVar(&opts.WebhookCertDir, "webhook-cert-dir", "", "Directory of the webhook serving certificate (tls.crt, tls.key); mount the certificate Secret here.")
	flag.StringVar(&opts.CertManagement, "cert-management", operator.CertManagementSelf,
		"Webhook serving certificates: 'self' (the operator creates and rotates its own CA and certificate and injects the CA bundle) or 'cert-manager' (mounted into --webhook-cert-dir by cert-manager or another provider).")
	flag.StringVar(&opts.WebhookServiceName, "webhook-service-name", certs.DefaultServiceName,
		"Service through which the API server reaches the webhook; the self-managed certificate is issued for <name>.<namespace>.svc.")
	flag.StringVar(&opts.WebhookCertDNSName, "webhook-cert-dns-name", "",
		"DNS name of the self-managed certificate, instead of <webhook-service-name>.<namespace>.svc.")
	flag.StringVar(&opts.WebhookCertSecretName, "webhook-cert-secret", certs.DefaultSecretName,
		"Secret in the operator namespace that holds the self-managed CA and serving certificate.")
	flag.StringVar(&opts.PermissionCatalogFile, "permission-catalog", "",
		"YAML permission catalog (scopes, global scopes, permissions). Empty: no catalog.")
	flag.StringVar(&opts.PermissionCatalogConfigMap, "permission-catalog-configmap", "",
		"ConfigMap in the operator namespace with a permission catalog under key catalog.yaml, watched live and merged with --permission-catalog.")
	flag.DurationVar(&opts.MaxCredentialLifetime, "max-credential-lifetime", 0,
		"Longest a CredentialGrant's spec.expiresAt may lie ahead when it is written (for example 2160h); 0: no limit.")
	flag.StringVar(&opts.VerifierAddr, "verifier-bind-address", ":8082",
		"Address of the verification service (forward-auth, introspection, token endpoint); 0 disables it.")
	flag.StringVar(&opts.VerifierGRPCAddr, "verifier-grpc-bind-address", ":8083",
		"Address of the verifier's gRPC service: Envoy/Istio external authorization (envoy.service.auth.v3.Authorization/Check) and grpc.health.v1; TLS with --verifier-tls-secret. 0 disables it.")
	flag.BoolVar(&opts.VerifierOnly, "verifier-only", false,
		"Run only the verification service, with read-only access: no controllers, no webhook, no usage writes.")
	flag.StringVar(&opts.Verifier.IntrospectionPermission, "introspection-permission", verifier.DefaultIntrospectionPermission,
		"Permission a caller of /oauth2/introspect must hold.")
	flag.DurationVar(&opts.Verifier.AccessTokenTTL, "access-token-ttl", verifier.DefaultAccessTokenTTL,
		"Lifetime of access tokens issued by /oauth2/token (client_credentials); a token whose exp - iat is longer is rejected. Set the same value on the manager and the verifier.")
	flag.StringVar(&opts.Verifier.Issuer, "access-token-issuer", "",
		"Issuer (iss) of access tokens and of the RFC 8414 metadata: the https URL gateways reach the verifier at. Empty: https://latchkey-verifier.<namespace>.svc:8082.")
	flag.StringVar(&opts.Verifier.Audience, "access-token-audience", verifier.DefaultAudience, "Audience (aud) of access tokens.")
	flag.DurationVar(&opts.AccessTokenKeyRotation, "access-token-key-rotation", operator.DefaultAccessTokenKeyRotation,
		"How often the access-token signing key is rotated; 0: only on request (annotate the key Secret with latchkey.dev/rotate).")
	flag.StringVar(&opts.Verifier.TLSSecret, "verifier-tls-secret", "",
		"A kubernetes.io/tls Secret in the backing-token namespace: the verifier serves HTTPS with it (renewals are picked up without a restart). Empty: plain HTTP.")
	flag.BoolVar(&opts.VerifierTLSIssue, "verifier-tls-self-signed", true,
		"With --verifier-tls-secret: the leader issues and renews that Secret from its own CA (Secret latchkey-verifier-ca in the operator namespace; ca.crt is also in the serving Secret). false: cert-manager or another issuer writes it.")
	flag.StringVar(&opts.VerifierServiceName, "verifier-service-name", verifier.DefaultServiceName,
		"The verifier's Service in the operator namespace, for the DNS names of the self-signed certificate.")
	flag.DurationVar(&opts.Verifier.MaxStaleness, "max-staleness", verifier.DefaultMaxStaleness,
		"The verifier answers 503 and is not ready when its view of the cluster may be older than this (no heartbeat arrived through its watch): a revocation may not have reached it. Tolerates API server outages shorter than this; 0 disables the bound.")
	flag.DurationVar(&opts.HeartbeatInterval, "heartbeat-interval", heartbeat.DefaultInterval,
		"How often each manager replica writes the heartbeat verifiers use for --max-staleness; keep it well below --max-staleness.")
	flag.DurationVar(&opts.Verifier.UsageInterval, "usage-interval", verifier.DefaultUsageInterval,
		"How often a credential's last use is written to status.lastUsedAt (at most once per object per interval); 0 disables.")
	flag.Func("slow-hash-memory-budget",
		"Memory the verifier may spend at once on checking user-chosen client secrets (argon2id, 19 MiB each), as a quantity such as 128Mi: budget / 19 MiB checks run at once, one client id gets at most half, and beyond it requests get 503 with Retry-After. Keep it well below the container's memory limit (the garbage collector may hold up to twice it). (default "+
			resource.NewQuantity(verifier.DefaultSlowHashMemoryBudget, resource.BinarySI).String()+")",
		func(v string) error {
			q, err := resource.ParseQuantity(v)
			if err != nil || q.Value() <= 0 {
				return fmt.Errorf("want a positive quantity such as 128Mi")
			}
			opts.Verifier.SlowHashMemoryBudget = q.Value()
			return nil
		})
	qps := flag.Float64("kube-api-qps", operator.DefaultQPS, "Queries per second to the API server.")
	flag.IntVar(&opts.Burst, "kube-api-burst", operator.DefaultBurst, "Burst of queries to the API server.")
	flag.BoolVar(&opts.APICompression, "kube-api-compression", false, "Ask the API server to gzip responses and watch streams (for an API server across a slow link; costs CPU on both sides).")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", operator.DefaultMaxConcurrentReconciles, "Parallel reconciles per controller.")
	flag.BoolVar(&opts.EnableHTTP2, "enable-http2", false, "Serve HTTP/2 on the webhook and metrics servers.")
	showVersion := flag.Bool("version", false, "Print the version and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println("latchkey manager version " + version.Get())
		return
	}

	opts.QPS = float32(*qps)
	if watch != "" {
		opts.WatchNamespaces = strings.Split(watch, ",")
	}
	// Capped at logging.MaxVerbosity whatever --zap-log-level says: client-go
	// logs request and response bodies (Secrets) above it.
	ctrl.SetLogger(logging.New(&zapOpts))
	log := ctrl.Log.WithName("setup")

	ctx := ctrl.SetupSignalHandler()
	if err := operator.Run(ctrl.LoggerInto(ctx, log), ctrl.GetConfigOrDie(), opts); err != nil {
		log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
