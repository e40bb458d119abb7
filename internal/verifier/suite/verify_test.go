package suite_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/token"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

func grant(name, client string, typ latchkeyv1alpha1.CredentialType, perms ...string) *latchkeyv1alpha1.CredentialGrant {
	return &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: client, Type: typ, Permissions: perms}}
}

// verifyCase is one row of TestVerify's table, which the gRPC test asks
// again over ext_authz: perms, when set, is the X-Latchkey-Permissions a 200
// carries.
type verifyCase struct {
	name  string
	h     http.Header
	query string
	want  int
	perms string
}

// verifySecrets are the consumer Secrets of TestVerify's client and grants.
type verifySecrets struct{ client, bearer, key, basic map[string]string }

// verifyTable creates TestVerify's client (blog) and its bearer, key-auth
// and basic-auth grants, and returns their Secrets and the table: every
// credential type, every outcome.
func verifyTable(f *fixture) (verifySecrets, []verifyCase) {
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "blog"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2", AllowLogin: true}}
	f.create(c)
	grants := []*latchkeyv1alpha1.CredentialGrant{
		grant("bearer", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.read"),
		grant("key", "blog", latchkeyv1alpha1.CredentialTypeKeyAuth),
		grant("basic", "blog", latchkeyv1alpha1.CredentialTypeBasicAuth, "blogs.write"),
	}
	f.waitReady(c)
	for _, g := range grants {
		f.create(g)
		f.waitReady(g)
	}
	cs, b, k, ba := f.secret("blog"), f.secret("bearer"), f.secret("key"), f.secret("basic")
	bt, _ := token.Parse(b["token"])
	wrongSecret := token.Token{ID: bt.ID, Secret: strings.Repeat("A", token.SecretLen)}.String()
	unknown, _ := token.New()

	return verifySecrets{client: cs, bearer: b, key: k, basic: ba}, []verifyCase{
		{name: "bearer", h: bearer(b["token"]), want: 200, perms: "blogs.read"},
		{name: "bearer as X-API-Key", h: apiKey(b["token"]), want: 200, perms: "blogs.read"},
		{name: "key-auth as Basic keyId:keySecret", h: basic(k["key_id"], k["key_secret"]), want: 200, perms: "blogs.read,blogs.write"},
		{name: "key-auth as X-API-Key keyId:keySecret", h: apiKey(k["key_id"] + ":" + k["key_secret"]), want: 200},
		{name: "key-auth token as Bearer", h: bearer(k["token"]), want: 200},
		{name: "basic-auth username:password", h: basic(ba["username"], ba["password"]), want: 200, perms: "blogs.write"},
		{name: "client id and secret", h: basic(cs["client_id"], cs["client_secret"]), want: 200, perms: "blogs.read,blogs.write"},
		{name: "wrong secret, right token id and checksum", h: bearer(wrongSecret), want: 401},
		{name: "wrong client secret", h: basic(cs["client_id"], cs["client_secret"]+"x"), want: 401},
		{name: "wrong key secret", h: basic(k["key_id"], strings.Repeat("B", 43)), want: 401},
		{name: "unknown token", h: bearer(unknown.String()), want: 401},
		{name: "unknown client id", h: basic("id_nobody", "key_whatever"), want: 401},
		{name: "malformed token", h: bearer("lk_not-a-token"), want: 401},
		{name: "unsupported scheme", h: http.Header{"Authorization": {"Digest abc"}}, want: 401},
		{name: "no credential", h: http.Header{}, want: 401},
		{name: "held permission by header", h: with(bearer(b["token"]), verifier.HeaderRequirePermission, "blogs.read"), want: 200},
		{name: "held permission by query", h: bearer(b["token"]), query: "?permission=blogs.read", want: 200},
		{name: "missing permission by header", h: with(bearer(b["token"]), verifier.HeaderRequirePermission, "blogs.write"), want: 403},
		{name: "missing permission by query", h: bearer(b["token"]), query: "?permission=blogs.write", want: 403},
		{name: "a query cannot lift a header requirement", h: with(bearer(b["token"]), verifier.HeaderRequirePermission, "blogs.write"), query: "?permission=blogs.read", want: 403},
		{name: "right tenant", h: with(bearer(b["token"]), verifier.HeaderRequireTenant, "2"), want: 200},
		{name: "tenant mismatch", h: with(bearer(b["token"]), verifier.HeaderRequireTenant, "3"), want: 403},
		{name: "tenant mismatch by query", h: bearer(b["token"]), query: "?tenant=3", want: 403},
	}
}

// Acceptance 1: every credential type, every outcome, against the real
// operator and API server.
func TestVerify(t *testing.T) {
	f := newFixture(t)
	secrets, cases := verifyTable(f)
	cs, b, k, ba := secrets.client, secrets.bearer, secrets.key, secrets.basic
	// The same table against a --verifier-only replica, whose caches hold
	// backing tokens, claims, clients and grants in their compact forms
	// (operator/cache.go): every path answers as from whole objects.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	env.StartManager(t, operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierOnly: true, VerifierListener: ln})
	only := &fixture{t: t, g: f.g, ctx: f.ctx, ns: f.ns, opNs: f.opNs, url: "http://" + ln.Addr().String(), http: f.http}
	f.g.Eventually(func() int { return only.get("/readyz", nil).StatusCode }).Should(Equal(http.StatusOK))
	for _, target := range []struct {
		name string
		f    *fixture
	}{{"manager", f}, {"verifier-only", only}} {
		for _, tc := range cases {
			t.Run(target.name+"/"+tc.name, func(t *testing.T) {
				g := NewWithT(t)
				resp := target.f.get("/v1/verify/orig/path"+tc.query, tc.h)
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				g.Expect(resp.StatusCode).To(Equal(tc.want), string(body))
				switch tc.want {
				case 200:
					g.Expect(resp.Header.Get(verifier.HeaderClientID)).To(Equal(cs["client_id"]))
					g.Expect(resp.Header.Get(verifier.HeaderTenant)).To(Equal("2"))
					g.Expect(resp.Header.Get(verifier.HeaderAllowLogin)).To(Equal("true"))
					g.Expect(resp.Header.Get(verifier.HeaderAllowImpersonate)).To(Equal("false"))
					g.Expect(resp.Header.Get(verifier.HeaderTokenID)).NotTo(BeEmpty())
					if tc.perms != "" {
						g.Expect(resp.Header.Get(verifier.HeaderPermissions)).To(Equal(tc.perms))
					}
				case 401:
					g.Expect(resp.Header.Values("WWW-Authenticate")).To(ContainElement(ContainSubstring("Bearer")))
				}
				for _, s := range []string{b["token"], cs["client_secret"], k["key_secret"], ba["password"]} {
					g.Expect(string(body)).NotTo(ContainSubstring(s), "a secret in the response body")
				}
			})
		}
	}

	// current: the caller's own record, never a secret.
	bt, _ := token.Parse(b["token"])
	resp := f.get("/v1/current", bearer(b["token"]))
	var me map[string]any
	f.g.Expect(json.NewDecoder(resp.Body).Decode(&me)).To(Succeed())
	_ = resp.Body.Close()
	f.g.Expect(me).To(HaveKeyWithValue("token_id", bt.ID))
	f.g.Expect(me).To(HaveKeyWithValue("name", "bearer"))
	f.g.Expect(me).To(HaveKeyWithValue("client_id", cs["client_id"]))
	raw, _ := json.Marshal(me)
	f.g.Expect(string(raw)).NotTo(ContainSubstring(bt.Secret))
	f.g.Expect(f.get("/v1/me", bearer(b["token"])).StatusCode).To(Equal(200))
	f.g.Expect(f.get("/v1/me", nil).StatusCode).To(Equal(401))

	// Usage flows back to status, rate-limited per object.
	f.g.Eventually(func(g Gomega) {
		got := &latchkeyv1alpha1.CredentialGrant{}
		g.Expect(env.Client.Get(f.ctx, clientKey(f.ns, "bearer"), got)).To(Succeed())
		g.Expect(got.Status.LastUsedAt).NotTo(BeNil())
		g.Expect(got.Status.LastUsedFrom).To(Equal("127.0.0.1"))
	}).Should(Succeed())

	t.Run("client deactivated and reactivated", func(t *testing.T) {
		f := f.sub(t)
		setActive(f, "blog", false)
		f.g.Eventually(func() int { return f.verify(bearer(b["token"]), "") }).Should(Equal(401))
		f.g.Expect(f.verify(basic(cs["client_id"], cs["client_secret"]), "")).To(Equal(401))
		f.g.Expect(f.verify(basic(k["key_id"], k["key_secret"]), "")).To(Equal(401))
		setActive(f, "blog", true)
		f.g.Eventually(func() int { return f.verify(bearer(b["token"]), "") }).Should(Equal(200))
		f.g.Expect(f.verify(basic(cs["client_id"], cs["client_secret"]), "")).To(Equal(200))
	})

	t.Run("permission removed from the client", func(t *testing.T) {
		f := f.sub(t)
		patchClient(f, "blog", `{"spec":{"permissions":["blogs.read"]}}`)
		need := func(h http.Header, p string) http.Header { return with(h, verifier.HeaderRequirePermission, p) }
		f.g.Eventually(func() int { return f.verify(need(basic(k["key_id"], k["key_secret"]), "blogs.write"), "") }).Should(Equal(403))
		f.g.Expect(f.verify(need(basic(k["key_id"], k["key_secret"]), "blogs.read"), "")).To(Equal(200))
		// A grant holding only the removed permission now holds nothing.
		f.g.Expect(f.verify(need(basic(ba["username"], ba["password"]), "blogs.write"), "")).To(Equal(403))
	})

	t.Run("expired", func(t *testing.T) {
		f := f.sub(t)
		soon := grant("soon", "blog", latchkeyv1alpha1.CredentialTypeBearer)
		soon.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(2 * time.Second)}
		f.create(soon)
		f.waitReady(soon)
		h := bearer(f.secret("soon")["token"])
		f.g.Expect(f.verify(h, "")).To(Equal(200))
		f.g.Eventually(func() int { return f.verify(h, "") }).WithTimeout(5 * time.Second).Should(Equal(401))
	})

	t.Run("revoked by delete", func(t *testing.T) {
		f := f.sub(t)
		f.g.Expect(env.Client.Delete(f.ctx, &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bearer"}})).To(Succeed())
		f.g.Eventually(func() int { return f.verify(bearer(b["token"]), "") }).WithTimeout(time.Second).Should(Equal(401))
	})
}

func clientKey(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func setActive(f *fixture, name string, active bool) {
	f.t.Helper()
	patchClient(f, name, fmt.Sprintf(`{"spec":{"active":%v}}`, active))
}

// patchClient merge-patches a client's spec (the verifier writes its status
// concurrently, so an Update could conflict).
func patchClient(f *fixture, name, patch string) {
	f.t.Helper()
	cl := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
	f.g.Expect(env.Client.Patch(f.ctx, cl, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

// Before its caches have synced the verifier answers 503, whatever it is sent.
func TestNotSyncedIs503(t *testing.T) {
	g := NewWithT(t)
	opts := operator.Options{Namespace: "unused", VerifierOnly: true, MetricsAddr: "0", SkipControllerNameValidation: true}
	mgr, err := operator.NewManager(env.Config, opts)
	g.Expect(err).NotTo(HaveOccurred())
	s, err := verifier.Setup(mgr, verifier.Options{Namespace: "unused"})
	g.Expect(err).NotTo(HaveOccurred())
	for _, path := range []string{"/v1/verify", "/v1/current", "/readyz"} {
		rec := httptest.NewRecorder()
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer anything")
		s.ServeHTTP(rec, req)
		g.Expect(rec.Code).To(Equal(http.StatusServiceUnavailable), path)
	}
}
