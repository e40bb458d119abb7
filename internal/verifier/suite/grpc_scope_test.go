package suite_test

import (
	"net/http"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/gomega"
)

// Issue 12, acceptance 2 (gRPC): the request-scope table of the NGINX test,
// asked over ext_authz gRPC with the CheckRequest's method and path as Envoy
// sends them: the same answers (NGINX's own 400s aside: Envoy passes such
// requests on, and the verifier refuses them itself). A scoped grant whose
// CheckRequest carries no path is refused; an unscoped one is not. An
// allowed answer sets the attribute headers (the grant's and the client's)
// in headers_to_set and removes a client's own X-Latchkey-Attr-*.
func TestGRPCRequestScope(t *testing.T) {
	f, authz, _ := grpcFixture(t)
	scoped, plain := scopedFixture(f)

	check := func(tok, method, path string, extra http.Header) *authv3.CheckResponse {
		h := bearer(tok)
		for k, v := range extra {
			h[k] = v
		}
		req := checkRequest(h, "")
		req.Attributes.Request.Http.Method, req.Attributes.Request.Http.Path = method, path
		delete(req.Attributes.Request.Http.Headers, ":method")
		delete(req.Attributes.Request.Http.Headers, ":path")
		resp, err := authz.Check(f.ctx, req)
		f.g.Expect(err).NotTo(HaveOccurred())
		return resp
	}
	status := func(resp *authv3.CheckResponse) int {
		if resp.GetOkResponse() != nil {
			return http.StatusOK
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	for _, c := range scopeTable {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(status(check(scoped, c.method, c.target, nil))).To(Equal(c.want), "%s %s", c.method, c.target)
			if c.method == "GET" || c.method == "POST" || c.method == "HEAD" || c.method == "DELETE" {
				g.Expect(status(check(plain, c.method, c.target, nil))).To(Equal(http.StatusOK), "an unscoped grant, %s %s", c.method, c.target)
			}
		})
	}
	t.Run("no path passed", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(status(check(scoped, "GET", "", nil))).To(Equal(http.StatusForbidden))
		g.Expect(status(check(scoped, "", "/blogs/reports", nil))).To(Equal(http.StatusForbidden))
		g.Expect(status(check(plain, "GET", "", nil))).To(Equal(http.StatusOK))
	})
	t.Run("attributes", func(t *testing.T) {
		g := NewWithT(t)
		resp := check(scoped, "GET", "/blogs/reports", http.Header{"X-Latchkey-Attr-Quota": {"unlimited"}, "X-Latchkey-Attr-Plan": {"large"}})
		ok := resp.GetOkResponse()
		g.Expect(ok).NotTo(BeNil())
		set := map[string]string{}
		for _, h := range ok.GetHeaders() {
			set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		g.Expect(set).To(HaveKeyWithValue("x-latchkey-attr-plan", "small"), "the client's attribute, over the request's own")
		g.Expect(set).To(HaveKeyWithValue("x-latchkey-attr-region", "eu"), "the grant's attribute")
		g.Expect(ok.GetHeadersToRemove()).To(ContainElement("x-latchkey-attr-quota"))
		g.Expect(ok.GetHeadersToRemove()).NotTo(ContainElement("x-latchkey-attr-plan"), "a name set is overwritten, not removed")
	})
}
