package suite_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// scopeCase is one row of the request-scope table: a raw request line sent
// to a gateway, and the status each gateway answers. Zero nginx/traefik
// means want.
type scopeCase struct {
	name, method, target string
	want                 int
	// nginx is NGINX's own answer where it refuses the request before
	// asking the verifier (400), or routes it nowhere.
	nginx int
}

// scopeRules are the scoped grant's spec.allowedRequests.
var scopeRules = []string{"GET /blogs/reports", "* /blogs/drafts"}

// scopeTable: the allowed requests, other methods and prefixes, and the
// bypass attempts, each sent as raw bytes on the wire.
var scopeTable = []scopeCase{
	{name: "allowed", method: "GET", target: "/blogs/reports", want: 200},
	{name: "allowed under the prefix, with a query", method: "GET", target: "/blogs/reports/2026?x=1", want: 200},
	{name: "allowed any method on drafts", method: "DELETE", target: "/blogs/drafts/9", want: 200},
	{name: "other method", method: "POST", target: "/blogs/reports", want: 403},
	{name: "HEAD is not GET", method: "HEAD", target: "/blogs/reports", want: 403},
	{name: "other prefix", method: "GET", target: "/blogs/admin", want: 403},
	{name: "sibling that starts with the prefix", method: "GET", target: "/blogs/reportsX", want: 403},

	// Bypass attempts.
	{name: "dot-dot", method: "GET", target: "/blogs/reports/../admin", want: 403},
	{name: "encoded dot-dot", method: "GET", target: "/blogs/reports/%2e%2e/admin", want: 403},
	{name: "upper-case encoded dot-dot", method: "GET", target: "/blogs/reports/%2E%2E/admin", want: 403},
	{name: "half-encoded dot-dot", method: "GET", target: "/blogs/reports/.%2e/admin", want: 403},
	{name: "double-encoded dot-dot", method: "GET", target: "/blogs/reports/%252e%252e/admin", want: 403},
	{name: "encoded slash", method: "GET", target: "/blogs/reports%2F..%2Fadmin", want: 403},
	{name: "encoded backslash", method: "GET", target: "/blogs/reports%5C..%5Cadmin", want: 403},
	{name: "backslash", method: "GET", target: `/blogs/reports\..\admin`, want: 403},
	{name: "double slash", method: "GET", target: "/blogs/reports//../admin", want: 403},
	{name: "leading double slash", method: "GET", target: "//blogs/reports", want: 403},
	{name: "path parameter dot-dot (Tomcat)", method: "GET", target: "/blogs/reports/..;/admin", want: 403},
	{name: "path parameter", method: "GET", target: "/blogs/reports;x=1", want: 403},
	{name: "encoded question mark", method: "GET", target: "/blogs/reports%3F/../admin", want: 403},
	{name: "overlong UTF-8 slash", method: "GET", target: "/blogs/reports%c0%af..%c0%afadmin", want: 403},
	{name: "query hides nothing", method: "GET", target: "/blogs/admin?/blogs/reports", want: 403},
	{name: "absolute form", method: "GET", target: "http://evil/blogs/reports/../admin", want: 403},
	// NGINX refuses these itself (400): a NUL in the decoded path and a
	// method that is not upper case never reach the verifier.
	{name: "NUL", method: "GET", target: "/blogs/reports%00/../admin", want: 403, nginx: 400},
	{name: "lower-case method", method: "get", target: "/blogs/reports", want: 403, nginx: 400},
	{name: "mixed-case method", method: "Get", target: "/blogs/reports", want: 403, nginx: 400},
}

// rawRequest sends a request line and headers as written (no client-side
// cleaning of the target or method) and returns the status.
func rawRequest(f *fixture, base, method, target string, h [][2]string) int {
	f.t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	f.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: blogs.example\r\nConnection: close\r\n", method, target)
	for _, kv := range h {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], kv[1])
	}
	b.WriteString("\r\n")
	_, err = c.Write([]byte(b.String()))
	f.g.Expect(err).NotTo(HaveOccurred())
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	f.g.Expect(err).NotTo(HaveOccurred(), "%s %s", method, target)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// attrHeaders are the X-Latchkey-Attr-* headers an upstream received, in
// any spelling that reads as one.
func attrHeaders(h http.Header) map[string][]string {
	out := map[string][]string{}
	for k, vs := range h {
		if strings.HasPrefix(headerName(k), "x-latchkey-attr-") {
			out[k] = vs
		}
	}
	return out
}

// scopedFixture creates the client "blog" (plan: small) and the grants
// "scoped" (scopeRules, blogs.read, region: eu) and "plain" (blogs.read,
// unscoped) and returns their tokens.
func scopedFixture(f *fixture) (scoped, plain string) {
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "blog"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2",
		Attributes: map[string]latchkeyv1alpha1.AttributeValue{"plan": "small"}}}
	f.create(c)
	s := grant("scoped", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.read")
	s.Spec.AllowedRequests = scopeRules
	s.Spec.Attributes = map[string]latchkeyv1alpha1.AttributeValue{"region": "eu"}
	p := grant("plain", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.read")
	f.create(s)
	f.create(p)
	f.waitReady(s)
	f.waitReady(p)
	return f.secret("scoped")["token"], f.secret("plain")["token"]
}

// Acceptance 2 (HTTP, real NGINX): the request-scope table through the
// documented NGINX block, and the documented answers when the gateway does
// not pass the original request.
func TestNGINXRequestScope(t *testing.T) {
	nginx := nginxBinary(t)
	f := newFixture(t)
	verifierAddr := strings.TrimPrefix(f.url, "http://")
	scoped, plain := scopedFixture(f)
	block := docBlock(t, "nginx-auth-request")
	const docVerifier = "latchkey-verifier.latchkey-system.svc:8082"

	t.Run("nginx-auth-request", func(t *testing.T) {
		f := f.sub(t)
		up := newRecorder(t)
		base := startNGINX(f, nginx, block, docVerifier, verifierAddr, up.addr)
		for _, tc := range scopeTable {
			want := tc.want
			if tc.nginx != 0 {
				want = tc.nginx
			}
			n := up.count()
			got := rawRequest(f, base, tc.method, tc.target, [][2]string{{"Authorization", "Bearer " + scoped}})
			f.g.Expect(got).To(Equal(want), "%s: %s %s", tc.name, tc.method, tc.target)
			if want == http.StatusOK {
				f.g.Expect(up.count()).To(Equal(n+1), "%s: did not reach the upstream", tc.name)
			} else {
				f.g.Expect(up.count()).To(Equal(n), "%s: reached the upstream", tc.name)
			}
		}
		// The same bypass paths with the unscoped grant reach the upstream
		// (when NGINX routes them): the 403s above are the scope's.
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports/../admin", [][2]string{{"Authorization", "Bearer " + plain}})).To(Equal(http.StatusOK))
		f.g.Expect(rawRequest(f, base, "POST", "/blogs/reports", [][2]string{{"Authorization", "Bearer " + plain}})).To(Equal(http.StatusOK))

		// Attributes: the client's plan and the grant's region; the block
		// sets only the plan, replacing the client's false one.
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports", [][2]string{{"Authorization", "Bearer " + scoped},
			{"X-Latchkey-Attr-Plan", "enterprise"}, {"x-latchkey-attr-plan", "enterprise"}})).To(Equal(http.StatusOK))
		f.g.Expect(attrHeaders(up.last())).To(Equal(map[string][]string{"X-Latchkey-Attr-Plan": {"small"}}))
	})

	t.Run("gateway passes no original request", func(t *testing.T) {
		f := f.sub(t)
		up := newRecorder(t)
		// The documented block without its two X-Original-* lines.
		var kept []string
		for _, l := range strings.Split(block, "\n") {
			if !strings.Contains(l, "X-Original-") {
				kept = append(kept, l)
			}
		}
		f.g.Expect(len(kept)).To(Equal(len(strings.Split(block, "\n"))-2), "the block must pass X-Original-Method and X-Original-URI")
		base := startNGINX(f, nginx, strings.Join(kept, "\n"), docVerifier, verifierAddr, up.addr)
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports", [][2]string{{"Authorization", "Bearer " + scoped}})).To(Equal(http.StatusForbidden))
		// A client cannot supply them itself: the block passes no client header.
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports", [][2]string{{"Authorization", "Bearer " + scoped},
			{"X-Original-Method", "GET"}, {"X-Original-URI", "/blogs/reports"}})).To(Equal(http.StatusForbidden))
		f.g.Expect(up.count()).To(BeZero())
		// An unscoped credential needs none.
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports", [][2]string{{"Authorization", "Bearer " + plain}})).To(Equal(http.StatusOK))
	})

	// ingress-nginx passes the client's headers to the verifier next to its
	// own X-Original-URL: a client's X-Original-URI or X-Forwarded-Uri that
	// disagrees with it is refused, not believed.
	t.Run("ingress-nginx-generated", func(t *testing.T) {
		f := f.sub(t)
		up := newRecorder(t)
		base := startNGINX(f, nginx, docBlock(t, "ingress-nginx-generated"), "latchkey-verifier.latchkey-system.svc.cluster.local:8082", verifierAddr, up.addr)
		auth := [2]string{"Authorization", "Bearer " + scoped}
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports/7", [][2]string{auth})).To(Equal(http.StatusOK))
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/admin", [][2]string{auth})).To(Equal(http.StatusForbidden))
		f.g.Expect(rawRequest(f, base, "GET", "/blogs/reports/../admin", [][2]string{auth})).To(Equal(http.StatusForbidden))
		for _, spoof := range [][][2]string{
			{{"X-Original-URI", "/blogs/reports"}},
			{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/blogs/reports"}},
		} {
			f.g.Expect(rawRequest(f, base, "GET", "/blogs/admin", append(spoof, auth))).To(Equal(http.StatusForbidden), "spoofed %v", spoof)
		}
		f.g.Expect(rawRequest(f, base, "POST", "/blogs/reports", [][2]string{auth, {"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/blogs/reports"}})).
			To(Equal(http.StatusForbidden))
		f.g.Expect(up.count()).To(Equal(1))
	})
}

// Acceptance 3: the documented limit_req recipe in real NGINX. Each client
// has its own bucket (keyed by client id) in its plan's zone: past its rate a
// small-plan client gets 429 from NGINX, another small-plan client is not
// affected, and a large-plan client making the same requests is not limited.
func TestNGINXRateLimitByPlan(t *testing.T) {
	nginx := nginxBinary(t)
	f := newFixture(t)
	verifierAddr := strings.TrimPrefix(f.url, "http://")
	tokens := map[string]string{}
	for name, plan := range map[string]latchkeyv1alpha1.AttributeValue{"small-a": "small", "small-b": "small", "large": "large"} {
		c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: latchkeyv1alpha1.ApiClientSpec{
			Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2",
			Attributes: map[string]latchkeyv1alpha1.AttributeValue{"plan": plan}}}
		f.create(c)
		g := grant(name+"-token", name, latchkeyv1alpha1.CredentialTypeBearer)
		f.create(g)
		f.waitReady(g)
		tokens[name] = f.secret(g.Name)["token"]
	}
	up := newRecorder(t)
	// The limit_req block next to the auth_request block, whose /_latchkey
	// location it uses.
	base := startNGINXHTTP(f, nginx, docBlock(t, "nginx-limit-req-http"),
		docBlock(t, "nginx-auth-request")+docBlock(t, "nginx-limit-req"),
		"latchkey-verifier.latchkey-system.svc:8082", verifierAddr, up.addr)

	// Every request also claims the large plan: a client cannot pick its
	// plan, NGINX keys on the verifier's answer.
	burst := func(name string, n int) (ok, limited int) {
		for range n {
			switch code := rawRequest(f, base, "GET", "/reports/q1", [][2]string{{"Authorization", "Bearer " + tokens[name]},
				{"X-Latchkey-Attr-Plan", "large"}}); code {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				limited++
			default:
				t.Fatalf("%s: status %d", name, code)
			}
		}
		return ok, limited
	}
	const n = 12
	before := up.count()
	okA, limitedA := burst("small-a", n)
	t.Logf("small-a: %d passed, %d limited", okA, limitedA)
	f.g.Expect(limitedA).To(BeNumerically(">", 0), "the small-plan client was not limited")
	f.g.Expect(up.count()-before).To(Equal(okA), "a limited request reached the upstream")
	f.g.Expect(up.last().Get("X-Latchkey-Attr-Plan")).To(Equal("small"))

	okB, _ := burst("small-b", 1)
	f.g.Expect(okB).To(Equal(1), "small-b shares small-a's bucket: the zone is not keyed by client id")

	okL, limitedL := burst("large", n)
	f.g.Expect(limitedL).To(BeZero(), "the large-plan client was limited")
	f.g.Expect(okL).To(Equal(n))
	f.g.Expect(up.last().Get("X-Latchkey-Attr-Plan")).To(Equal("large"))
}
