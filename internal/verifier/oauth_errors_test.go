package verifier

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// The error codes RFC 6749 §5.2 defines for the token endpoint: its 400 and
// 401 answers carry nothing else.
var rfc6749Codes = []string{"invalid_request", "invalid_client", "invalid_grant",
	"unauthorized_client", "unsupported_grant_type", "invalid_scope"}

const (
	formType = "application/x-www-form-urlencoded"
	// The challenges of /v1/verify, /v1/current and introspection (RFC 6750
	// §3), and of the token endpoint (RFC 6749 §5.2).
	challengeBearer       = `Bearer realm="latchkey"`
	challengeInvalidToken = `Bearer realm="latchkey", error="invalid_token"`
	challengeScope        = `Bearer realm="latchkey", error="insufficient_scope"`
	challengeBasic        = `Basic realm="latchkey"`
	// A client whose secret is user-chosen (argon2id): the one kind a
	// failure limiter guards.
	chosenClientID = "id_chosen"
	chosenSecret   = "correct horse battery staple"
)

// oauthServer is memServer with the access-token signing key in place, so
// that a correct token request succeeds.
func oauthServer(t *testing.T) (*Server, string, *memWorld) {
	t.Helper()
	s, tok, w := memServer(t)
	k, err := accesstoken.NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := accesstoken.KeySet{Keys: []accesstoken.Key{k}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.secrets.Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.opts.SigningKeySecret,
		Namespace: "latchkey-system", ResourceVersion: "1"}, Type: backing.SigningKeysSecretType, Data: data}); err != nil {
		t.Fatal(err)
	}
	return s, tok, w
}

// addChosenClient adds a client "u" (id chosenClientID) whose secret is
// user-chosen, hashed with argon2id.
func addChosenClient(t *testing.T, w *memWorld) {
	t.Helper()
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "u", Namespace: "ns", UID: "uu"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}}}
	hash, err := token.HashChosen(chosenSecret)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := token.NewTokenID()
	bt := backing.Token{ID: id, Hash: hash, OwnerKind: backing.KindApiClient, OwnerNamespace: "ns", OwnerName: "u",
		OwnerUID: "uu", ClientUID: "uu", ClientID: chosenClientID, Type: backing.TypeClientSecret}
	if err := w.clients.Add(c); err != nil {
		t.Fatal(err)
	}
	if err := w.secrets.Add(bt.Secret("latchkey-system")); err != nil {
		t.Fatal(err)
	}
}

// guessUntil429 adds the user-chosen client and sends req (a wrong guess at
// its secret, always from one source) until the verifier answers 429; the
// table then sends req once more.
func guessUntil429(req func(*memWorld, string) *http.Request) func(*testing.T, *Server, *memWorld, string) {
	return func(t *testing.T, s *Server, w *memWorld, tok string) {
		t.Helper()
		addChosenClient(t, w)
		for range 100 {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req(w, tok))
			switch rec.Code {
			case http.StatusTooManyRequests:
				return
			case http.StatusUnauthorized, http.StatusOK: // a rejection (introspection: of the caller)
			default:
				t.Fatalf("while guessing: status %d, body %s", rec.Code, rec.Body)
			}
		}
		t.Fatal("100 wrong guesses from one source never got 429")
	}
}

// brokenInformer makes the informer hold an object of the wrong type where
// client "c" should be: the verifier cannot decide, and must fail closed.
func brokenInformer(t *testing.T, _ *Server, w *memWorld, _ string) {
	t.Helper()
	if err := w.clients.Update(&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}}); err != nil {
		t.Fatal(err)
	}
}

func notSyncedYet(_ *testing.T, s *Server, _ *memWorld, _ string) { s.synced.Store(false) }

func staleView(_ *testing.T, s *Server, _ *memWorld, _ string) {
	s.fresh = newFreshness(time.Nanosecond)
	time.Sleep(time.Millisecond)
}

func deleteSigningKey(t *testing.T, s *Server, w *memWorld, _ string) {
	t.Helper()
	if err := w.secrets.Delete(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.opts.SigningKeySecret, Namespace: "latchkey-system"}}); err != nil {
		t.Fatal(err)
	}
}

func deactivateClient(t *testing.T, _ *Server, w *memWorld, _ string) {
	t.Helper()
	c := w.client.DeepCopy()
	off := false
	c.Spec.Active = &off
	if err := w.clients.Update(c); err != nil {
		t.Fatal(err)
	}
}

// canIntrospect lets client "c" (and its grant) introspect.
func canIntrospect(_ *testing.T, s *Server, _ *memWorld, _ string) {
	s.opts.IntrospectionPermission = "blogs.read"
}

// oauthPost builds a POST with a body of content type ctype ("" for none) and
// header pairs.
func oauthPost(path, ctype, body string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

func oauthBasic(r *http.Request, user, pass string) *http.Request {
	r.SetBasicAuth(user, pass)
	return r
}

func oauthGet(path string, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

// TestOAuthErrorAnswers is every error answer of /oauth2/token (RFC 6749
// §5.2), /oauth2/introspect (RFC 7662) and /v1/verify (RFC 6750 §3), with a
// success of each as a control: status, error code, WWW-Authenticate,
// Retry-After, and no caching of token-endpoint answers (RFC 6749 §5.1).
func TestOAuthErrorAnswers(t *testing.T) {
	type tc struct {
		name  string
		setup func(t *testing.T, s *Server, w *memWorld, tok string)
		// req builds the request from the server's world and its grant
		// token.
		req    func(w *memWorld, tok string) *http.Request
		status int
		// code is the JSON body's "error"; "" for none (then an error
		// answer has an empty body).
		code string
		// challenge is WWW-Authenticate, every value in order; nil: none.
		challenge []string
		// retryAfter is the Retry-After value; "": none.
		retryAfter string
		// body, when set, is the whole JSON body.
		body string
	}
	tokenReq := func(body string) func(*memWorld, string) *http.Request {
		return func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, body), w.clientID, w.clientSecret)
		}
	}
	cc := "grant_type=client_credentials"
	guessToken := func(*memWorld, string) *http.Request {
		return oauthBasic(oauthPost("/oauth2/token", formType, cc), chosenClientID, "wrong guess")
	}
	guessIntrospect := func(_ *memWorld, tok string) *http.Request {
		return oauthBasic(oauthPost("/oauth2/introspect", formType, "token="+tok), chosenClientID, "wrong guess")
	}
	guessVerify := func(*memWorld, string) *http.Request {
		return oauthBasic(oauthGet("/v1/verify"), chosenClientID, "wrong guess")
	}
	introspect := func(body string) func(*memWorld, string) *http.Request {
		return func(_ *memWorld, tok string) *http.Request {
			return oauthPost("/oauth2/introspect", formType, strings.ReplaceAll(body, "$TOK", tok), "Authorization", "Bearer "+tok)
		}
	}
	verify := func(headers ...string) func(*memWorld, string) *http.Request {
		return func(_ *memWorld, tok string) *http.Request {
			return oauthGet("/v1/verify/blogs/1", append([]string{"Authorization", "Bearer " + tok}, headers...)...)
		}
	}
	otherToken := func() string { t, _ := token.New(); return t.String() }()

	cases := []tc{
		// /oauth2/token
		{name: "token/control: Basic", req: tokenReq(cc + "&scope=blogs.read"), status: 200},
		{name: "token/control: form credentials", req: func(w *memWorld, _ string) *http.Request {
			return oauthPost("/oauth2/token", formType, cc+"&client_id="+w.clientID+"&client_secret="+w.clientSecret)
		}, status: 200},
		{name: "token/control: Basic with the same client_id in the form", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, cc+"&client_id="+w.clientID), w.clientID, w.clientSecret)
		}, status: 200},
		{name: "token/control: charset parameter", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType+"; charset=UTF-8", cc), w.clientID, w.clientSecret)
		}, status: 200},
		{name: "token/JSON body", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", "application/json", `{"grant_type":"client_credentials"}`), w.clientID, w.clientSecret)
		}, status: 400, code: "invalid_request"},
		{name: "token/no content type", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", "", cc), w.clientID, w.clientSecret)
		}, status: 400, code: "invalid_request"},
		{name: "token/text/plain", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", "text/plain", cc), w.clientID, w.clientSecret)
		}, status: 400, code: "invalid_request"},
		{name: "token/body over 64 KiB", req: tokenReq(cc + "&scope=" + strings.Repeat("a", 70<<10)), status: 400, code: "invalid_request"},
		{name: "token/grant_type missing", req: tokenReq("scope=blogs.read"), status: 400, code: "invalid_request"},
		{name: "token/grant_type empty", req: tokenReq("grant_type="), status: 400, code: "invalid_request"},
		{name: "token/grant_type password", req: tokenReq("grant_type=password&username=a&password=b"), status: 400, code: "unsupported_grant_type"},
		{name: "token/grant_type twice", req: tokenReq(cc + "&" + cc), status: 400, code: "invalid_request"},
		{name: "token/scope twice", req: tokenReq(cc + "&scope=blogs.read&scope=blogs.write"), status: 400, code: "invalid_request"},
		{name: "token/Basic and form secret", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, cc+"&client_id="+w.clientID+"&client_secret="+w.clientSecret), w.clientID, w.clientSecret)
		}, status: 400, code: "invalid_request"},
		{name: "token/Basic and another form client_id", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, cc+"&client_id=id_other"), w.clientID, w.clientSecret)
		}, status: 400, code: "invalid_request"},
		{name: "token/no client authentication", req: func(*memWorld, string) *http.Request {
			return oauthPost("/oauth2/token", formType, cc)
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/form client_id without secret", req: func(w *memWorld, _ string) *http.Request {
			return oauthPost("/oauth2/token", formType, cc+"&client_id="+w.clientID)
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/Basic wrong secret", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, cc), w.clientID, "key_wrong")
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/Basic unknown client", req: func(*memWorld, string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, cc), "id_nobody", "key_wrong")
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/form wrong secret", req: func(w *memWorld, _ string) *http.Request {
			return oauthPost("/oauth2/token", formType, cc+"&client_id="+w.clientID+"&client_secret=key_wrong")
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/Basic not base64", req: func(*memWorld, string) *http.Request {
			return oauthPost("/oauth2/token", formType, cc, "Authorization", "Basic !!!")
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/Bearer scheme", req: func(_ *memWorld, tok string) *http.Request {
			return oauthPost("/oauth2/token", formType, cc, "Authorization", "Bearer "+tok)
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/grant token as client secret", req: func(w *memWorld, tok string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/token", formType, cc), w.clientID, tok)
		}, status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/inactive client, correct secret", setup: deactivateClient, req: tokenReq(cc),
			status: 401, code: "invalid_client", challenge: []string{challengeBasic}},
		{name: "token/scope the client does not hold", req: tokenReq(cc + "&scope=system.admin"), status: 400, code: "invalid_scope"},
		{name: "token/rate limited", setup: guessUntil429(guessToken), req: guessToken,
			status: 429, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "token/signing key missing", setup: deleteSigningKey, req: tokenReq(cc),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "token/cannot decide", setup: brokenInformer, req: tokenReq(cc),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "token/not synced", setup: notSyncedYet, req: tokenReq(cc),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "token/stale view", setup: staleView, req: tokenReq(cc),
			status: 503, code: "temporarily_unavailable", retryAfter: "5"},

		// /oauth2/introspect
		{name: "introspect/control: active", setup: canIntrospect, req: introspect("token=$TOK"), status: 200},
		{name: "introspect/inactive token", setup: canIntrospect, req: introspect("token=" + otherToken),
			status: 200, body: `{"active":false}`},
		{name: "introspect/garbage token", setup: canIntrospect, req: introspect("token=lk_garbage"),
			status: 200, body: `{"active":false}`},
		{name: "introspect/no caller credential", req: func(_ *memWorld, tok string) *http.Request {
			return oauthPost("/oauth2/introspect", formType, "token="+tok)
		}, status: 401, challenge: []string{challengeBearer, challengeBasic}},
		{name: "introspect/unsupported caller scheme", req: func(_ *memWorld, tok string) *http.Request {
			return oauthPost("/oauth2/introspect", formType, "token="+tok, "Authorization", "Digest username=x")
		}, status: 401, challenge: []string{challengeBearer, challengeBasic}},
		{name: "introspect/unknown caller credential", req: func(_ *memWorld, tok string) *http.Request {
			return oauthPost("/oauth2/introspect", formType, "token="+tok, "Authorization", "Bearer "+otherToken)
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "introspect/caller wrong Basic secret", req: func(w *memWorld, tok string) *http.Request {
			return oauthBasic(oauthPost("/oauth2/introspect", formType, "token="+tok), w.clientID, "key_wrong")
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "introspect/caller lacks the permission", req: introspect("token=$TOK"),
			status: 403, code: "insufficient_scope", challenge: []string{challengeScope}},
		{name: "introspect/token missing", setup: canIntrospect, req: introspect("token_type_hint=access_token"),
			status: 400, code: "invalid_request"},
		{name: "introspect/token twice", setup: canIntrospect, req: introspect("token=$TOK&token=$TOK"),
			status: 400, code: "invalid_request"},
		{name: "introspect/JSON body", setup: canIntrospect, req: func(_ *memWorld, tok string) *http.Request {
			return oauthPost("/oauth2/introspect", "application/json", `{"token":"`+tok+`"}`, "Authorization", "Bearer "+tok)
		}, status: 400, code: "invalid_request"},
		{name: "introspect/caller rate limited", setup: guessUntil429(guessIntrospect), req: guessIntrospect,
			status: 429, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "introspect/cannot decide", setup: brokenInformer, req: introspect("token=$TOK"),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "introspect/not synced", setup: notSyncedYet, req: introspect("token=$TOK"),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "introspect/stale view", setup: staleView, req: introspect("token=$TOK"),
			status: 503, code: "temporarily_unavailable", retryAfter: "5"},

		// /v1/verify (and /v1/current, which shares its 401)
		{name: "verify/control", req: verify(HeaderRequirePermission, "blogs.read", HeaderRequireTenant, "2"), status: 200},
		{name: "verify/no credential", req: func(*memWorld, string) *http.Request { return oauthGet("/v1/verify") },
			status: 401, challenge: []string{challengeBearer, challengeBasic}},
		{name: "verify/unsupported scheme", req: func(*memWorld, string) *http.Request {
			return oauthGet("/v1/verify", "Authorization", "Digest username=x")
		}, status: 401, challenge: []string{challengeBearer, challengeBasic}},
		{name: "current/no credential", req: func(*memWorld, string) *http.Request { return oauthGet("/v1/current") },
			status: 401, challenge: []string{challengeBearer, challengeBasic}},
		{name: "verify/unknown token", req: func(*memWorld, string) *http.Request {
			return oauthGet("/v1/verify", "Authorization", "Bearer "+otherToken)
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "verify/malformed bearer", req: func(*memWorld, string) *http.Request {
			return oauthGet("/v1/verify", "Authorization", "Bearer not-a-token")
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "verify/empty bearer", req: func(*memWorld, string) *http.Request {
			return oauthGet("/v1/verify", "Authorization", "Bearer ")
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "verify/unknown X-API-Key", req: func(*memWorld, string) *http.Request {
			return oauthGet("/v1/verify", "X-API-Key", otherToken)
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "verify/wrong Basic secret", req: func(w *memWorld, _ string) *http.Request {
			return oauthBasic(oauthGet("/v1/verify"), w.clientID, "key_wrong")
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "current/unknown token", req: func(*memWorld, string) *http.Request {
			return oauthGet("/v1/current", "Authorization", "Bearer "+otherToken)
		}, status: 401, code: "invalid_token", challenge: []string{challengeInvalidToken, challengeBasic}},
		{name: "verify/lacks permission", req: verify(HeaderRequirePermission, "blogs.write"),
			status: 403, code: "insufficient_scope", challenge: []string{challengeScope}},
		{name: "verify/wrong tenant", req: verify(HeaderRequireTenant, "3"),
			status: 403, code: "insufficient_scope", challenge: []string{challengeScope}},
		{name: "verify/rate limited", setup: guessUntil429(guessVerify), req: guessVerify,
			status: 429, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "verify/cannot decide", setup: brokenInformer, req: verify(),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "verify/not synced", setup: notSyncedYet, req: verify(),
			status: 503, code: "temporarily_unavailable", retryAfter: "1"},
		{name: "verify/stale view", setup: staleView, req: verify(),
			status: 503, code: "temporarily_unavailable", retryAfter: "5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, tok, w := oauthServer(t)
			if c.setup != nil {
				c.setup(t, s, w, tok)
			}
			req := c.req(w, tok)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			res := rec.Result()
			body := rec.Body.Bytes()

			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, c.status, body)
			}
			if got := res.Header.Values("WWW-Authenticate"); !slices.Equal(got, c.challenge) {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			if got := res.Header.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			if c.status == 429 || c.status == 503 {
				if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
					t.Errorf("Retry-After %q is not a positive number of seconds", res.Header.Get("Retry-After"))
				}
			}
			path := req.URL.Path
			if path == "/oauth2/token" || path == "/oauth2/introspect" {
				if got := res.Header.Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
					t.Errorf("Cache-Control %q, want no-store", got)
				}
			}
			if path == "/oauth2/token" {
				if got := res.Header.Values("Pragma"); !slices.Equal(got, []string{"no-cache"}) {
					t.Errorf("Pragma %q, want no-cache", got)
				}
			}

			var doc map[string]any
			if len(body) > 0 {
				if ct := res.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q with a body", ct)
				}
				if err := json.Unmarshal(body, &doc); err != nil {
					t.Fatalf("body is not JSON: %v: %s", err, body)
				}
			}
			if c.body != "" {
				var want map[string]any
				_ = json.Unmarshal([]byte(c.body), &want)
				gotJSON, _ := json.Marshal(doc)
				wantJSON, _ := json.Marshal(want)
				if string(gotJSON) != string(wantJSON) {
					t.Errorf("body %s, want %s", body, c.body)
				}
			}
			switch {
			case c.code != "":
				if doc["error"] != c.code {
					t.Errorf("error %v, want %s; body %s", doc["error"], c.code, body)
				}
				if d, _ := doc["error_description"].(string); d == "" {
					t.Errorf("no error_description: %s", body)
				}
			case c.status >= 400:
				// RFC 6750 §3.1: no credential, no error information.
				if len(body) != 0 {
					t.Errorf("body %s, want none", body)
				}
			default:
				if _, ok := doc["error"]; ok {
					t.Errorf("a %d answer with an error: %s", c.status, body)
				}
			}
			if path == "/oauth2/token" && (c.status == 400 || c.status == 401) && !slices.Contains(rfc6749Codes, c.code) {
				t.Errorf("token endpoint %d with %q, not an RFC 6749 §5.2 code", c.status, c.code)
			}
			if path == "/oauth2/token" && c.status == 401 && !slices.Contains(res.Header.Values("WWW-Authenticate"), challengeBasic) {
				t.Errorf("token endpoint 401 without the Basic challenge")
			}
		})
	}
}

// TestFailDeclinesUnknownOutcomes: an outcome that is not a verdict on the
// credential (overload, or one added later) is 503 with Retry-After, never a
// 401 that would tell a client its credential is wrong.
func TestFailDeclinesUnknownOutcomes(t *testing.T) {
	s, _, _ := memServer(t)
	for _, o := range []Outcome{OutcomeUnavailable, Outcome("overloaded")} {
		rec := httptest.NewRecorder()
		if got := s.fail(rec, oauthGet("/v1/verify", "Authorization", "Bearer x"), reject(o)); got != o {
			t.Errorf("%s: outcome %s", o, got)
		}
		var doc map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &doc)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
			doc["error"] != "temporarily_unavailable" || rec.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("%s: %d %v %s", o, rec.Code, rec.Header(), rec.Body)
		}
	}
}
