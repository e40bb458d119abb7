package verifier

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// countingIndexer counts the calls made to an informer's indexer, by method.
type countingIndexer struct {
	toolscache.Indexer
	mu    sync.Mutex
	calls map[string]int
}

func counting(i toolscache.Indexer) *countingIndexer {
	return &countingIndexer{Indexer: i, calls: map[string]int{}}
}

func (c *countingIndexer) count(m string) {
	c.mu.Lock()
	c.calls[m]++
	c.mu.Unlock()
}

func (c *countingIndexer) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

// Keyed lookups.
func (c *countingIndexer) GetByKey(k string) (any, bool, error) {
	c.count("GetByKey")
	return c.Indexer.GetByKey(k)
}
func (c *countingIndexer) Get(o any) (any, bool, error) { c.count("Get"); return c.Indexer.Get(o) }
func (c *countingIndexer) ByIndex(n, v string) ([]any, error) {
	c.count("ByIndex:" + n)
	return c.Indexer.ByIndex(n, v)
}

// Scans.
func (c *countingIndexer) List() []any        { c.count("List"); return c.Indexer.List() }
func (c *countingIndexer) ListKeys() []string { c.count("ListKeys"); return c.Indexer.ListKeys() }
func (c *countingIndexer) Index(n string, o any) ([]any, error) {
	c.count("Index")
	return c.Indexer.Index(n, o)
}
func (c *countingIndexer) IndexKeys(n, v string) ([]string, error) {
	c.count("IndexKeys")
	return c.Indexer.IndexKeys(n, v)
}
func (c *countingIndexer) ListIndexFuncValues(n string) []string {
	c.count("ListIndexFuncValues")
	return c.Indexer.ListIndexFuncValues(n)
}

// noReader is the cache reader the lookup falls back to before its informers
// run: once they run, a request must never reach it.
type noReader struct{ t *testing.T }

func (r noReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	r.t.Error("a request read through the cache reader, not the informer's indexer")
	return fmt.Errorf("not here")
}

func (r noReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	r.t.Error("a request listed through the cache reader, not the informer's indexer")
	return fmt.Errorf("not here")
}

// TestRequestsServedByIndexedLookup proves that what serves a request is a
// keyed lookup in the informers' indexers (GetByKey, or ByIndex on the
// client-id index), never a scan (List, ListKeys, a field selector over the
// cache) nor the cache-reader fallback; and that the work per request does
// not grow with the number of credentials: the same calls with 1 and with
// 2,000 other clients, grants and backing tokens in the indexers.
func TestRequestsServedByIndexedLookup(t *testing.T) {
	s, tok, w := oauthServer(t)
	secrets, clients, grants := counting(w.secrets), counting(w.clients), counting(w.grants)
	s.auth.secrets, s.auth.clients, s.auth.grants = secrets, clients, grants
	s.auth.cache = noReader{t}

	var accessToken string
	requests := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"grant token", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set(HeaderRequirePermission, "blogs.read")
			return r
		}, http.StatusOK},
		{"client id and secret", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.SetBasicAuth(w.clientID, w.clientSecret)
			return r
		}, http.StatusOK},
		{"client_credentials", func() *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, "grant_type=client_credentials"), w.clientID, w.clientSecret)
		}, http.StatusOK},
		{"access token", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.Header.Set("Authorization", "Bearer "+accessToken)
			return r
		}, http.StatusOK},
	}
	serve := func(t *testing.T) map[string]map[string]int {
		before := map[string]map[string]int{"secrets": secrets.snapshot(), "clients": clients.snapshot(), "grants": grants.snapshot()}
		for _, rq := range requests {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, rq.req())
			if rec.Code != rq.want {
				t.Fatalf("%s: status %d, want %d: %s", rq.name, rec.Code, rq.want, rec.Body)
			}
			if rq.name == "client_credentials" {
				var body struct {
					AccessToken string `json:"access_token"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.AccessToken == "" {
					t.Fatalf("no access token: %s", rec.Body)
				}
				accessToken = body.AccessToken
			}
		}
		delta := map[string]map[string]int{}
		for name, idx := range map[string]*countingIndexer{"secrets": secrets, "clients": clients, "grants": grants} {
			delta[name] = map[string]int{}
			for m, n := range idx.snapshot() {
				if d := n - before[name][m]; d > 0 {
					delta[name][m] = d
				}
			}
		}
		return delta
	}

	// Warm up once (the access token exists only after the first round).
	serve(t)
	small := serve(t)
	for name, calls := range small {
		for m := range calls {
			switch m {
			case "GetByKey", "ByIndex:field:" + IndexClientSecretByClientID:
			default:
				t.Errorf("%s: a request called %s (%d times): a scan, not a keyed lookup", name, m, calls[m])
			}
		}
	}
	if small["secrets"]["GetByKey"] == 0 || small["clients"]["GetByKey"] == 0 || small["grants"]["GetByKey"] == 0 {
		t.Errorf("no keyed lookup in every indexer: %v", small)
	}
	if small["secrets"]["ByIndex:field:"+IndexClientSecretByClientID] == 0 {
		t.Errorf("a client id was not looked up through the client-id index: %v", small)
	}

	// 2,000 other credentials: a scan would show in the counts as more
	// calls, or as calls to List; a keyed lookup does the same work.
	for i := range 2000 {
		ns, name := "other", fmt.Sprintf("c%d", i)
		c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("u" + name)},
			Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}}}
		g := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("g" + name)},
			Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: name}}
		id, _ := token.NewTokenID()
		bt := backing.Token{ID: id, Hash: "x", OwnerKind: backing.KindApiClient, OwnerNamespace: ns, OwnerName: name,
			OwnerUID: c.UID, ClientUID: c.UID, ClientID: "id_" + name, Type: backing.TypeClientSecret}
		for _, err := range []error{w.clients.Add(c), w.grants.Add(g), w.secrets.Add(bt.Secret("latchkey-system"))} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	large := serve(t)
	for name := range small {
		if !maps.Equal(small[name], large[name]) {
			t.Errorf("%s: calls per round grew with 2,000 other credentials: %v, then %v", name, small[name], large[name])
		}
	}
}
