package suite_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

// traefikModel runs the documented Traefik Middlewares as an HTTP proxy in
// front of the real verifier: ForwardAuth as Traefik's forwardauth.go does it
// (a GET to the address with the client's headers, filtered to
// authRequestHeaders, plus the X-Forwarded-* headers Traefik computes from
// the request; a non-2xx answer is passed on; on 2xx authResponseHeaders,
// then authResponseHeadersRegex), then the Headers middleware, then the
// upstream. Traefik itself cannot be built here; this is its contract.
type traefikModel struct {
	address             string
	authRequestHeaders  []string
	authResponseHeaders []string
	regex               *regexp.Regexp
	customRequest       map[string]string
	upstream            string

	mu       sync.Mutex
	lastAuth http.Header // the last request the verifier got
}

func newTraefikModel(t *testing.T, block, verifierAddr, upstreamAddr string) *traefikModel {
	t.Helper()
	type middleware struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			ForwardAuth *struct {
				Address                  string   `json:"address"`
				TrustForwardHeader       bool     `json:"trustForwardHeader"`
				AuthRequestHeaders       []string `json:"authRequestHeaders"`
				AuthResponseHeaders      []string `json:"authResponseHeaders"`
				AuthResponseHeadersRegex string   `json:"authResponseHeadersRegex"`
			} `json:"forwardAuth"`
			Headers *struct {
				CustomRequestHeaders map[string]string `json:"customRequestHeaders"`
			} `json:"headers"`
			Chain *struct {
				Middlewares []struct {
					Name string `json:"name"`
				} `json:"middlewares"`
			} `json:"chain"`
		} `json:"spec"`
	}
	byName := map[string]*middleware{}
	var chain *middleware
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(block, -1) {
		m := &middleware{}
		if err := yaml.Unmarshal([]byte(d), m); err != nil {
			t.Fatalf("traefik-forward-auth: %v", err)
		}
		byName[m.Metadata.Name] = m
		if m.Spec.Chain != nil {
			chain = m
		}
	}
	if chain == nil {
		t.Fatal("traefik-forward-auth: no chain Middleware")
	}
	tm := &traefikModel{upstream: upstreamAddr, customRequest: map[string]string{}}
	for i, ref := range chain.Spec.Chain.Middlewares {
		m := byName[ref.Name]
		switch {
		case m == nil:
			t.Fatalf("the chain references %q, which the block does not define", ref.Name)
		case m.Spec.ForwardAuth != nil:
			fa := m.Spec.ForwardAuth
			if i != 0 {
				t.Fatalf("ForwardAuth must come first in the chain")
			}
			if fa.TrustForwardHeader {
				t.Errorf("trustForwardHeader: true passes the client's own X-Forwarded-Uri and -Method to the verifier")
			}
			u, err := url.Parse(fa.Address)
			if err != nil || u.Host != "latchkey-verifier.latchkey-system.svc:8082" {
				t.Fatalf("forwardAuth.address %q: want the verifier's Service address", fa.Address)
			}
			u.Host = verifierAddr
			tm.address = u.String()
			tm.authRequestHeaders, tm.authResponseHeaders = fa.AuthRequestHeaders, fa.AuthResponseHeaders
			if fa.AuthResponseHeadersRegex != "" {
				tm.regex = regexp.MustCompile(fa.AuthResponseHeadersRegex)
			}
		case m.Spec.Headers != nil:
			for k, v := range m.Spec.Headers.CustomRequestHeaders {
				tm.customRequest[k] = v
			}
		default:
			t.Fatalf("the Traefik model does not know Middleware %q", ref.Name)
		}
	}
	if tm.address == "" {
		t.Fatal("the chain has no ForwardAuth middleware")
	}
	return tm
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (tm *traefikModel) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	fwd, _ := http.NewRequest(http.MethodGet, tm.address, nil)
	for k, vs := range req.Header {
		fwd.Header[k] = append([]string(nil), vs...)
	}
	for _, h := range hopHeaders {
		fwd.Header.Del(h)
	}
	if len(tm.authRequestHeaders) > 0 {
		kept := http.Header{}
		for _, h := range tm.authRequestHeaders {
			if vs := fwd.Header.Values(h); len(vs) > 0 {
				kept[http.CanonicalHeaderKey(h)] = vs
			}
		}
		fwd.Header = kept
	}
	// writeHeader in Traefik's forwardauth.go, trustForwardHeader false:
	// each computed from the request, replacing the client's.
	if ip, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		fwd.Header.Set("X-Forwarded-For", ip)
	}
	fwd.Header.Set("X-Forwarded-Method", req.Method)
	fwd.Header.Set("X-Forwarded-Proto", "http")
	fwd.Header.Set("X-Forwarded-Host", req.Host)
	fwd.Header.Set("X-Forwarded-Uri", req.URL.RequestURI())
	tm.mu.Lock()
	tm.lastAuth = fwd.Header.Clone()
	tm.mu.Unlock()

	resp, err := http.DefaultClient.Do(fwd)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	for _, h := range tm.authResponseHeaders {
		k := http.CanonicalHeaderKey(h)
		req.Header.Del(k)
		if len(resp.Header[k]) > 0 {
			req.Header[k] = append([]string(nil), resp.Header[k]...)
		}
	}
	if tm.regex != nil {
		for k := range req.Header {
			if tm.regex.MatchString(k) {
				req.Header.Del(k)
			}
		}
		for k, vs := range resp.Header {
			if tm.regex.MatchString(k) {
				req.Header[k] = append([]string(nil), vs...)
			}
		}
	}
	for k, v := range tm.customRequest {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	out := &http.Request{Method: req.Method, Header: req.Header, Host: req.Host,
		URL: &url.URL{Scheme: "http", Host: tm.upstream, Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}}
	up, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer func() { _ = up.Body.Close() }()
	w.WriteHeader(up.StatusCode)
	_, _ = io.Copy(w, up.Body)
}

func (tm *traefikModel) lastAuthRequest() http.Header {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.lastAuth
}

// Acceptance 2 (Traefik's ForwardAuth contract) and item 5: the documented
// Traefik Middlewares in front of the real verifier, with the headers Traefik
// sends (X-Forwarded-Method, -Uri, -Proto, -Host, -For). The request-scope
// table, the attributes the upstream receives, and spoofed X-Latchkey-Attr-*.
func TestTraefikForwardAuthContract(t *testing.T) {
	f := newFixture(t)
	verifierAddr := strings.TrimPrefix(f.url, "http://")
	scoped, plain := scopedFixture(f)
	up := newRecorder(t)
	tm := newTraefikModel(t, docBlock(t, "traefik-forward-auth"), verifierAddr, up.addr)
	srv := httptest.NewServer(tm)
	t.Cleanup(srv.Close)

	for _, tc := range scopeTable {
		n := up.count()
		got := rawRequest(f, srv.URL, tc.method, tc.target, [][2]string{{"Authorization", "Bearer " + scoped}})
		f.g.Expect(got).To(Equal(tc.want), "%s: %s %s", tc.name, tc.method, tc.target)
		if tc.want == http.StatusOK {
			f.g.Expect(up.count()).To(Equal(n+1), "%s: did not reach the upstream", tc.name)
		} else {
			f.g.Expect(up.count()).To(Equal(n), "%s: reached the upstream", tc.name)
		}
	}

	// What the verifier got: only the credential and Traefik's own headers,
	// whatever the client sent under those names.
	f.g.Expect(rawRequest(f, srv.URL, "DELETE", "/blogs/drafts/9?x=1", [][2]string{{"Authorization", "Bearer " + scoped},
		{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/blogs/reports"}, {"X-Original-URI", "/blogs/reports"}})).To(Equal(http.StatusOK))
	auth := tm.lastAuthRequest()
	f.g.Expect(auth.Get("X-Forwarded-Method")).To(Equal("DELETE"))
	f.g.Expect(auth.Get("X-Forwarded-Uri")).To(Equal("/blogs/drafts/9?x=1"))
	f.g.Expect(auth.Get("X-Forwarded-Proto")).To(Equal("http"))
	f.g.Expect(auth.Get("X-Forwarded-Host")).To(Equal("blogs.example"))
	f.g.Expect(auth.Get("X-Forwarded-For")).To(Equal("127.0.0.1"))
	f.g.Expect(auth.Values("X-Original-Uri")).To(BeEmpty(), "authRequestHeaders must keep the client's headers from the verifier")

	// A client's false method and path cannot widen the scope.
	f.g.Expect(rawRequest(f, srv.URL, "POST", "/blogs/admin", [][2]string{{"Authorization", "Bearer " + scoped},
		{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/blogs/reports"}})).To(Equal(http.StatusForbidden))

	// Attributes: every X-Latchkey-Attr-* of the verifier's answer (the
	// client's plan and the grant's region), none of the client's.
	f.g.Expect(rawRequest(f, srv.URL, "GET", "/blogs/reports", [][2]string{{"Authorization", "Bearer " + scoped},
		{"X-Latchkey-Attr-Plan", "enterprise"}, {"X-Latchkey-Attr-Quota", "unlimited"}, {"X_Latchkey_Attr_Plan", "enterprise"}})).To(Equal(http.StatusOK))
	f.g.Expect(attrHeaders(up.last())).To(Equal(map[string][]string{"X-Latchkey-Attr-Plan": {"small"}, "X-Latchkey-Attr-Region": {"eu"}}))
	f.g.Expect(up.last().Values("Authorization")).To(BeEmpty())

	// The unscoped grant: the same paths pass (the 403s above are the
	// scope's), with the client's attributes only.
	f.g.Expect(rawRequest(f, srv.URL, "POST", "/blogs/admin", [][2]string{{"Authorization", "Bearer " + plain},
		{"X-Latchkey-Attr-Region", "us"}})).To(Equal(http.StatusOK))
	f.g.Expect(attrHeaders(up.last())).To(Equal(map[string][]string{"X-Latchkey-Attr-Plan": {"small"}}))
}
