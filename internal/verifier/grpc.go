package verifier

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// Envoy's external authorization over gRPC
// (envoy.service.auth.v3.Authorization/Check, used by Envoy's ext_authz
// filter with a grpc_service, Istio's envoyExtAuthzGrpc provider and Envoy
// Gateway's SecurityPolicy extAuth.grpc). The decision is decide's, as for
// /v1/verify; this file only reads the CheckRequest and writes the
// CheckResponse. Every path ends in an explicit OK or denied answer: an
// error status would leave the outcome to the proxy's failure_mode_allow.

// Keys of a route's context_extensions (Envoy's ExtAuthzPerRoute
// check_settings.context_extensions), set by whoever configures the gateway,
// never by its clients.
const (
	// ContextExtensionPermission requires permissions, like the
	// X-Latchkey-Permission header and ?permission= of /v1/verify: a
	// comma-separated list, every one required.
	ContextExtensionPermission = "permission"
	// ContextExtensionTenant requires the credential's tenant, like
	// X-Latchkey-Tenant and ?tenant=.
	ContextExtensionTenant = "tenant"
	// ContextExtensionKeepCredential "true" keeps the credential headers
	// (Authorization, X-API-Key) on the request to the upstream, for an
	// upstream that must see them; by default the answer removes them.
	ContextExtensionKeepCredential = "keep_credential"
)

// MaxCheckRequestBytes bounds a CheckRequest: Envoy's default limit on
// request headers (max_request_headers_kb) is 60 KiB, and the verifier reads
// no body (leave with_request_body unset).
const MaxCheckRequestBytes = 128 << 10

// grpcServiceName is the Authorization service's name, for health checks.
const grpcServiceName = "envoy.service.auth.v3.Authorization"

// credentialHeaders are removed before the upstream unless the route keeps
// them (keep_credential).
var credentialHeaders = []string{"authorization", "x-api-key"}

// authorizationServer is the gRPC Authorization service.
type authorizationServer struct {
	authv3.UnimplementedAuthorizationServer
	s        *Server
	latency  prometheus.Observer
	counters map[Outcome]prometheus.Counter
}

func newAuthorizationServer(s *Server) *authorizationServer {
	a := &authorizationServer{s: s, latency: metricLatency.WithLabelValues("grpc_check"), counters: map[Outcome]prometheus.Counter{}}
	for _, o := range allOutcomes {
		a.counters[o] = metricVerifications.WithLabelValues("grpc_check", string(o))
	}
	return a
}

// Check implements envoy.service.auth.v3.Authorization.
func (a *authorizationServer) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, _ error) {
	start := time.Now()
	outcome := OutcomeUnavailable
	defer func() {
		if p := recover(); p != nil {
			// Fail closed with a denial, not a crash or an error status.
			a.s.log.Error(nil, "Verification failed closed: panic in Check", "panic", p)
			d := failed(OutcomeUnavailable, false)
			resp, outcome = deniedResponse(&d), OutcomeUnavailable
		}
		a.counters[outcome].Inc()
		a.latency.Observe(time.Since(start).Seconds())
	}()
	if d := a.s.unavailable(); d != nil {
		return deniedResponse(d), nil
	}
	in := checkInputOf(req)
	q := in.query()
	if q.credErr != nil || q.cred.basic {
		// The failure limiter of user-chosen secrets counts per source
		// (withSource does the same for HTTP).
		ctx = context.WithValue(ctx, callerKey{}, q.remote)
	}
	d := a.s.decide(ctx, q)
	outcome = d.outcome
	if d.status != http.StatusOK {
		return deniedResponse(&d), nil
	}
	return in.okResponse(&d), nil
}

// checkInput is what Check reads from a CheckRequest.
type checkInput struct {
	http *authv3.AttributeContext_HttpRequest
	ext  map[string]string
	src  string
	// raw holds the request's headers when Envoy sent them as header_map
	// (encode_raw_headers) instead of the headers map.
	raw []*corev3.HeaderValue
}

func checkInputOf(req *authv3.CheckRequest) checkInput {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	in := checkInput{http: h, ext: attrs.GetContextExtensions(),
		src: attrs.GetSource().GetAddress().GetSocketAddress().GetAddress()}
	if len(h.GetHeaders()) == 0 {
		in.raw = h.GetHeaderMap().GetHeaders()
	}
	return in
}

// header returns every value of a request header; name is lower case, as
// Envoy sends header names.
func (in *checkInput) header(name string) []string {
	if in.raw == nil {
		if v, ok := in.http.GetHeaders()[name]; ok {
			return []string{v}
		}
		return nil
	}
	var out []string
	for _, hv := range in.raw {
		if strings.EqualFold(hv.GetKey(), name) {
			v := hv.GetValue()
			if v == "" {
				v = string(hv.GetRawValue())
			}
			out = append(out, v)
		}
	}
	return out
}

// first is a header's value, several joined with "," as Envoy joins them.
func (in *checkInput) first(name string) string {
	v := in.header(name)
	if len(v) == 1 {
		return v[0]
	}
	return strings.Join(v, ",")
}

// query is the forward-auth question the CheckRequest asks.
func (in *checkInput) query() checkQuery {
	q := checkQuery{authorization: in.first("authorization"), where: "grpc:" + grpcServiceName + "/Check"}
	q.cred, q.credErr = credentialFromHeaders(q.authorization, in.first("x-api-key"))
	// The route's requirements, then the headers the gateway sets (a
	// client's own can only add to them).
	q.permissions = in.header("x-latchkey-permission")
	if p := in.ext[ContextExtensionPermission]; p != "" {
		q.permissions = append(q.permissions, p)
	}
	q.tenants = in.header("x-latchkey-tenant")
	if t := in.ext[ContextExtensionTenant]; t != "" {
		q.tenants = append(q.tenants, t)
	}
	q.method, q.path = in.http.GetMethod(), in.http.GetPath()
	q.original = q.method != "" && q.path != ""
	// netip, not net: no allocation for the peer's address, kept as sent.
	if _, err := netip.ParseAddr(in.src); err == nil {
		q.remote = in.src
	}
	if xff := in.first("x-forwarded-for"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
			q.remote = a.Unmap().String()
		}
	}
	return q
}

// okResponse lets the request through: the decision's headers set,
// overwriting the client's; every other header whose name reads as
// X-Latchkey-* (X-Latchkey-Permission, X_Latchkey_…, X.Latchkey.…) removed;
// the credential removed unless the route keeps it. Envoy applies
// headers_to_remove after the headers it sets, so a name it sets is never
// in headers_to_remove; an empty value (a client bound to no tenant) is
// removed rather than set empty.
func (in *checkInput) okResponse(d *decision) *authv3.CheckResponse {
	n := len(d.headerNames)
	ok := &authv3.OkHttpResponse{Headers: make([]*corev3.HeaderValueOption, 0, n),
		HeadersToRemove: make([]string, 0, len(credentialHeaders)+2)}
	// One allocation each for the options and the values, not one per
	// header.
	opts, vals := make([]corev3.HeaderValueOption, n), make([]corev3.HeaderValue, n)
	var set [8]string
	setNames := set[:0]
	for i, name := range d.headerNames {
		lower := lowerHeaderName(name)
		if d.headerValues[i] == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, lower)
			continue
		}
		setNames = append(setNames, lower)
		vals[i].Key, vals[i].Value = lower, d.headerValues[i]
		opts[i].Header, opts[i].AppendAction = &vals[i], corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		ok.Headers = append(ok.Headers, &opts[i])
	}
	remove := func(k string) {
		if !readsAsLatchkey(k) {
			return
		}
		lower := strings.ToLower(k)
		if !containsString(setNames, lower) && !containsString(ok.HeadersToRemove, lower) {
			ok.HeadersToRemove = append(ok.HeadersToRemove, lower)
		}
	}
	if in.raw == nil {
		for k := range in.http.GetHeaders() {
			remove(k)
		}
	} else {
		for _, hv := range in.raw {
			remove(hv.GetKey())
		}
	}
	if in.ext[ContextExtensionKeepCredential] != "true" {
		ok.HeadersToRemove = append(ok.HeadersToRemove, credentialHeaders...)
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(rpccode.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// readsAsLatchkey reports whether a header name reads as X-Latchkey-… to a
// CGI, WSGI, PHP or Rack upstream (x-latchkey-, x_latchkey_, x.latchkey.…,
// in any letter case).
func readsAsLatchkey(name string) bool {
	const want = "x-latchkey-"
	if len(name) < len(want) {
		return false
	}
	for i := range len(want) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if want[i] == '-' {
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				return false
			}
		} else if c != want[i] {
			return false
		}
	}
	return true
}

// lowerNames are the identity headers' names as Envoy spells them.
var lowerNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range identityHeaderNames {
		m[n] = strings.ToLower(n)
	}
	return m
}()

func lowerHeaderName(name string) string {
	if l, ok := lowerNames[name]; ok {
		return l
	}
	return strings.ToLower(name)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// deniedResponse stops the request at the gateway with the decision's HTTP
// status, WWW-Authenticate challenges, Retry-After and JSON body, as
// /v1/verify answers.
func deniedResponse(d *decision) *authv3.CheckResponse {
	denied := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(d.status)}}
	for _, c := range d.challenges {
		// Each challenge its own header line (APPEND_IF_EXISTS_OR_ADD).
		denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: "www-authenticate", Value: c}})
	}
	if d.retryAfter != "" {
		denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
			Header: &corev3.HeaderValue{Key: "retry-after", Value: d.retryAfter}})
	}
	body := d.body
	if body == nil && d.errCode != "" {
		body, _ = json.Marshal(map[string]string{"error": d.errCode, "error_description": d.errDesc})
		body = append(body, '\n')
	}
	if body != nil {
		denied.Body = string(body)
		denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(grpcCode(d.status))},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
	}
}

// grpcCode is the gRPC status of a denial: Envoy denies on any code but OK
// and answers with the denied response's HTTP status.
func grpcCode(status int) rpccode.Code {
	switch status {
	case http.StatusUnauthorized:
		return rpccode.Code_UNAUTHENTICATED
	case http.StatusForbidden:
		return rpccode.Code_PERMISSION_DENIED
	case http.StatusTooManyRequests:
		return rpccode.Code_RESOURCE_EXHAUSTED
	default:
		return rpccode.Code_UNAVAILABLE
	}
}
