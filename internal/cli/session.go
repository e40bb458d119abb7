package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

const (
	// fieldManager names this command in managedFields.
	fieldManager = "kubectl-latchkey"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(latchkeyv1alpha1.AddToScheme(s))
	return s
}()

// session is one command's connection to the cluster.
type session struct {
	*options
	c         client.Client
	namespace string
	host      string
}

// connect builds a client from the kubeconfig flags. It makes no request: a
// cluster that cannot be reached shows up, explained, at the first call.
func (o *options) connect() (*session, error) {
	const pointAtOne = "point the command at a cluster with --kubeconfig FILE, the KUBECONFIG environment variable or ~/.kube/config (and --context to pick a context)"
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("no cluster configured: %s", pointAtOne)
		}
		return nil, fmt.Errorf("loading kubeconfig: %w; %s", err, pointAtOne)
	}
	if raw, err := o.config.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Clusters) == 0 &&
		ptr.Deref(o.config.APIServer, "") == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		// client-go falls back to http://localhost:8080 when nothing is
		// configured; say what is missing instead of failing to connect.
		return nil, fmt.Errorf("no cluster configured (no kubeconfig found): %s", pointAtOne)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.UserAgent = "kubectl-latchkey"
	// Waiting polls the API server a few times a second; client-go's default
	// 5 QPS would throttle a wait followed by reads.
	cfg.QPS, cfg.Burst = 20, 40
	ns, _, err := o.config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, explain(err, cfg.Host)
	}
	return &session{options: o, c: client.WithFieldOwner(c, fieldManager), namespace: ns, host: cfg.Host}, nil
}

// explain turns transport and discovery failures into what the user can do;
// API errors (including webhook and CEL rejections, which already say what to
// do) pass through unchanged.
func explain(err error, host string) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if apierrors.IsUnauthorized(err) {
			return fmt.Errorf("the cluster at %s did not accept your credentials: %w; check the user of your kubeconfig context", host, err)
		}
		return err
	}
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("the cluster at %s has no %s resources: install Latchkey first (the Helm chart, or kubectl apply -f config/crd/bases)", host, latchkeyv1alpha1.GroupVersion)
	}
	var (
		urlErr *url.Error
		netErr net.Error
		dnsErr *net.DNSError
	)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dnsErr) || errors.As(err, &netErr) || errors.As(err, &urlErr) {
		return fmt.Errorf("cannot reach the Kubernetes API server at %s (%v): point the command at a running cluster with --kubeconfig FILE, the KUBECONFIG environment variable, or --context", host, rootCause(err))
	}
	return err
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// findClient returns the ApiClient whose client id is id (status.clientID or
// spec.clientID); failing that, the one whose resource name is id.
func (s *session) findClient(ctx context.Context, id string) (*latchkeyv1alpha1.ApiClient, error) {
	list := &latchkeyv1alpha1.ApiClientList{}
	if err := s.c.List(ctx, list, client.InNamespace(s.namespace)); err != nil {
		return nil, explain(err, s.host)
	}
	var byName *latchkeyv1alpha1.ApiClient
	for i := range list.Items {
		c := &list.Items[i]
		if c.Status.ClientID == id || c.Spec.ClientID == id {
			return c, nil
		}
		if c.Name == id {
			byName = c
		}
	}
	if byName != nil {
		return byName, nil
	}
	return nil, fmt.Errorf("no API client with id %q in namespace %q: list the clients with '%s get -n %s'", id, s.namespace, s.program, s.namespace)
}

// listClients returns every ApiClient of the namespace, oldest first.
func (s *session) listClients(ctx context.Context) ([]latchkeyv1alpha1.ApiClient, error) {
	list := &latchkeyv1alpha1.ApiClientList{}
	if err := s.c.List(ctx, list, client.InNamespace(s.namespace)); err != nil {
		return nil, explain(err, s.host)
	}
	slices.SortStableFunc(list.Items, func(a, b latchkeyv1alpha1.ApiClient) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return list.Items, nil
}

// readyCondition returns the object's Ready condition if it describes the
// current generation.
func readyCondition(conds []metav1.Condition, generation int64) *metav1.Condition {
	c := meta.FindStatusCondition(conds, latchkeyv1alpha1.ConditionReady)
	if c == nil || c.ObservedGeneration != generation {
		return nil
	}
	return c
}

func isReady(conds []metav1.Condition, generation int64) bool {
	c := readyCondition(conds, generation)
	return c != nil && c.Status == metav1.ConditionTrue
}

// notReadyError is the timeout message: what was waited for, and the Ready
// condition's reason and message, which say what is missing.
func (s *session) notReadyError(kind string, key types.NamespacedName, what string, conds []metav1.Condition) error {
	why := "the operator has not reported on it yet: is the Latchkey operator running and watching namespace " + key.Namespace + "?"
	if c := meta.FindStatusCondition(conds, latchkeyv1alpha1.ConditionReady); c != nil {
		why = fmt.Sprintf("Ready=%s, reason %s: %s", c.Status, c.Reason, c.Message)
	}
	return fmt.Errorf("%s %s/%s is not %s after %s (%s); the object stays and the operator keeps trying: follow it with 'kubectl get %s %s -n %s' (a longer --timeout waits more)",
		kind, key.Namespace, key.Name, what, s.timeout, why, strings.ToLower(kind), key.Name, key.Namespace)
}

// waitClient polls the ApiClient until done holds or --timeout passes.
func (s *session) waitClient(ctx context.Context, key types.NamespacedName, what string, done func(*latchkeyv1alpha1.ApiClient) bool) (*latchkeyv1alpha1.ApiClient, error) {
	var last *latchkeyv1alpha1.ApiClient
	err := s.poll(ctx, func(ctx context.Context) (bool, error) {
		c := &latchkeyv1alpha1.ApiClient{}
		if err := s.c.Get(ctx, key, c); err != nil {
			return false, explain(err, s.host)
		}
		last = c
		return done(c), nil
	})
	if errors.Is(err, errTimedOut) {
		var conds []metav1.Condition
		if last != nil {
			conds = last.Status.Conditions
		}
		return nil, s.notReadyError(latchkeyv1alpha1.ApiClientKind, key, what, conds)
	}
	return last, err
}

// waitGrant polls the CredentialGrant until done holds or --timeout passes.
func (s *session) waitGrant(ctx context.Context, key types.NamespacedName, what string, done func(*latchkeyv1alpha1.CredentialGrant) bool) (*latchkeyv1alpha1.CredentialGrant, error) {
	var last *latchkeyv1alpha1.CredentialGrant
	err := s.poll(ctx, func(ctx context.Context) (bool, error) {
		g := &latchkeyv1alpha1.CredentialGrant{}
		if err := s.c.Get(ctx, key, g); err != nil {
			return false, explain(err, s.host)
		}
		last = g
		return done(g), nil
	})
	if errors.Is(err, errTimedOut) {
		var conds []metav1.Condition
		if last != nil {
			conds = last.Status.Conditions
		}
		return nil, s.notReadyError(latchkeyv1alpha1.CredentialGrantKind, key, what, conds)
	}
	return last, err
}

// errTimedOut is what poll returns when --timeout passed first.
var errTimedOut = errors.New("timed out")

// poll runs cond until it holds, fails, or --timeout passes (errTimedOut).
// Requests run under the command's context, not the deadline: a request cut
// short (or refused by client-go's rate limiter) because the deadline is near
// would otherwise fail with a confusing error instead of the timeout
// message; each request is bounded by the client's own timeout.
func (s *session) poll(ctx context.Context, cond func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(s.timeout)
	for {
		done, err := cond(ctx)
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return errTimedOut
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clientIssued: the client's secret for its current spec is issued.
func clientIssued(c *latchkeyv1alpha1.ApiClient) bool {
	return isReady(c.Status.Conditions, c.Generation) && c.Status.ClientID != "" && c.Status.TokenID != ""
}

// grantIssued: the grant's credential for its current spec is issued.
func grantIssued(g *latchkeyv1alpha1.CredentialGrant) bool {
	return isReady(g.Status.Conditions, g.Generation) && g.Status.TokenID != ""
}

// errSecretHidden says why a record is printed without its secret.
type errSecretHidden struct{ msg string }

func (e errSecretHidden) Error() string { return e.msg }

// consumerSecret reads the Secret the operator issued for an object whose
// current backing token is tokenID. A Secret the caller may not read, or one
// not issued yet, is an errSecretHidden: the record is printed without it.
func (s *session) consumerSecret(ctx context.Context, name, tokenID string) (*corev1.Secret, error) {
	if name == "" || tokenID == "" {
		return nil, errSecretHidden{"no secret is issued yet"}
	}
	sec := &corev1.Secret{}
	err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, sec)
	switch {
	case apierrors.IsForbidden(err):
		return nil, errSecretHidden{fmt.Sprintf("you may not read Secret %s/%s, so the secret is not shown", s.namespace, name)}
	case apierrors.IsNotFound(err):
		return nil, errSecretHidden{fmt.Sprintf("Secret %s/%s does not exist (yet)", s.namespace, name)}
	case err != nil:
		return nil, explain(err, s.host)
	}
	if sec.Annotations[latchkeyv1alpha1.AnnotationTokenID] != tokenID {
		// Between a rotation and the status that reports it: the Secret
		// already holds a newer secret than the status names.
		return nil, errSecretHidden{fmt.Sprintf("Secret %s/%s is being rotated; run the command again", s.namespace, name)}
	}
	return sec, nil
}

// waitSecret waits (bounded) until the consumer Secret matches tokenID.
func (s *session) waitSecret(ctx context.Context, name, tokenID string) (*corev1.Secret, error) {
	var (
		sec  *corev1.Secret
		last error
	)
	err := s.poll(ctx, func(ctx context.Context) (bool, error) {
		sec, last = s.consumerSecret(ctx, name, tokenID)
		var hidden errSecretHidden
		if errors.As(last, &hidden) && !strings.Contains(last.Error(), "may not read") {
			return false, nil
		}
		return true, last
	})
	if errors.Is(err, errTimedOut) {
		return nil, last
	}
	return sec, err
}

// warn prints one line on stderr.
func (s *session) warn(format string, args ...any) {
	_, _ = fmt.Fprintf(s.streams.ErrOut, "warning: "+format+"\n", args...)
}
