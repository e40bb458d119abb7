package verifier

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkey-dev/latchkey/internal/requestscope"
)

// The forward-auth decision, whatever protocol asked for it: HTTP
// (/v1/verify: NGINX auth_request, Traefik ForwardAuth, Envoy ext_authz HTTP)
// and gRPC (envoy.service.auth.v3.Authorization/Check). Each protocol turns
// its request into a checkQuery and the decision into its own answer; the
// decision itself is made once, here, so that every gateway gets the same.

// checkQuery is one forward-auth question.
type checkQuery struct {
	// cred is the presented credential; credErr, when set, is why none
	// could be read (a rejection: missing or malformed).
	cred    presented
	credErr error
	// authorization is the raw Authorization value, for the RFC 6750 §3.1
	// answer to a scheme the verifier does not read.
	authorization string
	// permissions and tenants are the requirements as sent, each value
	// possibly a comma-separated list. Every one must hold: a caller can
	// add requirements, never remove them.
	permissions, tenants []string
	// method and path are the original request's, when original reports
	// that the gateway passed them (request scopes match on them). Over
	// HTTP they are read from request, and only for a scoped credential.
	method, path string
	original     bool
	request      *http.Request
	// remote is the end client's address (status.lastUsedFrom).
	remote string
	// where names the request in logs: the HTTP path or the gRPC method.
	where string
}

// decision is the verifier's answer to a checkQuery.
type decision struct {
	outcome Outcome
	// status is the HTTP status: 200, 401, 403, 429 or 503.
	status int
	// challenges are the WWW-Authenticate values (shared: read-only).
	challenges []string
	// retryAfter is the Retry-After value of a 429 or 503; "" for none.
	retryAfter string
	// body, when set, is the whole answer body (JSON, shared: read-only);
	// otherwise errCode and errDesc, when set, make a JSON error body.
	body             []byte
	errCode, errDesc string
	// id is the verified caller (outcome valid, or forbidden).
	id Identity
	// headerNames[i] is to be set to headerValues[i] on the request to the
	// upstream (outcome valid). Names are in canonical form; headerNames
	// may be shared: append to a clipped copy.
	headerNames, headerValues []string
}

// identityHeaderNames are the response headers of a successful
// verification, in the order of Identity.headerValues.
var identityHeaderNames = []string{HeaderClientID, HeaderTenant, HeaderPermissions, HeaderTokenID,
	HeaderAllowImpersonate, HeaderAllowLogin}

// Answers shared by every request (read-only).
var (
	wwwAuthNoCredential    = []string{`Bearer realm="latchkey"`, `Basic realm="latchkey"`}
	wwwAuthInvalidToken    = []string{`Bearer realm="latchkey", error="invalid_token"`, `Basic realm="latchkey"`}
	wwwAuthInsufficient    = []string{`Bearer realm="latchkey", error="insufficient_scope"`}
	contentTypeJSON        = []string{"application/json"}
	descNotBoundToTenant   = "the credential is not bound to the required tenant"
	descCannotDecide       = "the verifier cannot decide now; retry"
	descTooManyFailures    = "too many failed attempts; retry later"
	errTemporarilyUnavail  = "temporarily_unavailable"
	errInsufficientScope   = "insufficient_scope"
	descLacksPermissionPre = "the credential lacks permission "
)

// decide answers a forward-auth question: authenticate the credential, then
// check every required permission and tenant. Usage of an accepted
// credential is recorded. It does not check that the verifier is synced and
// fresh: the protocol's endpoint does that first (see unavailable).
func (s *Server) decide(ctx context.Context, q checkQuery) decision {
	if q.credErr != nil {
		return s.failure(q.credErr, q)
	}
	id, err := s.auth.authenticate(ctx, q.cred)
	if err != nil {
		return s.failure(err, q)
	}
	if missing := id.Has(splitValues(q.permissions)); len(missing) > 0 {
		return decision{outcome: OutcomeForbidden, status: http.StatusForbidden, challenges: wwwAuthInsufficient,
			errCode: errInsufficientScope, errDesc: descLacksPermissionPre + strings.Join(missing, ", "), id: id}
	}
	for _, t := range splitValues(q.tenants) {
		if t != id.Tenant {
			// RFC 6750 §3.1: a valid credential short of what the request
			// needs is insufficient_scope, whatever the requirement was.
			return decision{outcome: OutcomeForbidden, status: http.StatusForbidden, challenges: wwwAuthInsufficient,
				errCode: errInsufficientScope, errDesc: descNotBoundToTenant, id: id}
		}
	}
	if len(id.AllowedRequests) > 0 {
		if q.request != nil {
			q.method, q.path, q.original = originalRequest(q.request)
		}
		if !requestAllowed(id, q.method, q.path, q.original) {
			return s.outOfScope(id, q)
		}
	}
	s.usage.record(id.owner, q.remote)
	d := decision{outcome: OutcomeValid, status: http.StatusOK, id: id,
		headerNames: identityHeaderNames, headerValues: id.headerValues()}
	if len(id.Attributes) > 0 {
		d.headerNames = slices.Clip(d.headerNames)
		for name, v := range attributeHeaders(id) {
			d.headerNames, d.headerValues = append(d.headerNames, name), append(d.headerValues, v)
		}
	}
	return d
}

// outOfScope is the answer to a scoped credential (spec.allowedRequests)
// whose request the gateway did not pass, or that is outside its rules:
// 403 insufficient_scope (the credential is valid: a 401 would tell the
// client to drop it).
func (s *Server) outOfScope(id Identity, q checkQuery) decision {
	desc := "the credential is limited to some requests (spec.allowedRequests) and this one is not among them"
	if !q.original {
		desc = "the credential is limited to some requests (spec.allowedRequests) and the gateway did not pass the original method and path"
	}
	if s.log.V(1).Enabled() {
		_, why := requestscope.Allowed(id.AllowedRequests, q.method, q.path)
		s.log.V(1).Info("Request outside the credential's scope", "tokenID", id.TokenID, "passed", q.original, "reason", errString(why))
	}
	return decision{outcome: OutcomeForbidden, status: http.StatusForbidden, challenges: wwwAuthInsufficient,
		errCode: errInsufficientScope, errDesc: desc, id: id}
}

// headerValues are the identity headers' values, in the order of
// identityHeaderNames (one allocation).
func (id *Identity) headerValues() []string {
	if id.headers != nil {
		return id.headers
	}
	return []string{id.ClientID, id.Tenant, id.permissionList(), id.TokenID,
		strconv.FormatBool(id.AllowImpersonate), strconv.FormatBool(id.AllowLogin)}
}

// failure is the decision on a failed authentication, logged. The caller
// learns only that the credential was not accepted; the reason goes to
// metrics and to the log with no credential material.
//
// 429 and 503 are not credential verdicts: they carry Retry-After and the
// registered code temporarily_unavailable, never an RFC 6749 §5.2 or RFC 6750
// code (a client must not drop a credential it was told nothing about). See
// "OAuth error answers" in docs/verifier.md.
func (s *Server) failure(err error, q checkQuery) decision {
	o := outcomeOf(err)
	s.logFailure(o, err, q.where)
	return failed(o, noCredential(o, q.authorization))
}

// logFailure logs a failed authentication: a rejected credential at V(1),
// the verifier failing closed as an error. Only a failure is an error log
// line: overload under attack must not flood the log.
func (s *Server) logFailure(o Outcome, err error, where string) {
	switch {
	case credentialRejected(o):
		if s.log.V(1).Enabled() {
			s.log.V(1).Info("Credential rejected", "outcome", string(o), "path", where)
		}
	case o == OutcomeRateLimited:
	case o == OutcomeUnavailable:
		s.log.Error(err, "Verification failed closed", "path", where)
	default:
		if s.log.V(1).Enabled() {
			s.log.V(1).Info("Verification declined", "outcome", string(o), "path", where)
		}
	}
}

// failed is the answer to a failed authentication with outcome o;
// noCred when the request carried no credential the verifier reads.
func failed(o Outcome, noCred bool) decision {
	switch {
	case credentialRejected(o):
		if noCred {
			// RFC 6750 §3.1: a request with no credential (or in a scheme
			// the verifier does not read) gets the challenges without an
			// error code or other error information.
			return decision{outcome: o, status: http.StatusUnauthorized, challenges: wwwAuthNoCredential}
		}
		return decision{outcome: o, status: http.StatusUnauthorized, challenges: wwwAuthInvalidToken, body: unauthorizedBody}
	case o == OutcomeRateLimited:
		return decision{outcome: o, status: http.StatusTooManyRequests, retryAfter: "1",
			errCode: errTemporarilyUnavail, errDesc: descTooManyFailures}
	default:
		// OutcomeUnavailable, or another refusal to decide (overload): fail
		// closed with the status that says "retry", not "your credential is
		// wrong".
		return decision{outcome: o, status: http.StatusServiceUnavailable, retryAfter: "1",
			errCode: errTemporarilyUnavail, errDesc: descCannotDecide}
	}
}

// unavailable is the decision while the verifier may not answer: before its
// caches synced, or when its view is older than --max-staleness (a
// revocation may not have reached this replica). Nil when it may answer.
func (s *Server) unavailable() *decision {
	if !s.synced.Load() {
		return &decisionNotSynced
	}
	if s.fresh.stale() {
		return &decisionStale
	}
	return nil
}

var (
	decisionNotSynced = decision{outcome: OutcomeUnavailable, status: http.StatusServiceUnavailable, retryAfter: "1",
		errCode: errTemporarilyUnavail, errDesc: "the verifier is starting: its caches have not synced yet"}
	decisionStale = decision{outcome: OutcomeUnavailable, status: http.StatusServiceUnavailable, retryAfter: "5",
		errCode: errTemporarilyUnavail, errDesc: "the verifier has not heard from the API server for longer than its --max-staleness; retry"}
)

// noCredential reports whether a rejected request carried no credential the
// verifier reads: none at all, or an Authorization scheme other than Bearer
// and Basic (RFC 6750 §3.1 treats both alike).
func noCredential(o Outcome, authorization string) bool {
	if o == OutcomeMissing {
		return true
	}
	if authorization != "" {
		scheme, _, _ := strings.Cut(authorization, " ")
		return !strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "Basic")
	}
	return false
}

// writeHTTP writes the decision as a forward-auth HTTP answer. The header
// names are canonical already: they are set without re-canonicalising. The
// answer of a 200 is in the headers; gateways ignore a forward-auth body.
func (d *decision) writeHTTP(w http.ResponseWriter) {
	h := w.Header()
	if d.status == http.StatusOK {
		vals := d.headerValues
		for i, name := range d.headerNames {
			h[name] = vals[i : i+1 : i+1]
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if d.challenges != nil {
		h["Www-Authenticate"] = d.challenges
	}
	if d.retryAfter != "" {
		h["Retry-After"] = []string{d.retryAfter}
	}
	switch {
	case d.body != nil:
		h["Content-Type"] = contentTypeJSON
		w.WriteHeader(d.status)
		_, _ = w.Write(d.body)
	case d.errCode != "":
		writeError(w, d.status, d.errCode, d.errDesc)
	default:
		w.WriteHeader(d.status)
	}
}
