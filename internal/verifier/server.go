package verifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/permissions"
)

// Request headers a gateway sets to require a permission or a tenant. Their
// query-parameter forms are "permission" and "tenant". Every value given, in
// either form, must hold: a caller can add requirements, never remove them.
const (
	HeaderRequirePermission = "X-Latchkey-Permission"
	HeaderRequireTenant     = "X-Latchkey-Tenant"
)

// Response headers of a successful verification, for the gateway to pass to
// the upstream.
const (
	HeaderClientID         = "X-Latchkey-Client-Id"
	HeaderTenant           = "X-Latchkey-Tenant"
	HeaderPermissions      = "X-Latchkey-Permissions"
	HeaderTokenID          = "X-Latchkey-Token-Id"
	HeaderAllowImpersonate = "X-Latchkey-Allow-Impersonate"
	HeaderAllowLogin       = "X-Latchkey-Allow-Login"
)

const maxBody = 64 << 10

var (
	metricVerifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_verifications_total",
		Help: "Credential verifications by endpoint and result (valid, missing, malformed, unknown, wrong_secret, expired, revoked, inactive, forbidden, rate_limited, unavailable).",
	}, []string{"endpoint", "result"})
	metricLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "latchkey_verification_duration_seconds",
		Help:    "Time to answer a verification request.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
	}, []string{"endpoint"})
)

func init() { metrics.Registry.MustRegister(metricVerifications, metricLatency) }

// Server is the verification service's HTTP handler.
type Server struct {
	auth   *authenticator
	usage  *usageRecorder
	synced atomic.Bool
	// fresh bounds the age of the view (--max-staleness); nil: unbounded.
	fresh *freshness
	opts  Options
	log   logr.Logger
	mux   *http.ServeMux

	verifyHandler http.Handler
	metadataDoc   []byte
	// writer creates revocation records (revoke.go).
	writer client.Writer
	// onReady, when set, is called once the caches synced (the gRPC
	// health status follows at once).
	onReady func()
}

func newServer(auth *authenticator, usage *usageRecorder, opts Options, log logr.Logger) *Server {
	s := &Server{auth: auth, usage: usage, opts: opts, log: log, mux: http.NewServeMux(),
		metadataDoc: accesstoken.Metadata(opts.Issuer, opts.Issuer)}
	s.verifyHandler = s.endpoint("verify", s.verify)
	s.mux.Handle("/v1/verify", s.verifyHandler)
	s.mux.Handle("/v1/verify/", s.verifyHandler)
	s.mux.Handle("/v1/current", s.endpoint("current", s.current))
	s.mux.Handle("/v1/me", s.endpoint("current", s.current))
	s.mux.Handle("POST /oauth2/introspect", s.endpoint("introspect", s.introspect))
	s.mux.Handle("POST /oauth2/token", s.endpoint("token", s.token))
	s.mux.Handle("POST /oauth2/revoke", s.endpoint("revoke", s.revoke))
	s.mux.Handle("GET /.well-known/jwks.json", s.endpoint("jwks", s.jwks))
	s.mux.Handle("GET /.well-known/oauth-authorization-server", s.endpoint("metadata", s.metadata))
	s.mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return s
}

// ServeHTTP implements http.Handler. Forward-auth, the hot path, skips the
// mux's pattern matching.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p == "/v1/verify" || strings.HasPrefix(p, "/v1/verify/") {
		s.verifyHandler.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) Outcome

// endpoint adds what every endpoint shares: 503 until synced, a bounded
// body, no caching, metrics.
func (s *Server) endpoint(name string, h handlerFunc) http.Handler {
	// Resolve the metric series once, not per request.
	latency := metricLatency.WithLabelValues(name)
	counters := map[Outcome]prometheus.Counter{}
	for _, o := range allOutcomes {
		counters[o] = metricVerifications.WithLabelValues(name, string(o))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if name != "verify" {
			// Forward-auth answers are not cached by gateways; the others
			// carry tokens and records (RFC 6749 §5.1 wants no-store).
			w.Header()["Cache-Control"] = []string{"no-store"}
			if name == "token" {
				// RFC 6749 §5.1/§5.2, for HTTP/1.0 caches: every answer.
				w.Header()["Pragma"] = []string{"no-cache"}
			}
		}
		outcome := OutcomeUnavailable
		if d := s.unavailable(); d != nil {
			d.writeHTTP(w)
		} else {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			}
			outcome = h(w, r)
		}
		counters[outcome].Inc()
		latency.Observe(time.Since(start).Seconds())
	})
}

// identify authenticates the request's own credential and answers 401, 429
// or 503 itself when that fails.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (Identity, Outcome, bool) {
	p, err := credentialFrom(r)
	if err == nil {
		var id Identity
		if id, err = s.auth.authenticate(r.Context(), p); err == nil {
			return id, OutcomeValid, true
		}
	}
	return Identity{}, s.fail(w, r, err), false
}

// fail answers a failed authentication (see failure).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) Outcome {
	o := outcomeOf(err)
	s.logFailure(o, err, r.URL.Path)
	d := failed(o, noCredential(o, r.Header.Get("Authorization")))
	d.writeHTTP(w)
	return o
}

// credentialRejected reports whether o is a verdict on the credential itself
// (401, invalid_client, or {"active":false} for introspection), as opposed to
// the verifier declining to decide (429, 503).
func credentialRejected(o Outcome) bool {
	switch o {
	case OutcomeMissing, OutcomeMalformed, OutcomeUnknown, OutcomeWrongSecret, OutcomeExpired, OutcomeRevoked, OutcomeInactive:
		return true
	}
	return false
}

var unauthorizedBody = func() []byte {
	b, _ := json.Marshal(map[string]string{"error": "invalid_token",
		"error_description": "the credential is malformed, unknown, expired, revoked or inactive"})
	return append(b, '\n')
}()

// verify is the forward-auth endpoint: the request to decide on is the
// gateway's, the decision is decide's.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) Outcome {
	q := checkQuery{authorization: headerGet(r.Header, "Authorization"), where: r.URL.Path}
	q.cred, q.credErr = credentialFromHeaders(q.authorization, headerGet(r.Header, "X-Api-Key"))
	// Clipped: a query value appended must not write into the header's array.
	q.permissions, q.tenants = slices.Clip(r.Header[HeaderRequirePermission]), slices.Clip(r.Header[HeaderRequireTenant])
	if r.URL.RawQuery != "" {
		v := r.URL.Query()
		q.permissions, q.tenants = append(q.permissions, v["permission"]...), append(q.tenants, v["tenant"]...)
	}
	q.remote = remoteAddr(r)
	// The original request is read only for a scoped credential (decide).
	q.request = r
	d := s.decide(r.Context(), q)
	d.writeHTTP(w)
	return d.outcome
}

// current returns the caller's own record, never its secret.
func (s *Server) current(w http.ResponseWriter, r *http.Request) Outcome {
	id, o, ok := s.identify(w, r)
	if !ok {
		return o
	}
	s.usage.record(id.owner, remoteAddr(r))
	writeJSON(w, http.StatusOK, id)
	return OutcomeValid
}

// introspect is RFC 7662 token introspection for authenticated callers that
// hold the introspection permission.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) Outcome {
	caller, o, ok := s.identify(w, r)
	if !ok {
		return o
	}
	if missing := caller.Has([]string{s.opts.IntrospectionPermission}); len(missing) > 0 {
		// RFC 6750 §3.1: 403 with the insufficient_scope challenge.
		w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey", error="insufficient_scope"`)
		writeError(w, http.StatusForbidden, "insufficient_scope", "introspection needs permission "+s.opts.IntrospectionPermission)
		return OutcomeForbidden
	}
	if desc := parseForm(r); desc != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", desc)
		return OutcomeMalformed
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "send the token to introspect as the form parameter 'token'")
		return OutcomeMalformed
	}
	p := presented{bearer: tok}
	if user, pass, ok := strings.Cut(tok, ":"); ok {
		p = presented{user: user, pass: pass, basic: true}
	}
	id, err := s.auth.authenticate(r.Context(), p)
	if err != nil {
		// A verdict on the introspected token, or its failure limiter, is
		// {"active":false} (RFC 7662 §2.2); the verifier unable to decide
		// is 503.
		if o := outcomeOf(err); !credentialRejected(o) && o != OutcomeRateLimited {
			return s.fail(w, r, err)
		}
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return OutcomeValid
	}
	s.usage.record(id.owner, remoteAddr(r))
	jti := id.TokenID
	if id.JTI != "" {
		jti = id.JTI
	}
	resp := map[string]any{
		"active": true, "scope": strings.Join(id.Permissions, " "), "client_id": id.ClientID,
		"token_type": "Bearer", "sub": id.ClientID, "jti": jti, "tenant": id.Tenant,
		"latchkey_kind": id.Kind, "latchkey_type": id.Type,
		"allow_impersonate": id.AllowImpersonate, "allow_login": id.AllowLogin,
	}
	if id.ExpiresAt != nil {
		resp["exp"] = id.ExpiresAt.Unix()
	}
	if id.IssuedAt != nil {
		resp["iat"] = id.IssuedAt.Unix()
	}
	if len(id.Attributes) > 0 {
		resp["attributes"] = id.Attributes
	}
	if len(id.AllowedRequests) > 0 {
		resp["allowed_requests"] = id.AllowedRequests
	}
	writeJSON(w, http.StatusOK, resp)
	return OutcomeValid
}

// token is the OAuth 2.0 client_credentials grant (RFC 6749 §4.4). Its 400
// and 401 answers carry only RFC 6749 §5.2 codes; 429 and 503 are answered by
// fail (see "OAuth error answers" in docs/verifier.md).
func (s *Server) token(w http.ResponseWriter, r *http.Request) Outcome {
	if desc := parseForm(r); desc != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", desc)
		return OutcomeMalformed
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		writeError(w, http.StatusBadRequest, "invalid_request", "the form parameter grant_type is required: grant_type=client_credentials")
		return OutcomeMalformed
	default:
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
		return OutcomeMalformed
	}
	user, pass, basic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	switch {
	case basic && (formSecret != "" || formID != "" && formID != user):
		// RFC 6749 §2.3: one authentication method per request. A form
		// client_id equal to the Basic user name is tolerated (some
		// clients send it).
		writeError(w, http.StatusBadRequest, "invalid_request", "authenticate the client with HTTP Basic or with the form, not both")
		return OutcomeMalformed
	case !basic:
		user, pass = formID, formSecret
	}
	if user == "" || pass == "" {
		return s.invalidClient(w, OutcomeMissing)
	}
	id, err := s.auth.clientSecret(r.Context(), user, pass)
	if err != nil {
		if o := outcomeOf(err); credentialRejected(o) {
			return s.invalidClient(w, o)
		}
		return s.fail(w, r, err)
	}
	scope := id.Permissions
	if requested := strings.Fields(r.PostForm.Get("scope")); len(requested) > 0 {
		if scope = permissions.Intersect(requested, id.Permissions); len(scope) == 0 {
			writeError(w, http.StatusBadRequest, "invalid_scope", "the client holds none of the requested permissions")
			return OutcomeForbidden
		}
	}
	access, claims, err := s.auth.mintAccessToken(r.Context(), id, scope)
	if err != nil {
		if errors.Is(err, errNoKeys) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the access-token signing key is not created yet; retry")
			return OutcomeUnavailable
		}
		return s.fail(w, r, err)
	}
	s.usage.record(id.owner, remoteAddr(r))
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer",
		"expires_in": claims.Expires - claims.IssuedAt, "scope": strings.Join(scope, " "),
	})
	return OutcomeValid
}

// jwks serves the public keys that verify access tokens (RFC 7517), for
// offline verifiers: Envoy's jwt_authn, Istio RequestAuthentication, any
// OIDC library. Retired keys stay until every token they signed expired.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) Outcome {
	keys, err := s.auth.keys(r.Context())
	if err != nil {
		if errors.Is(err, errNoKeys) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the access-token signing key is not created yet; retry")
			return OutcomeUnavailable
		}
		return s.fail(w, r, err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(keys.jwks)
	return OutcomeValid
}

// metadata serves the RFC 8414 authorization server metadata.
func (s *Server) metadata(w http.ResponseWriter, _ *http.Request) Outcome {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.metadataDoc)
	return OutcomeValid
}

// invalidClient answers a failed client authentication at the token
// endpoint: always 401 with the Basic challenge (RFC 6749 §5.2 requires it
// when Basic was used and allows it otherwise; RFC 9110 §15.5.2 requires a
// challenge on every 401), so credentials sent in the form, in Basic, or not
// at all get the same answer.
func (s *Server) invalidClient(w http.ResponseWriter, o Outcome) Outcome {
	w.Header().Set("WWW-Authenticate", `Basic realm="latchkey"`)
	writeError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	return o
}

// parseForm parses an application/x-www-form-urlencoded request body (RFC
// 6749 §3.2, RFC 7662 §2.1) into r.PostForm, or returns what is wrong with
// it, for an invalid_request answer. The media type is checked here because
// ParseForm silently ignores a body of any other type (a JSON body would read
// as an empty form). A parameter sent more than once is refused, and one
// sent without a value counts as omitted (RFC 6749 §3.2).
func parseForm(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return "the body must be application/x-www-form-urlencoded"
	}
	if err := r.ParseForm(); err != nil {
		return "the body must be application/x-www-form-urlencoded and at most 64 KiB"
	}
	for _, v := range r.PostForm {
		if len(v) > 1 {
			return "a form parameter is sent more than once"
		}
	}
	return ""
}

func splitValues(vals []string) []string {
	if len(vals) == 1 && !strings.Contains(vals[0], ",") {
		switch v := strings.TrimSpace(vals[0]); v {
		case "":
			return nil
		case vals[0]:
			return vals[:1:1] // the common case, no allocation (read-only)
		default:
			return []string{v}
		}
	}
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// remoteAddr is the end client's address: the first X-Forwarded-For entry
// that a gateway set, else the peer. It is informational (status.lastUsedFrom).
func remoteAddr(r *http.Request) string {
	if xff := headerGet(r.Header, "X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
			return ip.String()
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, desc string) {
	writeJSON(w, code, map[string]string{"error": errCode, "error_description": desc})
}

// ready is nil when the verifier answers: its caches synced and its view no
// older than --max-staleness.
func (s *Server) ready() error {
	if !s.synced.Load() {
		return fmt.Errorf("verifier caches not synced")
	}
	if s.fresh.stale() {
		return fmt.Errorf("verifier view is %s old, more than --max-staleness %s: its watch of the API server is stalled", s.fresh.age().Truncate(time.Second), s.fresh.max)
	}
	return nil
}

func (s *Server) String() string { return fmt.Sprintf("verifier(synced=%v)", s.synced.Load()) }

// headerGet is h.Get(key) for a key already in canonical form, as every
// constant key here is: net/http canonicalizes the keys of the requests it
// parses, and Get would validate and canonicalize key again on every call
// of the hot path.
func headerGet(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
