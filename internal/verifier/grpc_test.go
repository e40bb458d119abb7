package verifier

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
)

func checkReq(headers, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.7"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/blogs/1", Headers: headers}},
		ContextExtensions: ext,
	}}
}

// BenchmarkGRPCCheck is the gRPC Check's own cost per request, without the
// network (BenchmarkVerifyHandler's counterpart).
func BenchmarkGRPCCheck(b *testing.B) {
	s, tok := benchServer(b)
	a := newAuthorizationServer(s)
	for _, tc := range []struct {
		name, auth string
		allow      bool
	}{
		{"valid", "Bearer " + tok, true},
		{"unknown", "Bearer lk_abcdefghijklmnop_" + strings.Repeat("A", 43) + "000000", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := checkReq(map[string]string{":method": "GET", ":path": "/blogs/1", "authorization": tc.auth, "user-agent": "curl"},
				map[string]string{ContextExtensionPermission: "blogs.read"})
			b.ReportAllocs()
			for b.Loop() {
				resp, _ := a.Check(context.Background(), req)
				if (resp.GetStatus().GetCode() == int32(rpccode.Code_OK)) != tc.allow {
					b.Fatalf("answer %v", resp.GetStatus())
				}
			}
		})
	}
}

// FuzzCheckRequest sends arbitrary headers and context_extensions through
// Check over an in-memory store: it never panics nor answers an error,
// allows only the one valid credential, never removes a header it sets, and
// removes every request header that reads as X-Latchkey-* that it does not
// set.
func FuzzCheckRequest(f *testing.F) {
	s, tok := benchServer(f)
	a := newAuthorizationServer(s)
	f.Add("Bearer "+tok, "x-latchkey-client-id", "victim", "blogs.read", "", "10.0.0.1")
	f.Add("Bearer "+tok, "X_Latchkey_Allow_Login", "true", "", "2", "")
	f.Add("Basic !!!", "x.latchkey.tenant", "1", "blogs.write", "3", "::ffff:1.2.3.4, 5.6.7.8")
	f.Add("", "x-api-key", tok, "", "", "garbage")
	f.Fuzz(func(t *testing.T, authorization, hk, hv, perm, tenant, xff string) {
		headers := map[string]string{"authorization": authorization, "x-forwarded-for": xff}
		if hk != "" {
			headers[hk] = hv
		}
		resp, err := a.Check(context.Background(), checkReq(headers,
			map[string]string{ContextExtensionPermission: perm, ContextExtensionTenant: tenant}))
		if err != nil || resp == nil {
			t.Fatalf("Check answered an error: %v", err)
		}
		ok := resp.GetOkResponse()
		if resp.GetStatus().GetCode() != int32(rpccode.Code_OK) {
			if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() < 400 {
				t.Fatalf("a denial without a denied status: %v", resp)
			}
			return
		}
		if ok == nil {
			t.Fatal("OK without an ok_response")
		}
		p, perr := credentialFromHeaders(headers["authorization"], headers["x-api-key"])
		if perr != nil || p.bearer != tok && !p.basic {
			t.Fatalf("allowed a credential other than the valid one")
		}
		set := map[string]bool{}
		for _, h := range ok.GetHeaders() {
			set[h.GetHeader().GetKey()] = true
		}
		for _, r := range ok.GetHeadersToRemove() {
			if set[r] {
				t.Fatalf("%s is set and removed", r)
			}
		}
		for k := range headers {
			l := strings.ToLower(k)
			if readsAsLatchkey(k) && !set[l] && !containsString(ok.GetHeadersToRemove(), l) {
				t.Fatalf("client header %q reads as X-Latchkey-* and is neither set nor removed", k)
			}
		}
		if got := len(ok.GetHeaders()); got != 6 && got != 5 {
			t.Fatalf("%d identity headers set", got)
		}
	})
}

func TestReadsAsLatchkey(t *testing.T) {
	for name, want := range map[string]bool{
		"x-latchkey-client-id": true, "X_Latchkey_Allow_Login": true, "x.latchkey.tenant": true, "X-LATCHKEY-": true,
		"x-latchkeyz": false, "xlatchkey-a": false, "x-latchkey": false, "authorization": false, "x-latchkey1x": false,
	} {
		if got := readsAsLatchkey(name); got != want {
			t.Errorf("readsAsLatchkey(%q) = %v, want %v", name, got, want)
		}
	}
}
