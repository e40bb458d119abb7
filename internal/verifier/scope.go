package verifier

import (
	"iter"
	"net/http"
	"strings"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/requestscope"
)

// Request headers through which a gateway passes the original request, for
// request scopes (CredentialGrant spec.allowedRequests). The names are in
// canonical form.
const (
	// HeaderOriginalMethod and HeaderOriginalURI are what the NGINX
	// configuration in docs/gateways.md sets ($request_method,
	// $request_uri).
	HeaderOriginalMethod = "X-Original-Method"
	HeaderOriginalURI    = "X-Original-Uri"
	// HeaderOriginalURL is what ingress-nginx sets
	// ($scheme://$http_host$request_uri), next to X-Original-Method.
	HeaderOriginalURL = "X-Original-Url"
	// HeaderForwardedMethod and HeaderForwardedURI are what Traefik's
	// ForwardAuth sets.
	HeaderForwardedMethod = "X-Forwarded-Method"
	HeaderForwardedURI    = "X-Forwarded-Uri"
)

// HeaderAttributePrefix starts the response header of each attribute (the
// client's spec.attributes merged with the grant's): X-Latchkey-Attr-<key>.
const HeaderAttributePrefix = "X-Latchkey-Attr-"

const verifyPath = "/v1/verify"

// originalRequest returns the method and request target (path and query, as
// the client sent them) of the request the gateway asks about, from what
// the gateway passed:
//
//   - NGINX: X-Original-Method and X-Original-URI;
//   - ingress-nginx: X-Original-Method and the path of X-Original-URL;
//   - Traefik: X-Forwarded-Method and X-Forwarded-Uri;
//   - Envoy's HTTP ext_authz: the path after /v1/verify, with the request's
//     own method.
//
// ok is false when none of them was passed, when one is incomplete (a path
// without its method) or repeated, or when two disagree: a gateway that
// passes the client's own headers to the verifier (ingress-nginx does) may
// carry a client's false X-Original-URI next to the true X-Original-URL, and
// the verifier cannot know which one the gateway meant. The caller refuses a
// scoped credential then (fail closed).
func originalRequest(r *http.Request) (method, target string, ok bool) {
	n := 0
	agree := func(m, t string) bool {
		if n > 0 && (m != method || t != target) {
			return false
		}
		method, target = m, t
		n++
		return true
	}
	h := r.Header
	for _, src := range [...]struct{ methodHeader, targetHeader string }{
		{HeaderOriginalMethod, HeaderOriginalURI},
		{HeaderOriginalMethod, HeaderOriginalURL},
		{HeaderForwardedMethod, HeaderForwardedURI},
	} {
		ts, present := h[src.targetHeader]
		if !present {
			continue
		}
		ms := h[src.methodHeader]
		if len(ts) != 1 || len(ms) != 1 {
			return "", "", false
		}
		t := ts[0]
		if src.targetHeader == HeaderOriginalURL {
			if t, ok = urlTarget(t); !ok {
				return "", "", false
			}
		}
		if !agree(ms[0], t) {
			return "", "", false
		}
	}
	// Envoy appends the original path to path_prefix /v1/verify. The raw
	// request target is read, not r.URL.Path, which Go has decoded.
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	switch {
	case strings.HasPrefix(uri, verifyPath+"/"):
		if !agree(r.Method, uri[len(verifyPath):]) {
			return "", "", false
		}
	case uri == verifyPath || strings.HasPrefix(uri, verifyPath+"?"):
	default:
		// "/v1/verify%2F…", an absolute-form target: not what a gateway sends.
		return "", "", false
	}
	return method, target, n > 0
}

// urlTarget returns the request target of an absolute http(s) URL: from the
// first '/' after "scheme://". The host comes from the client's Host header,
// which NGINX refuses when it holds a '/'.
func urlTarget(u string) (string, bool) {
	var rest string
	switch {
	case strings.HasPrefix(u, "http://"):
		rest = u[len("http://"):]
	case strings.HasPrefix(u, "https://"):
		rest = u[len("https://"):]
	default:
		return "", false
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", false
	}
	return rest[i:], true
}

// requestAllowed is the request-scope decision, for every protocol: an
// identity without allowedRequests may make any request; a scoped one only
// a request its gateway passed (passed) whose method and normalised path
// are inside one of its rules. It allocates nothing for an unscoped
// identity.
func requestAllowed(id Identity, method, target string, passed bool) bool {
	if len(id.AllowedRequests) == 0 {
		return true
	}
	if !passed {
		return false
	}
	ok, _ := requestscope.Allowed(id.AllowedRequests, method, target)
	return ok
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// mergeAttributes is the client's attributes overlaid with the grant's (the
// grant wins). When only one side has any, its map is returned itself,
// shared with the informer's object and never modified.
func mergeAttributes(client, grant map[string]latchkeyv1alpha1.AttributeValue) map[string]latchkeyv1alpha1.AttributeValue {
	switch {
	case len(grant) == 0:
		return client
	case len(client) == 0:
		return grant
	}
	out := make(map[string]latchkeyv1alpha1.AttributeValue, len(client)+len(grant))
	for k, v := range client {
		out[k] = v
	}
	for k, v := range grant {
		out[k] = v
	}
	return out
}

// attributeHeaders yields the response header (canonical name, value) of
// each of the identity's attributes. An entry the schema would have refused
// (a key that is not a DNS label, a value that is not short printable
// ASCII) is left out rather than sent: it could forge or split a header.
func attributeHeaders(id Identity) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, v := range id.Attributes {
			if !attributeKey(k) || !attributeValue(string(v)) {
				continue
			}
			if !yield(attributeHeaderName(k), string(v)) {
				return
			}
		}
	}
}

// attributeHeaderName is "X-Latchkey-Attr-" and the key in canonical
// header case ("rate-tier" → "X-Latchkey-Attr-Rate-Tier"), built with one
// allocation. k is a valid attribute key (lower case, digits, '-').
func attributeHeaderName(k string) string {
	var b strings.Builder
	b.Grow(len(HeaderAttributePrefix) + len(k))
	b.WriteString(HeaderAttributePrefix)
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper = c == '-'
		b.WriteByte(c)
	}
	return b.String()
}

func attributeKey(k string) bool {
	if k == "" || len(k) > 63 || k[0] == '-' || k[len(k)-1] == '-' {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func attributeValue(v string) bool {
	if v == "" || len(v) > 64 || v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
