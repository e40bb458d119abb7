package verifier

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/index"
	"github.com/latchkey-dev/latchkey/internal/servingcert"
)

// Defaults of the verification service, shared by Options.Defaults and the
// command-line flags (cmd/main.go, cmd/latchkey-dev) so each is written once.
const (
	DefaultIntrospectionPermission = "system.introspect"
	DefaultAccessTokenTTL          = time.Hour
	DefaultAudience                = "latchkey"
	DefaultFailuresPerSecond       = 1
	DefaultFailureBurst            = 10
	// DefaultServiceName is the chart's verifier Service (in the operator
	// namespace): the default issuer and certificate name.
	DefaultServiceName = "latchkey-verifier"
	// DefaultUsageInterval is the flags' usage-write interval (0 in Options
	// disables usage recording).
	DefaultUsageInterval = time.Minute
	// DefaultMaxStaleness is the flags' staleness bound (0 in Options
	// disables it).
	DefaultMaxStaleness = 5 * time.Minute
)

// Options configure the verification service.
type Options struct {
	// Namespace is the operator's namespace, where backing tokens live.
	Namespace string
	// Addr is the listen address (":8082"); Listener, when set, wins.
	Addr     string
	Listener net.Listener
	// GRPCAddr is the listen address of Envoy's external authorization over
	// gRPC (envoy.service.auth.v3.Authorization/Check) and of gRPC health
	// checking (":8083"); empty or "0" disables it. GRPCListener, when set,
	// wins. It serves TLS with TLSSecret when that is set, like Addr.
	GRPCAddr     string
	GRPCListener net.Listener
	// IntrospectionPermission is what a caller of /oauth2/introspect must hold.
	IntrospectionPermission string
	// AccessTokenTTL is the lifetime of client_credentials access tokens; a
	// token whose exp - iat is longer is rejected.
	AccessTokenTTL time.Duration
	// Issuer is the iss of access tokens and the RFC 8414 issuer: the URL
	// gateways reach the verifier at; its endpoints are advertised under it.
	// Default https://latchkey-verifier.<Namespace>.svc:8082.
	Issuer string
	// Audience is the aud of access tokens; default "latchkey".
	Audience string
	// SigningKeySecret is the Secret, in Namespace, holding the access-token
	// signing keys; default backing.SigningKeysSecretName.
	SigningKeySecret string
	// UsageInterval is how often last use is written to status; 0 disables
	// usage recording (a verifier with read-only RBAC).
	UsageInterval time.Duration
	// FailuresPerSecond and FailureBurst limit failed guesses of a
	// user-chosen (argon2id) client secret per client id and source address;
	// generated secrets have no limit.
	FailuresPerSecond float64
	FailureBurst      int
	// SlowHashMemoryBudget bounds, in bytes, the memory of the argon2id
	// computations (user-chosen secrets, ~19 MiB each) in flight: beyond it
	// a request is answered 503 with Retry-After instead of hashing.
	// Default DefaultSlowHashMemoryBudget.
	SlowHashMemoryBudget int64
	// TLSSecret, when set, names a kubernetes.io/tls Secret in Namespace:
	// the verifier serves HTTPS with it, read through its informer on each
	// handshake (renewals need no restart). Empty: plain HTTP.
	TLSSecret string
	// MaxStaleness bounds how old the verifier's view of the cluster may be:
	// when no heartbeat (internal/heartbeat, written by every manager
	// replica) has arrived through its watch for longer, it answers 503 and
	// is not ready, until the watch delivers one again. 0 disables the bound.
	MaxStaleness time.Duration
	// Informers, when the manager's cache was built with its NewInformer,
	// gives the verifier the indexers of a namespace-restricted cache, whose
	// informers have none of their own (see Informers). Nil: such a cache is
	// read through its reader (a deep copy per lookup).
	Informers *Informers
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Defaults fills unset options.
func (o *Options) Defaults() {
	if o.IntrospectionPermission == "" {
		o.IntrospectionPermission = DefaultIntrospectionPermission
	}
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer(o.Namespace)
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.SigningKeySecret == "" {
		o.SigningKeySecret = backing.SigningKeysSecretName
	}
	if o.FailuresPerSecond == 0 {
		o.FailuresPerSecond = DefaultFailuresPerSecond
	}
	if o.FailureBurst == 0 {
		o.FailureBurst = DefaultFailureBurst
	}
	if o.SlowHashMemoryBudget <= 0 {
		o.SlowHashMemoryBudget = DefaultSlowHashMemoryBudget
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// DefaultIssuer is the access-token issuer when none is configured: the
// chart's verifier Service.
func DefaultIssuer(namespace string) string {
	return "https://" + DefaultServiceName + "." + namespace + ".svc:8082"
}

// Setup adds the verification service to the manager: its index, its HTTP
// server (on every replica) and the usage flusher.
func Setup(mgr ctrl.Manager, opts Options) (*Server, error) {
	opts.Defaults()
	if err := index.Namespaced(context.Background(), mgr.GetCache(), &corev1.Secret{}, IndexClientSecretByClientID, clientSecretIndex); err != nil {
		return nil, fmt.Errorf("indexing backing tokens by client id: %w", err)
	}
	log := mgr.GetLogger().WithName("verifier")
	auth := &authenticator{
		lookup:    lookup{cache: mgr.GetCache(), namespace: opts.Namespace},
		now:       opts.Now,
		limiter:   newFailureLimiter(opts.FailuresPerSecond, opts.FailureBurst),
		slow:      &verifiedCache{},
		gate:      newSlowHashGate(opts.SlowHashMemoryBudget),
		keySecret: opts.SigningKeySecret, issuer: opts.Issuer, audience: opts.Audience, accessTTL: opts.AccessTokenTTL,
	}
	var rec *usageRecorder
	if opts.UsageInterval > 0 {
		rec = &usageRecorder{pending: map[usageKey]usage{}, now: opts.Now, client: mgr.GetClient(), interval: opts.UsageInterval, log: log}
		if err := mgr.Add(rec); err != nil {
			return nil, err
		}
	}
	s := newServer(auth, rec, opts, log)
	s.writer = mgr.GetClient()
	if opts.MaxStaleness > 0 {
		s.fresh = newFreshness(opts.MaxStaleness)
	}
	// Informers for what the verifier reads, also when no controller (which
	// would start them) runs: --verifier-only.
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		indexers := make([]toolscache.Indexer, 4)
		for i, obj := range []client.Object{&corev1.Secret{}, &latchkeyv1alpha1.ApiClient{}, &latchkeyv1alpha1.CredentialGrant{}, &corev1.ConfigMap{}} {
			inf, err := mgr.GetCache().GetInformer(ctx, obj)
			if err != nil {
				return fmt.Errorf("starting informer for %T: %w", obj, err)
			}
			if ii, ok := inf.(interface{ GetIndexer() toolscache.Indexer }); ok {
				indexers[i] = ii.GetIndexer()
			} else {
				indexers[i] = opts.Informers.indexer(obj)
			}
			if _, isSecret := obj.(*corev1.Secret); isSecret && s.fresh != nil {
				beat := func(o any) {
					if heartbeat.Is(o, opts.Namespace) {
						s.fresh.beat()
					}
				}
				if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
					AddFunc: beat, UpdateFunc: func(_, n any) { beat(n) },
				}); err != nil {
					return fmt.Errorf("watching the heartbeat: %w", err)
				}
			}
		}
		if indexers[0] != nil && indexers[1] != nil && indexers[2] != nil && indexers[3] != nil {
			// Published before synced is stored: handlers read them only after.
			auth.secrets, auth.clients, auth.grants, auth.revocations = indexers[0], indexers[1], indexers[2], indexers[3]
		}
		if mgr.GetCache().WaitForCacheSync(ctx) {
			if s.fresh != nil {
				s.fresh.beat() // a full list just arrived: the view is fresh
			}
			s.synced.Store(true)
			if s.onReady != nil {
				s.onReady()
			}
			log.Info("Caches synced: serving")
		}
		<-ctx.Done()
		return nil
	})); err != nil {
		return nil, err
	}
	// A replica is ready only once its verifier answers.
	if err := mgr.AddReadyzCheck("verifier", func(*http.Request) error { return s.ready() }); err != nil {
		return nil, err
	}
	ln := opts.Listener
	var tlsConfig *tls.Config
	if opts.TLSSecret != "" {
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", opts.Addr); err != nil {
				return nil, fmt.Errorf("listening on %s: %w", opts.Addr, err)
			}
		}
		src := &servingcert.Source{Get: func() (*corev1.Secret, error) {
			return get(context.Background(), auth.lookup, auth.secrets, opts.Namespace, opts.TLSSecret, newSecret)
		}}
		tlsConfig = src.TLSConfig()
		ln = tls.NewListener(ln, tlsConfig)
	}
	shutdown := 5 * time.Second
	srv := &manager.Server{
		Name:            "verifier",
		Listener:        ln,
		Server:          NewHTTPServer(withSource(s)),
		ShutdownTimeout: &shutdown,
	}
	srv.Server.Addr = opts.Addr
	if opts.GRPCListener != nil || opts.GRPCAddr != "" && opts.GRPCAddr != "0" {
		gln := opts.GRPCListener
		if gln == nil {
			var err error
			if gln, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
				return nil, fmt.Errorf("listening on %s for gRPC: %w", opts.GRPCAddr, err)
			}
		}
		// The gRPC server starts and stops with the HTTP server (see start).
		g := newGRPCServer(s, gln, tlsConfig)
		s.onReady = g.setHealth
		srv.Server.BaseContext = func(net.Listener) context.Context {
			g.start()
			return context.Background()
		}
		srv.Server.RegisterOnShutdown(g.stop)
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	return s, nil
}

// clientSecretIndex indexes every Secret the informer stores, in whatever
// form the cache's transform stored it, by the same rule: the backing
// tokens of client secrets (and any Secret labelled like one) by client id.
func clientSecretIndex(obj any) []string {
	var label, annotation func(string) string
	switch o := obj.(type) {
	case *backing.CachedToken:
		if o.Token.OwnerKind != backing.KindApiClient || o.Token.ClientID == "" {
			return nil
		}
		return []string{o.Token.ClientID}
	case *corev1.Secret:
		label = func(k string) string { return o.Labels[k] }
		annotation = func(k string) string { return o.Annotations[k] }
	case *backing.CachedSecret: // a consumer Secret in a tenant namespace (never looked up)
		label, annotation = o.Label, o.Annotation
	default:
		return nil
	}
	id := annotation(backing.AnnotationClientID)
	if label(backing.LabelComponent) != backing.ComponentValue || label(backing.LabelOwnerKind) != backing.KindApiClient || id == "" {
		return nil
	}
	return []string{id}
}

// everyReplica is a runnable that runs on every replica, leader or not
// (manager.RunnableFunc would run only on the leader).
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every replica serves the verifier.
func (everyReplica) NeedLeaderElection() bool { return false }
