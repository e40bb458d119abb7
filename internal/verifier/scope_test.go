package verifier

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/requestscope"
)

func TestOriginalRequest(t *testing.T) {
	for _, tc := range []struct {
		name         string
		target       string // the request to the verifier
		method       string
		h            [][2]string
		wantM, wantT string
		ok           bool
	}{
		{name: "nothing passed", target: "/v1/verify"},
		{name: "nothing passed, query", target: "/v1/verify?permission=blogs.read"},
		{name: "NGINX", target: "/v1/verify", h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URI", "/api/v1/reports?x=1"}},
			wantM: "GET", wantT: "/api/v1/reports?x=1", ok: true},
		{name: "ingress-nginx", target: "/v1/verify?permission=x", h: [][2]string{{"X-Original-Method", "POST"}, {"X-Original-URL", "https://blogs.example:8443/api/v1/reports?x"}},
			wantM: "POST", wantT: "/api/v1/reports?x", ok: true},
		{name: "ingress-nginx, Host with a '?'", h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URL", "http://x?/api/v1/reports/admin"}},
			target: "/v1/verify", wantM: "GET", wantT: "/api/v1/reports/admin", ok: true},
		{name: "Traefik", target: "/v1/verify?permission=blogs.read", h: [][2]string{{"X-Forwarded-Method", "DELETE"}, {"X-Forwarded-Uri", "/api/v1/drafts/9"},
			{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "blogs"}, {"X-Forwarded-For", "10.0.0.1"}},
			wantM: "DELETE", wantT: "/api/v1/drafts/9", ok: true},
		{name: "Envoy suffix", method: "PUT", target: "/v1/verify/api/v1/drafts/9?x=%2F",
			wantM: "PUT", wantT: "/api/v1/drafts/9?x=%2F", ok: true},
		{name: "Envoy suffix, root", method: "GET", target: "/v1/verify/", wantM: "GET", wantT: "/", ok: true},
		{name: "Envoy suffix, raw encoding kept", method: "GET", target: "/v1/verify/api/v1/reports/%2e%2e/admin",
			wantM: "GET", wantT: "/api/v1/reports/%2e%2e/admin", ok: true},
		{name: "two gateways that agree", target: "/v1/verify/api/v1/reports", method: "GET",
			h: [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/api/v1/reports"}}, wantM: "GET", wantT: "/api/v1/reports", ok: true},

		// Refused: the verifier cannot tell what the request was.
		{name: "client's X-Original-URI beside ingress-nginx's URL", target: "/v1/verify",
			h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URI", "/api/v1/reports"}, {"X-Original-URL", "http://blogs/admin"}}},
		{name: "client's X-Forwarded-Uri beside NGINX's", target: "/v1/verify",
			h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URI", "/admin"}, {"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/api/v1/reports"}}},
		{name: "client's X-Forwarded-Method differs", target: "/v1/verify",
			h: [][2]string{{"X-Original-Method", "DELETE"}, {"X-Original-URI", "/api/v1/reports"}, {"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/api/v1/reports"}}},
		{name: "header beside a different Envoy suffix", method: "GET", target: "/v1/verify/admin",
			h: [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/api/v1/reports"}}},
		{name: "URI without a method", target: "/v1/verify", h: [][2]string{{"X-Original-URI", "/api/v1/reports"}}},
		{name: "URI twice", target: "/v1/verify", h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URI", "/api/v1/reports"}, {"X-Original-URI", "/admin"}}},
		{name: "method twice", target: "/v1/verify", h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-Method", "DELETE"}, {"X-Original-URI", "/api/v1/reports"}}},
		{name: "URL not http", target: "/v1/verify", h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URL", "/api/v1/reports"}}},
		{name: "URL without a path", target: "/v1/verify", h: [][2]string{{"X-Original-Method", "GET"}, {"X-Original-URL", "http://blogs"}}},
		{name: "encoded slash after /v1/verify", method: "GET", target: "/v1/verify%2Fapi/v1/reports"},
		{name: "method only", target: "/v1/verify", h: [][2]string{{"X-Original-Method", "GET"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodGet
			}
			r := httptest.NewRequest(m, tc.target, nil)
			for _, kv := range tc.h {
				k := http.CanonicalHeaderKey(kv[0])
				r.Header[k] = append(r.Header[k], kv[1])
			}
			gotM, gotT, ok := originalRequest(r)
			if ok != tc.ok || gotM != tc.wantM && ok || gotT != tc.wantT && ok {
				t.Errorf("originalRequest = %q, %q, %v; want %q, %q, %v", gotM, gotT, ok, tc.wantM, tc.wantT, tc.ok)
			}
		})
	}
}

// scopeServer is memServer whose grant "g" has these allowedRequests and
// attributes, and whose client "c" has clientAttrs.
func scopeServer(t testing.TB, allowed []string, clientAttrs, grantAttrs map[string]latchkeyv1alpha1.AttributeValue) (*Server, string, *memWorld) {
	s, tok, w := memServer(t)
	o, _, err := w.grants.GetByKey("ns/g")
	if err != nil {
		t.Fatal(err)
	}
	g := o.(*latchkeyv1alpha1.CredentialGrant).DeepCopy()
	g.Spec.AllowedRequests, g.Spec.Attributes = allowed, grantAttrs
	c := w.client.DeepCopy()
	c.Spec.Attributes = clientAttrs
	if err := w.grants.Update(g); err != nil {
		t.Fatal(err)
	}
	if err := w.clients.Update(c); err != nil {
		t.Fatal(err)
	}
	w.client = c
	return s, tok, w
}

// TestVerifyRequestScope is the request-scope table over /v1/verify, with
// the original request passed as NGINX, Traefik and Envoy pass it.
func TestVerifyRequestScope(t *testing.T) {
	s, tok, w := scopeServer(t, []string{"GET /api/v1/reports", "* /api/v1/drafts"}, nil, nil)
	type passAs func(r *http.Request, method, uri string) *http.Request
	gateways := map[string]passAs{
		"nginx": func(r *http.Request, m, u string) *http.Request {
			r.Header["X-Original-Method"], r.Header["X-Original-Uri"] = []string{m}, []string{u}
			return r
		},
		"traefik": func(r *http.Request, m, u string) *http.Request {
			r.Header["X-Forwarded-Method"], r.Header["X-Forwarded-Uri"] = []string{m}, []string{u}
			r.Header["X-Forwarded-Proto"], r.Header["X-Forwarded-Host"] = []string{"https"}, []string{"blogs"}
			return r
		},
		"envoy": func(_ *http.Request, m, u string) *http.Request {
			return httptest.NewRequest(m, "/v1/verify"+u, nil)
		},
	}
	for _, tc := range []struct {
		name, method, uri string
		want              int
	}{
		{"allowed", "GET", "/api/v1/reports", http.StatusOK},
		{"allowed under the prefix, with a query", "GET", "/api/v1/reports/2026?x=1", http.StatusOK},
		{"any method on drafts", "DELETE", "/api/v1/drafts/9", http.StatusOK},
		{"other method", "POST", "/api/v1/reports", http.StatusForbidden},
		{"other prefix", "GET", "/api/v1/admin", http.StatusForbidden},
		{"sibling", "GET", "/api/v1/reportsX", http.StatusForbidden},
		{"dot-dot", "GET", "/api/v1/reports/../admin", http.StatusForbidden},
		{"encoded dot-dot", "GET", "/api/v1/reports/%2e%2e/admin", http.StatusForbidden},
		{"encoded slash", "GET", "/api/v1/reports%2F..%2F..%2Fadmin", http.StatusForbidden},
		{"encoded backslash", "GET", "/api/v1/reports%5C..%5Cadmin", http.StatusForbidden},
		{"double slash", "GET", "/api/v1/reports//../admin", http.StatusForbidden},
		{"path parameter", "GET", "/api/v1/reports/..;/admin", http.StatusForbidden},
		{"double-encoded dot-dot", "GET", "/api/v1/reports/%252e%252e/admin", http.StatusForbidden},
		{"NUL", "GET", "/api/v1/reports%00/../../admin", http.StatusForbidden},
		{"lower-case method", "get", "/api/v1/reports", http.StatusForbidden},
		{"mixed-case method", "Get", "/api/v1/reports", http.StatusForbidden},
		{"query hides nothing", "GET", "/admin?/api/v1/reports", http.StatusForbidden},
	} {
		for gw, pass := range gateways {
			if gw == "envoy" && strings.ContainsAny(tc.uri, "\\") {
				continue
			}
			t.Run(gw+"/"+tc.name, func(t *testing.T) {
				r := pass(httptest.NewRequest(http.MethodGet, "/v1/verify?permission=blogs.read", nil), tc.method, tc.uri)
				r.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, r)
				if rec.Code != tc.want {
					t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
				}
				if tc.want == http.StatusForbidden && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) {
					t.Errorf("403 without the insufficient_scope challenge: %q", rec.Header().Get("WWW-Authenticate"))
				}
			})
		}
	}

	// Fail closed: the gateway passed nothing, or something ambiguous.
	for name, h := range map[string]http.Header{
		"missing original request": {},
		"missing original URI":     {"X-Original-Method": {"GET"}},
		"missing original method":  {"X-Original-Uri": {"/api/v1/reports"}},
		"spoofed URI beside ingress-nginx's URL": {"X-Original-Method": {"GET"}, "X-Original-Uri": {"/api/v1/reports"},
			"X-Original-Url": {"http://blogs/admin"}},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.Header = h
			r.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "did not pass the original method and path") {
				t.Fatalf("status %d, %s; want 403 saying the gateway did not pass the original request", rec.Code, rec.Body)
			}
		})
	}

	// An unscoped credential (the client's own secret) needs no original
	// request, as before.
	t.Run("unscoped needs nothing", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
		r.SetBasicAuth(w.clientID, w.clientSecret)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", rec.Code)
		}
	})
}

// TestAttributes: the client's attributes overlaid with the grant's, as
// X-Latchkey-Attr-* headers on 200, in /v1/current and in introspection.
func TestAttributes(t *testing.T) {
	s, tok, w := scopeServer(t, nil,
		map[string]latchkeyv1alpha1.AttributeValue{"plan": "small", "region": "eu", "rate-tier": "2"},
		map[string]latchkeyv1alpha1.AttributeValue{"plan": "large", "bad\r\nx": "y", "note": "a\r\nX-Latchkey-Client-Id: victim"})
	r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	got := map[string][]string{}
	for k, v := range rec.Header() {
		if strings.HasPrefix(k, HeaderAttributePrefix) {
			got[k] = v
		}
	}
	want := map[string][]string{"X-Latchkey-Attr-Plan": {"large"}, "X-Latchkey-Attr-Region": {"eu"}, "X-Latchkey-Attr-Rate-Tier": {"2"}}
	if !equalHeaders(got, want) {
		t.Errorf("attribute headers %v, want %v (the grant's plan wins; invalid entries are left out)", got, want)
	}
	if c := rec.Header().Values(HeaderClientID); len(c) != 1 || c[0] != "id_x" {
		t.Errorf("X-Latchkey-Client-Id = %q", c)
	}

	// The client's own secret carries the client's attributes only.
	r = httptest.NewRequest(http.MethodGet, "/v1/current", nil)
	r.SetBasicAuth(w.clientID, w.clientSecret)
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	var cur struct {
		Attributes map[string]string `json:"attributes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &cur); err != nil || cur.Attributes["plan"] != "small" || len(cur.Attributes) != 3 {
		t.Errorf("/v1/current attributes = %v (%v), want the client's three", cur.Attributes, err)
	}

	// Introspection, by the client (it holds blogs.read), of the grant.
	s.opts.IntrospectionPermission = "blogs.read"
	r = httptest.NewRequest(http.MethodPost, "/oauth2/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(w.clientID, w.clientSecret)
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	var intro struct {
		Active     bool              `json:"active"`
		Attributes map[string]string `json:"attributes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &intro); err != nil || !intro.Active || intro.Attributes["plan"] != "large" {
		t.Errorf("introspection = %s, want active with attributes.plan large", rec.Body)
	}
}

func equalHeaders(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if len(b[k]) != len(v) || len(v) != 1 || b[k][0] != v[0] {
			return false
		}
	}
	return true
}

func TestAttributeHeaderName(t *testing.T) {
	for k, want := range map[string]string{"plan": "X-Latchkey-Attr-Plan", "rate-tier": "X-Latchkey-Attr-Rate-Tier", "2x": "X-Latchkey-Attr-2x", "a-1b": "X-Latchkey-Attr-A-1b"} {
		if got := attributeHeaderName(k); got != want || got != http.CanonicalHeaderKey(got) {
			t.Errorf("attributeHeaderName(%q) = %q, want %q, canonical", k, got, want)
		}
	}
}

func TestMergeAttributesSharesOneSide(t *testing.T) {
	c := map[string]latchkeyv1alpha1.AttributeValue{"plan": "small"}
	if got := mergeAttributes(c, nil); len(got) != 1 {
		t.Fatal("lost the client's attributes")
	}
	if n := testing.AllocsPerRun(100, func() { _ = mergeAttributes(c, nil); _ = mergeAttributes(nil, c) }); n != 0 {
		t.Errorf("merging with an empty side allocates %v times, want 0 (the map is shared)", n)
	}
	g := map[string]latchkeyv1alpha1.AttributeValue{"plan": "large"}
	if got := mergeAttributes(c, g); got["plan"] != "large" || c["plan"] != "small" {
		t.Errorf("merge = %v, client now %v: the grant must win without modifying the client's map", got, c)
	}
}

// FuzzVerifyScoped sends arbitrary original requests, in every form a
// gateway passes them, for a scoped grant: the verifier never fails, and a
// 200 is only for a request that net/url and path.Clean read as inside a
// rule whose method matches.
func FuzzVerifyScoped(f *testing.F) {
	rules := []string{"GET /api/v1/reports", "* /api/v1/drafts"}
	s, tok, _ := scopeServer(f, rules, nil, nil)
	for _, u := range []string{"/api/v1/reports", "/api/v1/reports/../admin", "/api/v1/reports/%2e%2e/x", "/api/v1/drafts//x", "/api/v1/reports;x"} {
		f.Add(uint8(0), "GET", u)
		f.Add(uint8(3), "GET", u)
	}
	f.Fuzz(func(t *testing.T, how uint8, method, uri string) {
		var r *http.Request
		switch how % 4 {
		case 0:
			r = httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.Header["X-Original-Method"], r.Header["X-Original-Uri"] = []string{method}, []string{uri}
		case 1:
			r = httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.Header["X-Forwarded-Method"], r.Header["X-Forwarded-Uri"] = []string{method}, []string{uri}
		case 2:
			r = httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			r.Header["X-Original-Method"], r.Header["X-Original-Url"] = []string{method}, []string{"http://h" + uri}
		default:
			if !requestscope.ValidMethod(method) || strings.ContainsAny(uri, " \r\n\t#") || !strings.HasPrefix(uri, "/") {
				return // not a request line Go's server would accept
			}
			r = httptest.NewRequest(http.MethodGet, "/v1/verify/", nil)
			r.Method, r.RequestURI = method, "/v1/verify"+uri
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		switch rec.Code {
		case http.StatusForbidden:
			return
		case http.StatusOK:
		default:
			t.Fatalf("status %d", rec.Code)
		}
		raw, _, _ := strings.Cut(uri, "?")
		if how%4 == 2 {
			// A full URL: its path is what follows the authority, which ends
			// at the first "/" and may take in the start of uri
			// ("http://h" + "0/api/…" is host h0, path /api/…).
			rest := "h" + uri
			i := strings.IndexByte(rest, '/')
			if i < 0 {
				t.Fatalf("200 for %q, which has no path", "http://"+rest)
			}
			raw, _, _ = strings.Cut(rest[i:], "?")
		}
		dec, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("200 for %q, which net/url cannot decode", uri)
		}
		clean := path.Clean(dec)
		for _, s := range rules {
			rule, _ := requestscope.ParseRule(s)
			if (rule.Method == "*" || rule.Method == method) && (clean == rule.Prefix || strings.HasPrefix(clean, rule.Prefix+"/")) {
				return
			}
		}
		t.Fatalf("200 for %s %q (read as %q): outside every rule", method, uri, clean)
	})
}

// BenchmarkVerifyScoped is BenchmarkVerifyHandler/valid for a grant with
// request scopes and attributes (the client's plan, the grant's region),
// passed the original request as NGINX passes it: the cost of both features
// next to the unscoped figure.
func BenchmarkVerifyScoped(b *testing.B) {
	s, tok, _ := scopeServer(b, []string{"GET /api/v1/reports", "* /api/v1/drafts"},
		map[string]latchkeyv1alpha1.AttributeValue{"plan": "small"}, map[string]latchkeyv1alpha1.AttributeValue{"region": "eu"})
	for _, tc := range []struct{ name, uri string }{
		{"plain-path", "/api/v1/reports/2026?x=1"},
		{"dot-segments", "/api/v1/reports/./2026/../2027"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set(HeaderRequirePermission, "blogs.read")
			req.Header["X-Original-Method"], req.Header["X-Original-Uri"] = []string{"GET"}, []string{tc.uri}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
