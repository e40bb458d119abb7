package suite_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// readCountingCache counts reads through the cache's reader (Get, List):
// the verifier's fallback, and the way a field-selector scan would go.
type readCountingCache struct {
	cache.Cache
	reads atomic.Int64
}

func (c *readCountingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.reads.Add(1)
	return c.Cache.Get(ctx, key, obj, opts...)
}

func (c *readCountingCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.reads.Add(1)
	return c.Cache.List(ctx, list, opts...)
}

// Once its informers run, the verifier answers from their indexers: a
// verifier whose cache counts reads serves grant tokens, client secrets and
// unknown tokens with no read through the cache at all, with a cluster-wide
// cache (as a cluster-scoped manager has it) and with a namespace-restricted
// one (--watch-namespaces, and --verifier-only as the chart runs it, whose
// Secret cache is limited to the token namespace), where controller-runtime's
// informers expose no indexer and verifier.Informers supplies them.
// (internal/verifier's TestRequestsServedByIndexedLookup shows that the
// indexer calls are keyed lookups, not scans.)
func TestVerifierServesFromInformerIndexers(t *testing.T) {
	f := newFixture(t) // the operator: issues the credentials
	f.create(&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}})
	grant := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "c"}}
	f.create(grant)
	f.waitReady(grant)
	tok := f.secret("t")[latchkeyv1alpha1.TokenKey]
	cs := f.secret("c")

	for _, tc := range []struct {
		name string
		opts operator.Options
	}{
		// As operator.Defaults sets it up: revocation records are cached in
		// the token namespace only, so even a cluster-wide cache has one
		// namespace-restricted informer.
		{"cluster-wide", operator.Options{Namespace: f.opNs, Verifier: verifier.Options{Informers: &verifier.Informers{}}}},
		{"verifier-only, namespaced", operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierOnly: true,
			Verifier: verifier.Options{Informers: &verifier.Informers{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counted := &readCountingCache{}
			mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
				Scheme:                 operator.NewScheme(),
				Cache:                  operator.CacheOptions(tc.opts),
				Metrics:                metricsserver.Options{BindAddress: "0"},
				HealthProbeBindAddress: "0",
				Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
				NewCache: func(cfg *rest.Config, o cache.Options) (cache.Cache, error) {
					c, err := cache.New(cfg, o)
					counted.Cache = c
					return counted, err
				},
			})
			f.g.Expect(err).NotTo(HaveOccurred())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			f.g.Expect(err).NotTo(HaveOccurred())
			_, err = verifier.Setup(mgr, verifier.Options{Namespace: f.opNs, Listener: ln, Informers: tc.opts.Verifier.Informers})
			f.g.Expect(err).NotTo(HaveOccurred())
			testenv.RunManager(t, mgr)
			only := &fixture{t: t, g: f.g, ctx: f.ctx, ns: f.ns, opNs: f.opNs, url: "http://" + ln.Addr().String(), http: f.http}
			f.g.Eventually(func() int { return only.get("/readyz", nil).StatusCode }).Should(Equal(http.StatusOK))
			f.g.Eventually(func() int { return only.verify(bearer(tok), "") }).Should(Equal(http.StatusOK))
			f.g.Eventually(func() int {
				return only.verify(basic(cs[latchkeyv1alpha1.ClientIDKey], cs[latchkeyv1alpha1.ClientSecretKey]), "")
			}).Should(Equal(http.StatusOK))

			before := counted.reads.Load()
			for range 20 {
				f.g.Expect(only.verify(bearer(tok), "")).To(Equal(http.StatusOK))
				f.g.Expect(only.verify(basic(cs[latchkeyv1alpha1.ClientIDKey], cs[latchkeyv1alpha1.ClientSecretKey]), "")).To(Equal(http.StatusOK))
				f.g.Expect(only.verify(bearer("lk_unknown"), "")).To(Equal(http.StatusUnauthorized))
			}
			f.g.Expect(counted.reads.Load()-before).To(BeZero(), "requests read through the cache reader instead of the informers' indexers")
		})
	}
}
