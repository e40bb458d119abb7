package suite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/oauth2/clientcredentials"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/controller"
	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// revoke POSTs body to /oauth2/revoke and returns the status and body.
func (f *fixture) revoke(body string, h http.Header) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url+"/oauth2/revoke", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := f.http.Do(req)
	f.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func revokeForm(tok string) string { return url.Values{"token": {tok}}.Encode() }

// revocationRecords lists the revocation records in the token namespace.
func revocationRecords(f *fixture) []corev1.ConfigMap {
	var list corev1.ConfigMapList
	f.g.Expect(env.Client.List(f.ctx, &list, client.InNamespace(f.opNs),
		client.MatchingLabels{backing.LabelComponent: backing.ComponentRevocation})).To(Succeed())
	return list.Items
}

// eventsOf returns the notes of the Events with reason on the named object.
func eventsOf(f *fixture, name, reason string) []string {
	var events eventsv1.EventList
	_ = env.Client.List(f.ctx, &events, client.InNamespace(f.ns))
	var out []string
	for _, e := range events.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e.Note)
		}
	}
	return out
}

// backingExists reports whether the backing token with this id exists.
func backingExists(f *fixture, id string) bool {
	err := env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.opNs, Name: backing.Name(id)}, &corev1.Secret{})
	return err == nil
}

// Issue 12, acceptance 4: a leaked grant token, key-auth pair and client
// secret, revoked through POST /oauth2/revoke by whoever holds them: the next
// verify is 401 within the time deletes take today (1 s, see
// TestRevocationPropagation), the consumer Secret holds a new working
// credential within seconds, and an Event on the owner names the token id
// and the source address. Unknown, wrong and garbage tokens: 200, nothing
// recorded or deleted. Malformed requests: 400.
func TestRevokeLeakedCredentials(t *testing.T) {
	f := newFixture(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	f.waitReady(c)
	g := grant("g", "c", latchkeyv1alpha1.CredentialTypeBearer)
	k := grant("k", "c", latchkeyv1alpha1.CredentialTypeKeyAuth)
	f.create(g)
	f.create(k)
	f.waitReady(g)
	f.waitReady(k)

	// A secret scanner behind a gateway: the source address is the
	// gateway's X-Forwarded-For, and the peer is named too.
	scanner := http.Header{"X-Forwarded-For": {"203.0.113.9"}}

	type cred struct {
		name    string
		owner   string
		key     string // data key that changes on reissue
		present func(s map[string]string) string
		auth    func(s map[string]string) http.Header
	}
	for _, tc := range []cred{
		{name: "grant token", owner: "g", key: "token",
			present: func(s map[string]string) string { return s["token"] },
			auth:    func(s map[string]string) http.Header { return bearer(s["token"]) }},
		{name: "key-auth keyId:keySecret", owner: "k", key: "key_secret",
			present: func(s map[string]string) string { return s["key_id"] + ":" + s["key_secret"] },
			auth:    func(s map[string]string) http.Header { return basic(s["key_id"], s["key_secret"]) }},
		{name: "client secret client_id:client_secret", owner: "c", key: "client_secret",
			present: func(s map[string]string) string { return s["client_id"] + ":" + s["client_secret"] },
			auth:    func(s map[string]string) http.Header { return basic(s["client_id"], s["client_secret"]) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			old := f.secret(tc.owner)
			oldID := old["token_id"]
			if oldID == "" { // an ApiClient's Secret has no token_id key
				cur := &latchkeyv1alpha1.ApiClient{}
				f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: tc.owner}, cur)).To(Succeed())
				oldID = cur.Status.TokenID
			}
			f.g.Expect(oldID).NotTo(BeEmpty())
			f.g.Expect(f.verify(tc.auth(old), "")).To(Equal(200))

			code, body := f.revoke(revokeForm(tc.present(old)), scanner)
			revoked := time.Now()
			f.g.Expect(code).To(Equal(200))
			f.g.Expect(body).To(BeEmpty())
			f.g.Eventually(func() int { return f.verify(tc.auth(old), "") }).WithTimeout(time.Second).WithPolling(5*time.Millisecond).
				Should(Equal(401), "still accepted 1 s after the revoke answered")
			t.Logf("%s: rejected %v after the revoke answered", tc.name, time.Since(revoked))

			var fresh map[string]string
			f.g.Eventually(func(g Gomega) {
				fresh = f.secret(tc.owner)
				g.Expect(fresh[tc.key]).NotTo(BeEmpty())
				g.Expect(fresh[tc.key]).NotTo(Equal(old[tc.key]), "a new credential in the same Secret")
				g.Expect(f.verify(tc.auth(fresh), "")).To(Equal(200), "and it works")
			}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
			t.Logf("%s: new working credential in Secret %s %v after the revoke answered", tc.name, tc.owner, time.Since(revoked))
			f.g.Expect(f.verify(tc.auth(old), "")).To(Equal(401), "the leaked one stays dead")
			f.g.Eventually(func() bool { return backingExists(f, oldID) }).Should(BeFalse(), "its backing token is deleted")

			f.g.Eventually(func() []string { return eventsOf(f, tc.owner, controller.EventTokenRevoked) }).Should(ContainElement(
				And(ContainSubstring(oldID), ContainSubstring("203.0.113.9 via 127.0.0.1"))))
			for _, n := range eventsOf(f, tc.owner, controller.EventTokenRevoked) {
				f.g.Expect(n).NotTo(ContainSubstring(old[tc.key]), "no secret in the Event")
			}

			// Revoking it again, or replaying the request: 200, nothing new.
			code, _ = f.revoke(revokeForm(tc.present(old)), nil)
			f.g.Expect(code).To(Equal(200))
			f.g.Expect(f.verify(tc.auth(f.secret(tc.owner)), "")).To(Equal(200))
		})
	}

	t.Run("unknown, wrong and garbage tokens: 200, nothing happens", func(t *testing.T) {
		f := f.sub(t)
		before := len(revocationRecords(f))
		tokensBefore := backingOwners(f)
		gs, cs := f.secret("g"), f.secret("c")
		gt, _ := token.Parse(gs["token"])
		unknown, _ := token.New()
		for _, tok := range []string{
			unknown.String(), // well-formed, no such token
			token.Token{ID: gt.ID, Secret: strings.Repeat("A", token.SecretLen)}.String(), // the id of a live token, a wrong secret
			cs["client_id"] + ":wrong",
			"id_nobody:secret",
			"garbage",
			"eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln", // a JWT-looking forgery
			strings.Repeat("x", 4000),
		} {
			code, body := f.revoke(revokeForm(tok), nil)
			f.g.Expect(code).To(Equal(200), "%.40q", tok)
			f.g.Expect(body).To(BeEmpty())
		}
		f.g.Consistently(func() int { return len(revocationRecords(f)) }).WithTimeout(time.Second).Should(Equal(before), "no record written")
		f.g.Expect(backingOwners(f)).To(ConsistOf(tokensBefore), "no backing token deleted")
		f.g.Expect(f.verify(bearer(gs["token"]), "")).To(Equal(200))
		f.g.Expect(f.verify(basic(cs["client_id"], cs["client_secret"]), "")).To(Equal(200))
	})

	t.Run("malformed requests: 400 invalid_request; wrong client authentication: 401", func(t *testing.T) {
		f := f.sub(t)
		gs := f.secret("g")
		for _, tc := range []struct{ name, body, ctype string }{
			{"no token", "token_type_hint=access_token", "application/x-www-form-urlencoded"},
			{"empty token", "token=", "application/x-www-form-urlencoded"},
			{"token twice", "token=a&token=b", "application/x-www-form-urlencoded"},
			{"JSON body", `{"token":"` + gs["token"] + `"}`, "application/json"},
			{"line break", "token=" + url.QueryEscape(gs["token"]+"\n"), "application/x-www-form-urlencoded"},
			{"too long", "token=" + strings.Repeat("a", 9<<10), "application/x-www-form-urlencoded"},
		} {
			req, _ := http.NewRequest(http.MethodPost, f.url+"/oauth2/revoke", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			resp, err := f.http.Do(req)
			f.g.Expect(err).NotTo(HaveOccurred())
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			f.g.Expect(resp.StatusCode).To(Equal(400), tc.name)
			f.g.Expect(string(b)).To(ContainSubstring("invalid_request"), tc.name)
			f.g.Expect(string(b)).NotTo(ContainSubstring(gs["token"]), "the token is not echoed")
		}
		f.g.Expect(f.get("/oauth2/revoke", nil).StatusCode).To(Equal(http.StatusMethodNotAllowed))

		cs := f.secret("c")
		code, body := f.revoke(revokeForm(gs["token"]), basic(cs["client_id"], "wrong"))
		f.g.Expect(code).To(Equal(401))
		f.g.Expect(body).To(ContainSubstring("invalid_client"))
		f.g.Expect(f.verify(bearer(gs["token"]), "")).To(Equal(200), "nothing revoked when client authentication fails")
	})

	t.Run("an authenticated client may revoke a token it holds", func(t *testing.T) {
		f := f.sub(t)
		gs, cs := f.secret("g"), f.secret("c")
		code, _ := f.revoke(revokeForm(gs["token"]), basic(cs["client_id"], cs["client_secret"]))
		f.g.Expect(code).To(Equal(200))
		f.g.Eventually(func() int { return f.verify(bearer(gs["token"]), "") }).WithTimeout(time.Second).Should(Equal(401))
		f.g.Expect(f.verify(basic(cs["client_id"], cs["client_secret"]), "")).To(Equal(200), "authenticating revoked nothing of the client's own")
	})
}

// Issue 12, acceptance 4, access tokens: revoking one access token rejects it
// alone (401 at verify, active:false at introspection); another access token
// of the same client keeps working; the record is pruned after the token's
// exp.
func TestRevokeAccessToken(t *testing.T) {
	var skew atomic.Int64 // the operator's clock runs ahead by this much
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f := newFixture(t, func(o *operator.Options) { o.Now = clock })
	app := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
	rs := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "rs"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.introspect"}}}
	f.create(app)
	f.create(rs)
	f.waitReady(app)
	f.waitReady(rs)
	as, rss := f.secret("app"), f.secret("rs")
	cfg := clientcredentials.Config{ClientID: as["client_id"], ClientSecret: as["client_secret"], TokenURL: f.url + "/oauth2/token"}
	var t1, t2 string
	f.g.Eventually(func(g Gomega) {
		a, err := cfg.Token(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		b, err := cfg.Token(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		t1, t2 = a.AccessToken, b.AccessToken
	}).Should(Succeed())
	f.g.Expect(f.verify(bearer(t1), "")).To(Equal(200))
	f.g.Expect(f.verify(bearer(t2), "")).To(Equal(200))

	code, _ := f.revoke(revokeForm(t1)+"&token_type_hint=access_token", nil)
	f.g.Expect(code).To(Equal(200))
	f.g.Eventually(func() int { return f.verify(bearer(t1), "") }).WithTimeout(time.Second).WithPolling(5 * time.Millisecond).Should(Equal(401))
	f.g.Consistently(func() int { return f.verify(bearer(t2), "") }).WithTimeout(time.Second).Should(Equal(200), "the other access token keeps working")
	f.g.Expect(f.verify(basic(as["client_id"], as["client_secret"]), "")).To(Equal(200), "and so does the client secret")
	_, body := f.postForm("/oauth2/introspect", url.Values{"token": {t1}}, basic(rss["client_id"], rss["client_secret"]))
	f.g.Expect(body).To(Equal(map[string]any{"active": false}))
	_, body = f.postForm("/oauth2/introspect", url.Values{"token": {t2}}, basic(rss["client_id"], rss["client_secret"]))
	f.g.Expect(body).To(HaveKeyWithValue("active", true))
	f.g.Eventually(func() []string { return eventsOf(f, "app", controller.EventAccessTokenRevoked) }).Should(ContainElement(ContainSubstring("127.0.0.1")))

	// The deny entry: one record, kept until exp, then pruned by the leader.
	recs := revocationRecords(f)
	f.g.Expect(recs).To(HaveLen(1))
	f.g.Expect(recs[0].Labels).To(HaveKeyWithValue(backing.LabelRevokedKind, backing.RevokedAccessToken))
	f.g.Expect(recs[0].Data).To(BeEmpty())
	f.g.Expect(fmt.Sprint(recs[0].Annotations)).NotTo(ContainSubstring(t1), "no token in the record")
	rev, err := backing.RevocationFromConfigMap(&recs[0])
	f.g.Expect(err).NotTo(HaveOccurred())
	f.g.Expect(*rev.ExpiresAt).To(BeTemporally(">", time.Now()))
	skew.Store(int64(time.Until(*rev.ExpiresAt) + 2*time.Minute))
	cm := recs[0]
	f.g.Expect(env.Client.Patch(f.ctx, &cm, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"poke":"1"}}}`)))).To(Succeed())
	f.g.Eventually(func() []corev1.ConfigMap { return revocationRecords(f) }).Should(BeEmpty(), "pruned after exp")
}

// Acceptance 4's figure: revocation through POST /oauth2/revoke against
// DELETE of the grant (TestRevocationPropagation), measured in the same run:
// the time from the answer to the first 401 at verify.
func TestRevokePropagation(t *testing.T) {
	f := newFixture(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	f.waitReady(c)
	const trials = 20
	grants := make([]*latchkeyv1alpha1.CredentialGrant, 2*trials)
	for i := range grants {
		grants[i] = grant(fmt.Sprintf("g%d", i), "c", latchkeyv1alpha1.CredentialTypeBearer)
		f.create(grants[i])
	}
	tokens := make([]string, len(grants))
	for i, g := range grants {
		f.waitReady(g)
		tokens[i] = f.secret(g.Name)["token"]
	}
	measure := func(i int, act func()) time.Duration {
		h := bearer(tokens[i])
		f.g.Expect(f.verify(h, "")).To(Equal(200))
		act()
		done := time.Now()
		f.g.Eventually(func() int { return f.verify(h, "") }).WithTimeout(time.Second).WithPolling(2*time.Millisecond).
			Should(Equal(401), "trial %d: still accepted 1 s after the revocation answered", i)
		return time.Since(done)
	}
	var byRevoke, byDelete []time.Duration
	for i := range trials {
		byRevoke = append(byRevoke, measure(2*i, func() {
			code, _ := f.revoke(revokeForm(tokens[2*i]), nil)
			f.g.Expect(code).To(Equal(200))
		}))
		byDelete = append(byDelete, measure(2*i+1, func() { f.g.Expect(env.Client.Delete(f.ctx, grants[2*i+1])).To(Succeed()) }))
	}
	slices.Sort(byRevoke)
	slices.Sort(byDelete)
	t.Logf("POST /oauth2/revoke → 401: median %v, slowest %v of %d", byRevoke[trials/2], byRevoke[trials-1], trials)
	t.Logf("DELETE grant       → 401: median %v, slowest %v of %d", byDelete[trials/2], byDelete[trials-1], trials)
}

// --verifier-only: the read-only Deployment's verifier revokes too. It only
// creates the record, so the credential is rejected at once even while the
// operator is down (fail closed: the backing token still exists); when the
// operator's leader is back it deletes the backing token, the owner gets a
// fresh credential and the Event.
func TestRevokeVerifierOnly(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(20 * time.Second)
	ns, opNs := env.Namespace(t), env.Namespace(t)
	opOpts := operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}}
	startOperator := func() func() {
		o := opOpts
		o.SkipControllerNameValidation = true
		g.Expect(env.EnsureNamespace(context.Background(), opNs)).To(Succeed())
		mgr, err := operator.NewManager(env.Config, o)
		g.Expect(err).NotTo(HaveOccurred())
		return testenv.RunManager(t, mgr)
	}
	stopOperator := startOperator()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	env.StartManager(t, operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}, VerifierOnly: true, VerifierListener: ln})
	f := &fixture{t: t, g: g, ctx: context.Background(), ns: ns, opNs: opNs, url: "http://" + ln.Addr().String(), http: &http.Client{Timeout: 5 * time.Second}}
	g.Eventually(func() int { return f.get("/readyz", nil).StatusCode }).Should(Equal(http.StatusOK))

	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	gr := grant("g", "c", latchkeyv1alpha1.CredentialTypeBearer)
	f.create(gr)
	f.waitReady(gr)
	old := f.secret("g")
	h := bearer(old["token"])
	g.Eventually(func() int { return f.verify(h, "") }).Should(Equal(200))

	stopOperator()
	code, _ := f.revoke(revokeForm(old["token"]), nil)
	g.Expect(code).To(Equal(200))
	g.Eventually(func() int { return f.verify(h, "") }).WithTimeout(time.Second).Should(Equal(401))
	g.Consistently(func() int { return f.verify(h, "") }).WithTimeout(time.Second).Should(Equal(401), "rejected while the operator is down")
	g.Expect(backingExists(f, old["token_id"])).To(BeTrue(), "the record alone rejects it: nobody deleted the backing token")

	startOperator()
	g.Eventually(func(g Gomega) {
		fresh := f.secret("g")
		g.Expect(fresh["token"]).NotTo(Equal(old["token"]))
		g.Expect(f.verify(bearer(fresh["token"]), "")).To(Equal(200))
	}).Should(Succeed())
	g.Eventually(func() bool { return backingExists(f, old["token_id"]) }).Should(BeFalse())
	g.Expect(f.verify(h, "")).To(Equal(401))
	g.Eventually(func() []string { return eventsOf(f, "g", controller.EventTokenRevoked) }).Should(ContainElement(ContainSubstring(old["token_id"])))
}

// No secret of a revoked credential reaches the logs (at the highest
// verbosity, client-go's request logging included), the Events, the
// revocation records or the metrics, in any form (testenv.LeakForms): not
// the grant token, not the client secret, not the access token.
func TestRevokeNeverLeaks(t *testing.T) {
	var logs testenv.SyncBuffer
	untap := testenv.Logs.Tap(&logs)
	prev, prevKlog := testenv.LogLevel.Level(), logging.KlogVerbosity()
	testenv.LogLevel.SetLevel(-10)
	logging.SetKlogVerbosity(10)
	defer func() { testenv.LogLevel.SetLevel(prev); logging.SetKlogVerbosity(prevKlog); untap() }()

	f := newFixture(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	f.waitReady(c)
	g := grant("g", "c", latchkeyv1alpha1.CredentialTypeBearer)
	f.create(g)
	f.waitReady(g)
	gs, cs := f.secret("g"), f.secret("c")
	gt, _ := token.Parse(gs["token"])
	cfg := clientcredentials.Config{ClientID: cs["client_id"], ClientSecret: cs["client_secret"], TokenURL: f.url + "/oauth2/token"}
	var access string
	f.g.Eventually(func() error {
		tok, err := cfg.Token(context.Background())
		if err == nil {
			access = tok.AccessToken
		}
		return err
	}).Should(Succeed())
	secrets := map[string][]byte{"grant token's secret part": []byte(gt.Secret), "client secret": []byte(cs["client_secret"]),
		"access token's signature": []byte(access[strings.LastIndex(access, ".")+1:])}

	for _, tok := range []string{access, gs["token"], cs["client_id"] + ":" + cs["client_secret"], "garbage-" + gt.Secret} {
		code, _ := f.revoke(revokeForm(tok), nil)
		f.g.Expect(code).To(Equal(200))
	}
	f.g.Eventually(func() []string { return eventsOf(f, "g", controller.EventTokenRevoked) }).ShouldNot(BeEmpty())
	f.g.Eventually(func() []string { return eventsOf(f, "c", controller.EventTokenRevoked) }).ShouldNot(BeEmpty())
	f.g.Eventually(func() []string { return eventsOf(f, "c", controller.EventAccessTokenRevoked) }).ShouldNot(BeEmpty())

	var events eventsv1.EventList
	f.g.Expect(env.Client.List(f.ctx, &events, client.InNamespace(f.ns))).To(Succeed())
	evJSON, _ := json.Marshal(events.Items)
	var cms corev1.ConfigMapList
	f.g.Expect(env.Client.List(f.ctx, &cms, client.InNamespace(f.opNs))).To(Succeed())
	cmJSON, _ := json.Marshal(cms.Items)
	families, _ := metrics.Registry.Gather()
	metJSON, _ := json.Marshal(families)
	out := logs.String()
	f.g.Expect(out).To(ContainSubstring("Credential revoked"), "the verifier's lines were captured")
	f.g.Expect(out).To(ContainSubstring("Deleted revoked backing token"), "the controller's lines were captured")
	f.g.Expect(testenv.SweepLeaks(map[string][]byte{"logs": []byte(out), "Events": evJSON, "revocation records": cmJSON, "metrics": metJSON}, secrets)).To(BeEmpty())
}

// A revoked token's record outlives its backing token by
// backing.RevocationRetention (no replica may see the record go before the
// backing token), then the leader prunes it; the token stays rejected.
func TestRevokeRecordIsPrunedAfterRetention(t *testing.T) {
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f := newFixture(t, func(o *operator.Options) { o.Now = clock })
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	g := grant("g", "c", latchkeyv1alpha1.CredentialTypeBearer)
	f.create(g)
	f.waitReady(g)
	old := f.secret("g")
	code, _ := f.revoke(revokeForm(old["token"]), nil)
	f.g.Expect(code).To(Equal(200))
	f.g.Eventually(func() bool { return backingExists(f, old["token_id"]) }).Should(BeFalse())
	f.g.Consistently(func() int { return len(revocationRecords(f)) }).WithTimeout(time.Second).Should(Equal(1), "kept after the backing token went")

	skew.Store(int64(backing.RevocationRetention + time.Minute))
	recs := revocationRecords(f)
	f.g.Expect(recs).To(HaveLen(1))
	f.g.Expect(recs[0].Annotations).To(HaveKey(backing.AnnotationReported))
	f.g.Expect(env.Client.Patch(f.ctx, &recs[0], client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"poke":"1"}}}`)))).To(Succeed())
	f.g.Eventually(func() []corev1.ConfigMap { return revocationRecords(f) }).Should(BeEmpty())
	f.g.Expect(f.verify(bearer(old["token"]), "")).To(Equal(401))
	f.g.Expect(f.verify(bearer(f.secret("g")["token"]), "")).To(Equal(200))
}
