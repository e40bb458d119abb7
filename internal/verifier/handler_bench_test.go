package verifier

import (
	corev1 "k8s.io/api/core/v1"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/index"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// benchServer is a verifier over in-memory indexers holding one client and
// one grant, exactly as the informers would hold them.
func benchServer(b testing.TB) (*Server, string) {
	s, tok, _ := memServer(b)
	return s, tok
}

// memWorld is what memServer put in its indexers.
type memWorld struct {
	secrets, clients, grants toolscache.Indexer
	client                   *latchkeyv1alpha1.ApiClient
	clientID, clientSecret   string
	clientToken              backing.Token
}

// memServer is benchServer with what it holds: a client "c" (id id_x, a
// generated secret) and a bearer grant "g" of it. No control plane.
func memServer(b testing.TB) (*Server, string, *memWorld) {
	b.Helper()
	newIndexer := func(extra toolscache.Indexers) toolscache.Indexer {
		idx := toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc}
		for k, v := range extra {
			idx[k] = v
		}
		return toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, idx)
	}
	secrets := newIndexer(toolscache.Indexers{index.Name(IndexClientSecretByClientID): func(o any) ([]string, error) {
		vals := clientSecretIndex(o)
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			out = append(out, index.Key(o.(client.Object).GetNamespace(), v))
		}
		return out, nil
	}})
	clients, grants := newIndexer(nil), newIndexer(nil)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "cu"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"}}
	g := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "ns", UID: "gu"},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "c", Permissions: []string{"blogs.read"}}}
	tok, _ := token.New()
	bt := backing.Token{ID: tok.ID, Hash: token.HashGenerated(tok.ID, tok.Secret), OwnerKind: backing.KindCredentialGrant,
		OwnerNamespace: "ns", OwnerName: "g", OwnerUID: "gu", ClientUID: "cu", ClientID: "id_x", Type: "bearer"}
	csID, _ := token.NewTokenID()
	cs, _ := token.NewClientSecret()
	ct := backing.Token{ID: csID, Hash: token.HashGenerated(csID, cs), OwnerKind: backing.KindApiClient,
		OwnerNamespace: "ns", OwnerName: "c", OwnerUID: "cu", ClientUID: "cu", ClientID: "id_x", Type: backing.TypeClientSecret}
	// Stored as the caches store them: compact (backing.Cached).
	stored := func(s *corev1.Secret) any { return backing.Cached(s) }
	for _, add := range []error{clients.Add(c), grants.Add(g), secrets.Add(stored(bt.Secret("latchkey-system"))), secrets.Add(stored(ct.Secret("latchkey-system"))),
		secrets.Add(stored(backing.Claim{ClientID: "id_x", ClientUID: "cu", OwnerNamespace: "ns", OwnerName: "c"}.Secret("latchkey-system")))} {
		if add != nil {
			b.Fatal(add)
		}
	}
	opts := Options{Namespace: "latchkey-system"}
	opts.Defaults()
	auth := &authenticator{
		lookup:    lookup{namespace: "latchkey-system", secrets: secrets, clients: clients, grants: grants, revocations: newIndexer(nil)},
		now:       time.Now,
		limiter:   newFailureLimiter(1, 10),
		slow:      &verifiedCache{},
		keySecret: opts.SigningKeySecret, issuer: opts.Issuer, audience: opts.Audience, accessTTL: opts.AccessTokenTTL,
	}
	s := newServer(auth, &usageRecorder{pending: map[usageKey]usage{}, now: time.Now}, opts, logr.Discard())
	s.synced.Store(true)
	return s, tok.String(), &memWorld{secrets: secrets, clients: clients, grants: grants, client: c,
		clientID: "id_x", clientSecret: cs, clientToken: ct}
}

// BenchmarkVerifyHandler is the verifier's own cost per request, without
// the network: make bench prints it next to the load figures.
func BenchmarkVerifyHandler(b *testing.B) {
	s, tok := benchServer(b)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"valid", "Bearer " + tok, http.StatusOK},
		{"unknown", "Bearer " + func() string { t, _ := token.New(); return t.String() }(), http.StatusUnauthorized},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/verify/blogs/1", nil)
			req.Header.Set("Authorization", tc.auth)
			req.Header.Set(HeaderRequirePermission, "blogs.read")
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				if w.Code != tc.want {
					b.Fatalf("status %d, want %d", w.Code, tc.want)
				}
			}
		})
	}
	// The handler alone, into a reused header map (what net/http's own
	// response costs is left out), against the null handler of make bench
	// that sets the same six headers: the verifier's own cost per request.
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"handler-only/valid", s},
		{"handler-only/null-six-headers", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h[HeaderClientID] = []string{"id_P3OsKW8jmcsM174m"}
			h[HeaderTenant] = []string{"2"}
			h[HeaderPermissions] = []string{"blogs.read"}
			h[HeaderTokenID] = []string{"327jlwr6arrfl3pj"}
			h[HeaderAllowImpersonate] = []string{"false"}
			h[HeaderAllowLogin] = []string{"false"}
			w.WriteHeader(http.StatusOK)
		})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/verify/blogs/1", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			w := &headerWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				tc.h.ServeHTTP(w, req)
			}
			if w.code != http.StatusOK {
				b.Fatalf("status %d, want 200", w.code)
			}
		})
	}
}
