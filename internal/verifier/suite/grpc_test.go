package suite_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/gomega"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/servingcert"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// answer is a forward-auth decision as a gateway sees it, over either
// protocol: the status, the challenges, Retry-After, the JSON body (nil for
// none) and, on 200, the headers for the upstream.
type answer struct {
	Status     int
	Challenges []string
	RetryAfter string
	Body       map[string]any
	Identity   map[string]string
}

// httpAnswer asks /v1/verify.
func (f *fixture) httpAnswer(g Gomega, h http.Header, query string) answer {
	resp := f.get("/v1/verify/orig/path"+query, h)
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	a := answer{Status: resp.StatusCode, Challenges: resp.Header.Values("WWW-Authenticate"), RetryAfter: resp.Header.Get("Retry-After")}
	if len(raw) > 0 {
		g.Expect(json.Unmarshal(raw, &a.Body)).To(Succeed(), string(raw))
	}
	if a.Status == http.StatusOK {
		a.Identity = map[string]string{}
		for _, n := range identityHeaders {
			if v := resp.Header.Get(n); v != "" {
				a.Identity[n] = v
			}
		}
	}
	return a
}

// checkRequest is what Envoy sends for a request with these headers to the
// path /orig/path: header names in lower case, several values joined by ",",
// the route's requirements (the HTTP query's) as context_extensions.
func checkRequest(h http.Header, query string) *authv3.CheckRequest {
	headers := map[string]string{":method": "GET", ":path": "/orig/path", ":authority": "blogs.example"}
	for k, vs := range h {
		k = strings.ToLower(k)
		if old, ok := headers[k]; ok {
			vs = append([]string{old}, vs...)
		}
		headers[k] = strings.Join(vs, ",")
	}
	ext := map[string]string{}
	if q, _ := url.ParseQuery(strings.TrimPrefix(query, "?")); len(q) > 0 {
		for k, vs := range q {
			ext[k] = strings.Join(vs, ",")
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/orig/path", Host: "blogs.example", Scheme: "https", Protocol: "HTTP/1.1", Headers: headers}},
		ContextExtensions: ext,
	}}
}

// grpcAnswer reads a CheckResponse as an answer, checking that the gRPC
// status agrees with the HTTP status.
func grpcAnswer(g Gomega, resp *authv3.CheckResponse) answer {
	var a answer
	code := rpccode.Code(resp.GetStatus().GetCode())
	if code == rpccode.Code_OK {
		ok := resp.GetOkResponse()
		g.Expect(ok).NotTo(BeNil(), "OK without an ok_response")
		a.Status, a.Identity = http.StatusOK, map[string]string{}
		for _, o := range ok.GetHeaders() {
			g.Expect(o.GetAppendAction()).To(Equal(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD), o.GetHeader().GetKey())
			a.Identity[textproto.CanonicalMIMEHeaderKey(o.GetHeader().GetKey())] = o.GetHeader().GetValue()
		}
		return a
	}
	d := resp.GetDeniedResponse()
	g.Expect(d).NotTo(BeNil(), "a denial without a denied_response")
	a.Status = int(d.GetStatus().GetCode())
	want := map[int]rpccode.Code{401: rpccode.Code_UNAUTHENTICATED, 403: rpccode.Code_PERMISSION_DENIED,
		429: rpccode.Code_RESOURCE_EXHAUSTED, 503: rpccode.Code_UNAVAILABLE}[a.Status]
	g.Expect(code).To(Equal(want), "gRPC status of HTTP %d", a.Status)
	for _, o := range d.GetHeaders() {
		switch strings.ToLower(o.GetHeader().GetKey()) {
		case "www-authenticate":
			a.Challenges = append(a.Challenges, o.GetHeader().GetValue())
		case "retry-after":
			a.RetryAfter = o.GetHeader().GetValue()
		}
	}
	if d.GetBody() != "" {
		g.Expect(json.Unmarshal([]byte(d.GetBody()), &a.Body)).To(Succeed(), d.GetBody())
	}
	return a
}

// grpcClient connects to the verifier's gRPC port.
func grpcClient(t *testing.T, addr string, creds credentials.TransportCredentials) (authv3.AuthorizationClient, healthpb.HealthClient) {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn), healthpb.NewHealthClient(conn)
}

func grpcListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Acceptance 1 (gRPC): every outcome of TestVerify gives the same decision
// over envoy.service.auth.v3.Authorization/Check as over /v1/verify, asked
// of the same running verifier one after the other.
// grpcFixture is a fixture whose verifier also serves gRPC, once its health
// says SERVING.
func grpcFixture(t *testing.T) (*fixture, authv3.AuthorizationClient, healthpb.HealthClient) {
	gln := grpcListener(t)
	f := newFixture(t, func(o *operator.Options) { o.VerifierGRPCListener = gln })
	authz, healthc := grpcClient(t, gln.Addr().String(), nil)
	f.g.Eventually(func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := healthc.Check(f.ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
		if err != nil {
			return -1
		}
		return r.GetStatus()
	}).Should(Equal(healthpb.HealthCheckResponse_SERVING))
	return f, authz, healthc
}

func TestGRPCCheckMatchesVerify(t *testing.T) {
	f, authz, _ := grpcFixture(t)

	// TestVerify's table (verify_test.go), case for case.
	secrets, cases := verifyTable(f)
	cs, b, k, ba := secrets.client, secrets.bearer, secrets.key, secrets.basic
	validBefore, forbiddenBefore := counter("grpc_check", "valid"), counter("grpc_check", "forbidden")
	var valid, forbidden float64
	for _, tc := range cases {
		switch tc.want {
		case 200:
			valid++
		case 403:
			forbidden++
		}
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			overHTTP := f.httpAnswer(g, tc.h, tc.query)
			resp, err := authz.Check(f.ctx, checkRequest(tc.h, tc.query))
			g.Expect(err).NotTo(HaveOccurred(), "Check must answer OK or denied, never an error")
			overGRPC := grpcAnswer(g, resp)
			g.Expect(overHTTP.Status).To(Equal(tc.want))
			g.Expect(overGRPC).To(Equal(overHTTP), "gRPC and HTTP decide alike")
			if tc.want == 200 {
				g.Expect(overGRPC.Identity).To(HaveKeyWithValue(verifier.HeaderClientID, cs["client_id"]))
			}
			raw, _ := json.Marshal(resp)
			for _, s := range []string{b["token"], cs["client_secret"], k["key_secret"], ba["password"]} {
				g.Expect(string(raw)).NotTo(ContainSubstring(s), "a secret in the CheckResponse")
			}
		})
	}

	t.Run("spoofed X-Latchkey-* headers are removed or overwritten, the credential removed", func(t *testing.T) {
		g := NewWithT(t)
		h := bearer(b["token"])
		for _, s := range spoofedWithoutTenant() {
			h[s[0]] = append(h[s[0]], s[1])
		}
		h["X-Latchkey-Custom"] = []string{"x"}
		h["X-Api-Key"] = []string{"stray"}
		resp, err := authz.Check(f.ctx, checkRequest(h, ""))
		g.Expect(err).NotTo(HaveOccurred())
		ok := resp.GetOkResponse()
		g.Expect(ok).NotTo(BeNil(), "%v", resp)
		set := map[string]string{}
		for _, o := range ok.GetHeaders() {
			set[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
		}
		remove := ok.GetHeadersToRemove()
		// Envoy removes after it sets: a name set must not be removed.
		for name := range set {
			g.Expect(remove).NotTo(ContainElement(name), "removed after it is set")
		}
		g.Expect(set).To(HaveKeyWithValue("x-latchkey-client-id", cs["client_id"]))
		g.Expect(set).To(HaveKeyWithValue("x-latchkey-allow-impersonate", "false"))
		g.Expect(set).To(HaveKeyWithValue("x-latchkey-allow-login", "true"))
		g.Expect(set).To(HaveKeyWithValue("x-latchkey-tenant", "2"))
		// Every spoofed header is overwritten (one of the six) or removed.
		for _, s := range append(spoofedWithoutTenant(), [2]string{"X-Latchkey-Custom", "x"}) {
			name := strings.ToLower(s[0])
			if _, overwritten := set[name]; !overwritten {
				g.Expect(remove).To(ContainElement(name), "spoofed %s neither overwritten nor removed", s[0])
			}
		}
		g.Expect(remove).To(ContainElements("x-latchkey-permission", "x_latchkey_allow_login", "x.latchkey.client.id", "authorization", "x-api-key"))
		g.Expect(remove).NotTo(ContainElement(":authority"))

		// A route that keeps the credential (context_extensions).
		req := checkRequest(bearer(b["token"]), "")
		req.Attributes.ContextExtensions["keep_credential"] = "true"
		resp, err = authz.Check(f.ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.GetOkResponse().GetHeadersToRemove()).NotTo(ContainElements("authorization"))
	})

	t.Run("a client bound to no tenant: the tenant header is removed, not set empty", func(t *testing.T) {
		f := f.sub(t)
		g := f.g
		nt := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "notenant"}, Spec: latchkeyv1alpha1.ApiClientSpec{
			Scopes: []string{"system"}, Permissions: []string{"system.read"}}}
		f.create(nt)
		f.waitReady(nt)
		s := f.secret("notenant")
		h := with(basic(s["client_id"], s["client_secret"]), "X-Latchkey-Tenant", "")
		resp, err := authz.Check(f.ctx, checkRequest(basic(s["client_id"], s["client_secret"]), ""))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.GetOkResponse().GetHeadersToRemove()).To(ContainElement("x-latchkey-tenant"))
		for _, o := range resp.GetOkResponse().GetHeaders() {
			g.Expect(o.GetHeader().GetKey()).NotTo(Equal("x-latchkey-tenant"))
		}
		g.Expect(f.httpAnswer(g, h, "").Identity).NotTo(HaveKey(verifier.HeaderTenant))
	})

	t.Run("raw header_map (encode_raw_headers) decides alike", func(t *testing.T) {
		g := NewWithT(t)
		req := checkRequest(with(bearer(b["token"]), verifier.HeaderRequirePermission, "blogs.write"), "")
		hm := &corev3.HeaderMap{}
		for k, v := range req.Attributes.Request.Http.Headers {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		req.Attributes.Request.Http.Headers, req.Attributes.Request.Http.HeaderMap = nil, hm
		resp, err := authz.Check(f.ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.GetDeniedResponse().GetStatus().GetCode()).To(BeEquivalentTo(403))
	})

	t.Run("usage flows back to status, from the end client's address", func(t *testing.T) {
		f := f.sub(t)
		only := grant("grpc-only", "blog", latchkeyv1alpha1.CredentialTypeBearer)
		f.create(only)
		f.waitReady(only)
		resp, err := authz.Check(f.ctx, checkRequest(with(bearer(f.secret("grpc-only")["token"]), "X-Forwarded-For", "198.51.100.7, 10.0.0.1"), ""))
		f.g.Expect(err).NotTo(HaveOccurred())
		f.g.Expect(resp.GetOkResponse()).NotTo(BeNil())
		f.g.Eventually(func(g Gomega) {
			got := &latchkeyv1alpha1.CredentialGrant{}
			g.Expect(env.Client.Get(f.ctx, clientKey(f.ns, "grpc-only"), got)).To(Succeed())
			g.Expect(got.Status.LastUsedAt).NotTo(BeNil())
			g.Expect(got.Status.LastUsedFrom).To(Equal("198.51.100.7"))
		}).Should(Succeed())
	})

	t.Run("revoked by delete", func(t *testing.T) {
		g := NewWithT(t)
		bearerGrant := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "bearer"}}
		g.Expect(env.Client.Delete(f.ctx, bearerGrant)).To(Succeed())
		g.Eventually(func() int32 {
			resp, err := authz.Check(f.ctx, checkRequest(bearer(b["token"]), ""))
			if err != nil {
				return -1
			}
			return int32(resp.GetDeniedResponse().GetStatus().GetCode())
		}).WithTimeout(5 * time.Second).Should(BeEquivalentTo(401))
	})

	// Metrics: the gRPC endpoint has its own label, outcome for outcome.
	f.g.Expect(counter("grpc_check", "valid") - validBefore).To(BeNumerically(">=", valid))
	f.g.Expect(counter("grpc_check", "forbidden") - forbiddenBefore).To(BeNumerically(">=", forbidden))
}

// Health follows cache sync: before the verifier's caches synced, health
// is NOT_SERVING and Check denies with 503, as /v1/verify answers; once they
// synced, SERVING. The caches are held back by running the verifier as a
// user without RBAC, then granting it.
func TestGRPCHealthFollowsSync(t *testing.T) {
	g := NewWithT(t)
	ns, opNs := env.Namespace(t), env.Namespace(t)
	user := "grpc-sync-" + ns
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	hln, gln := grpcListener(t), grpcListener(t)
	opts := operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}, VerifierOnly: true, MetricsAddr: "0",
		SkipControllerNameValidation: true, VerifierListener: hln, VerifierGRPCListener: gln}
	g.Expect(env.EnsureNamespace(t.Context(), opNs)).To(Succeed())
	mgr, err := operator.NewManager(cfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), ctrl.Log.WithName("manager")))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select { // a manager whose caches never synced may not stop
		case err := <-done:
			if err != nil {
				t.Logf("manager: %v", err)
			}
		case <-time.After(10 * time.Second):
		}
	})

	f := &fixture{t: t, g: g, ctx: t.Context(), ns: ns, opNs: opNs, url: "http://" + hln.Addr().String(), http: &http.Client{Timeout: 5 * time.Second}}
	authz, healthc := grpcClient(t, gln.Addr().String(), nil)
	health := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := healthc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
		if err != nil {
			return -1
		}
		return r.GetStatus()
	}
	g.Eventually(health).WithTimeout(20 * time.Second).Should(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
	g.Consistently(health).WithTimeout(2 * time.Second).Should(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
	overall, err := healthc.Check(t.Context(), &healthpb.HealthCheckRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(overall.GetStatus()).To(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
	_, err = healthc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	g.Expect(err).To(HaveOccurred(), "a service not served is NotFound")

	// 503 before sync, alike over both protocols, whatever is sent.
	for _, h := range []http.Header{bearer("lk_anything"), {}} {
		overHTTP := f.httpAnswer(g, h, "")
		g.Expect(overHTTP.Status).To(Equal(http.StatusServiceUnavailable))
		resp, err := authz.Check(t.Context(), checkRequest(h, ""))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(grpcAnswer(g, resp)).To(Equal(overHTTP))
	}

	// Grant what the verifier reads: its caches sync, health follows.
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
		// Revocation records (/oauth2/revoke).
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create"}},
		{APIGroups: []string{latchkeyv1alpha1.GroupVersion.Group}, Resources: []string{"apiclients", "credentialgrants"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{latchkeyv1alpha1.GroupVersion.Group}, Resources: []string{"apiclients/status", "credentialgrants/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	g.Expect(env.Client.Create(t.Context(), role)).To(Succeed())
	g.Expect(env.Client.Create(t.Context(), binding)).To(Succeed())
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), binding)
		_ = env.Client.Delete(context.Background(), role)
	})
	g.Eventually(health).WithTimeout(60 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(healthpb.HealthCheckResponse_SERVING))
	overHTTP := f.httpAnswer(g, http.Header{}, "")
	g.Expect(overHTTP.Status).To(Equal(http.StatusUnauthorized))
	resp, err := authz.Check(t.Context(), checkRequest(http.Header{}, ""))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(grpcAnswer(g, resp)).To(Equal(overHTTP))

	// Watch streams the same: SERVING (at once, or within its update
	// interval).
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer wcancel()
	w, err := healthc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	g.Expect(err).NotTo(HaveOccurred())
	for {
		st, err := w.Recv()
		g.Expect(err).NotTo(HaveOccurred(), "Watch never said SERVING")
		if st.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
}

// With the verifier's TLS on, the gRPC port serves TLS with the same
// certificate: a client that trusts ca.crt gets answers, a plaintext one
// none.
func TestGRPCTLS(t *testing.T) {
	g := NewWithT(t)
	ns, opNs := env.Namespace(t), env.Namespace(t)
	gln := grpcListener(t)
	env.StartManager(t, operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}, VerifierListener: grpcListener(t),
		VerifierGRPCListener: gln, VerifierTLSIssue: true, Verifier: verifier.Options{TLSSecret: servingcert.DefaultSecretName}})
	sec := &corev1.Secret{}
	g.Eventually(func() error {
		return env.Client.Get(t.Context(), types.NamespacedName{Namespace: opNs, Name: servingcert.DefaultSecretName}, sec)
	}).WithTimeout(20 * time.Second).Should(Succeed())
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(sec.Data[servingcert.KeyCA])).To(BeTrue())
	authz, healthc := grpcClient(t, gln.Addr().String(), credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}))
	g.Eventually(func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := healthc.Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil {
			return -1
		}
		return r.GetStatus()
	}).WithTimeout(20 * time.Second).Should(Equal(healthpb.HealthCheckResponse_SERVING))
	resp, err := authz.Check(t.Context(), checkRequest(http.Header{}, ""))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.GetDeniedResponse().GetStatus().GetCode()).To(BeEquivalentTo(401))

	_, plain := grpcClient(t, gln.Addr().String(), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err = plain.Check(ctx, &healthpb.HealthCheckRequest{})
	g.Expect(err).To(HaveOccurred(), "plaintext gRPC on the TLS port")
}

// A verifier whose view is older than --max-staleness (its watch stalled
// behind a cut proxy) is NOT_SERVING and denies every Check with 503, as
// /v1/verify answers; it serves again once the watch recovers.
func TestGRPCStaleness(t *testing.T) {
	f := newFixture(t, func(o *operator.Options) { o.HeartbeatInterval = 200 * time.Millisecond })
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
	f.create(c)
	f.waitReady(c)
	f.create(grant("keep", "app", latchkeyv1alpha1.CredentialTypeBearer))
	f.waitReady(&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "keep", Namespace: f.ns}})
	tok := f.secret("keep")["token"]

	apiURL, err := url.Parse(env.Config.Host)
	f.g.Expect(err).NotTo(HaveOccurred())
	px := startPartitionProxy(t, apiURL.Host)
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = "https://" + px.ln.Addr().String()
	hln, gln := grpcListener(t), grpcListener(t)
	mgr, err := operator.NewManager(cfg, operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierOnly: true,
		VerifierListener: hln, VerifierGRPCListener: gln, Verifier: verifier.Options{MaxStaleness: 2 * time.Second},
		MetricsAddr: "0", SkipControllerNameValidation: true})
	f.g.Expect(err).NotTo(HaveOccurred())
	testenv.RunManager(t, mgr)
	only := *f
	only.url = "http://" + hln.Addr().String()
	authz, healthc := grpcClient(t, gln.Addr().String(), nil)
	health := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := healthc.Check(f.ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return -1
		}
		return r.GetStatus()
	}
	decision := func(g Gomega) (answer, answer) {
		resp, err := authz.Check(f.ctx, checkRequest(bearer(tok), ""))
		g.Expect(err).NotTo(HaveOccurred())
		return only.httpAnswer(g, bearer(tok), ""), grpcAnswer(g, resp)
	}
	f.g.Eventually(health).Should(Equal(healthpb.HealthCheckResponse_SERVING))
	f.g.Eventually(func(g Gomega) {
		h, gr := decision(g)
		g.Expect(h.Status).To(Equal(200))
		g.Expect(gr).To(Equal(h))
	}).Should(Succeed())

	px.partition()
	f.g.Eventually(health).WithTimeout(15 * time.Second).Should(Equal(healthpb.HealthCheckResponse_NOT_SERVING))
	h, gr := decision(f.g)
	f.g.Expect(h.Status).To(Equal(http.StatusServiceUnavailable))
	f.g.Expect(gr).To(Equal(h), "stale: the same 503 over both")

	px.heal()
	f.g.Eventually(health).WithTimeout(60 * time.Second).Should(Equal(healthpb.HealthCheckResponse_SERVING))
}
