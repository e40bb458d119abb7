package suite_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// nginxHarness is the whole nginx.conf around a block from docs/gateways.md
// (in the server block) and an optional one for the http block: only what
// NGINX needs to run unprivileged in a temporary directory, and the
// listening port. Nothing here touches headers.
const nginxHarness = `
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[4]s
  server {
    listen 127.0.0.1:%[2]d;
%[3]s
  }
}
`

// The addresses in the docs' blocks that the tests replace, and nothing else.
const (
	docUpstreamAddr = "blogs-backend.blogs.svc:8080"
)

// nginxDocConfigs are the NGINX blocks of docs/gateways.md that run for real.
var nginxDocConfigs = []struct {
	marker       string
	verifierAddr string
	// spoofedCode is the answer to a valid credential sent with all of
	// spoofed: the ingress-nginx auth location passes the client's headers
	// to the verifier, so the client's false X-Latchkey-Tenant becomes a
	// requirement its credential fails.
	spoofedCode int
}{
	{"nginx-auth-request", "latchkey-verifier.latchkey-system.svc:8082", http.StatusOK},
	{"ingress-nginx-generated", "latchkey-verifier.latchkey-system.svc.cluster.local:8082", http.StatusForbidden},
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("nginx is not installed: run 'make test-peers' (it installs Debian's nginx-light)")
	return ""
}

// recorder is an upstream that records the headers of every request it gets.
type recorder struct {
	mu   sync.Mutex
	seen []http.Header
	addr string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Header.Clone())
		r.mu.Unlock()
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(srv.Close)
	r.addr = srv.Listener.Addr().String()
	return r
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *recorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

// startNGINX runs block, with the docs' verifier and upstream addresses
// replaced by verifierAddr and upstreamAddr, and returns NGINX's base URL.
func startNGINX(f *fixture, nginx, block, docVerifierAddr, verifierAddr, upstreamAddr string) string {
	f.t.Helper()
	return startNGINXHTTP(f, nginx, "", block, docVerifierAddr, verifierAddr, upstreamAddr)
}

// startNGINXHTTP is startNGINX with httpBlock in NGINX's http block, for
// directives that belong there (map, limit_req_zone).
func startNGINXHTTP(f *fixture, nginx, httpBlock, block, docVerifierAddr, verifierAddr, upstreamAddr string) string {
	f.t.Helper()
	for _, a := range []string{docVerifierAddr, docUpstreamAddr} {
		f.g.Expect(block).To(ContainSubstring(a), "the block must name %s: the test replaces it", a)
	}
	block = strings.ReplaceAll(block, docVerifierAddr, verifierAddr)
	block = strings.ReplaceAll(block, docUpstreamAddr, upstreamAddr)

	port := freePort(f)
	dir := f.t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	f.g.Expect(os.WriteFile(conf, fmt.Appendf(nil, nginxHarness, dir, port, block, httpBlock), 0o600)).To(Succeed())
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	f.g.Expect(cmd.Start()).To(Succeed())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	f.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if f.t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil {
				f.t.Logf("nginx error.log:\n%s", b)
			}
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	f.g.Eventually(func() error {
		select {
		case <-done:
			return StopTrying("nginx exited; its config is in " + conf)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err
	}).Should(Succeed())
	return "http://" + addr
}

// Acceptance: the NGINX configurations of docs/gateways.md, loaded from the
// docs, in real NGINX (Debian's package) in front of the verifier. No
// client-sent X-Latchkey-* header and no credential reaches the upstream,
// and nothing does without the verifier's 200.
func TestNGINXAuthRequest(t *testing.T) {
	nginx := nginxBinary(t)
	f := newFixture(t)
	verifierAddr := strings.TrimPrefix(f.url, "http://")

	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "blog"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"}}
	f.create(c)
	f.waitReady(c)
	reader := grant("reader", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.read")
	writer := grant("writer", "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.write")
	f.create(reader)
	f.create(writer)
	f.waitReady(reader)
	f.waitReady(writer)
	readerToken := f.secret("reader")["token"]
	writerToken := f.secret("writer")["token"]

	// What the verifier itself answers for the reader: the upstream must see
	// exactly this.
	resp := f.get("/v1/verify", http.Header{"Authorization": {"Bearer " + readerToken}, verifier.HeaderRequirePermission: {"blogs.read"}})
	_ = resp.Body.Close()
	f.g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	want := map[string]string{}
	for _, h := range identityHeaders {
		want[h] = resp.Header.Get(h)
	}
	f.g.Expect(want).To(Equal(map[string]string{
		verifier.HeaderClientID: f.secret("blog")["client_id"], verifier.HeaderTenant: "2",
		verifier.HeaderPermissions: "blogs.read", verifier.HeaderTokenID: want[verifier.HeaderTokenID],
		verifier.HeaderAllowImpersonate: "false", verifier.HeaderAllowLogin: "false",
	}))
	f.g.Expect(want[verifier.HeaderTokenID]).NotTo(BeEmpty())

	for i, cfg := range nginxDocConfigs {
		t.Run(cfg.marker, func(t *testing.T) {
			f := f.sub(t)
			up := newRecorder(t)
			base := startNGINX(f, nginx, docBlock(t, cfg.marker), cfg.verifierAddr, verifierAddr, up.addr)

			call := func(h [][2]string) *http.Response {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, base+"/blogs/42?x=1", nil)
				for _, kv := range h {
					// Raw names: sent on the wire as written.
					req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
				}
				resp, err := f.http.Do(req)
				f.g.Expect(err).NotTo(HaveOccurred())
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				return resp
			}
			bearer := func(tok string) [2]string { return [2]string{"Authorization", "Bearer " + tok} }
			// passes: the upstream got exactly one request, with the
			// verifier's identity and nothing the client made up.
			passes := func(what string, h ...[2]string) {
				t.Helper()
				n := up.count()
				f.g.Expect(call(h).StatusCode).To(Equal(http.StatusOK), what)
				f.g.Expect(up.count()).To(Equal(n+1), what)
				f.g.Expect(upstreamViolations(up.last(), want)).To(BeEmpty(), what)
			}
			// stopped: the answer is code and the upstream got nothing.
			stopped := func(what string, code int, h ...[2]string) *http.Response {
				t.Helper()
				n := up.count()
				resp := call(h)
				f.g.Expect(resp.StatusCode).To(Equal(code), what)
				f.g.Expect(up.count()).To(Equal(n), "%s: reached the upstream", what)
				return resp
			}

			passes("bearer", bearer(readerToken))
			passes("X-API-Key", [2]string{"X-API-Key", readerToken})
			passes("spoofed identity headers", plus(spoofedWithoutTenant(), bearer(readerToken), [2]string{"X-API-Key", "lk_other"})...)
			all := plus(spoofed, bearer(readerToken), [2]string{"X-API-Key", "lk_other"})
			if cfg.spoofedCode == http.StatusOK {
				passes("all six spoofed identity headers", all...)
			} else {
				stopped("all six spoofed identity headers", cfg.spoofedCode, all...)
			}

			r := stopped("no credential", http.StatusUnauthorized, spoofed...)
			f.g.Expect(r.Header.Get("WWW-Authenticate")).To(ContainSubstring("Bearer"))
			stopped("unknown token", http.StatusUnauthorized, plus(spoofed, bearer("lk_unknown"))...)
			stopped("lacks blogs.read", http.StatusForbidden, plus(spoofed, bearer(writerToken))...)
			// A client cannot lift the gateway's requirement with its own header.
			stopped("empty requirement from the client", http.StatusForbidden,
				bearer(writerToken), [2]string{verifier.HeaderRequirePermission, ""})

			// Revoked at once.
			doomed := grant(fmt.Sprintf("doomed-%d", i), "blog", latchkeyv1alpha1.CredentialTypeBearer, "blogs.read")
			f.create(doomed)
			f.waitReady(doomed)
			doomedToken := f.secret(doomed.Name)["token"]
			f.g.Expect(call([][2]string{bearer(doomedToken)}).StatusCode).To(Equal(http.StatusOK))
			f.g.Expect(env.Client.Delete(f.ctx, doomed)).To(Succeed())
			f.g.Eventually(func() int { return call([][2]string{bearer(doomedToken)}).StatusCode }).
				WithTimeout(2 * time.Second).Should(Equal(http.StatusUnauthorized))
			n := up.count()
			stopped("revoked", http.StatusUnauthorized, bearer(doomedToken))
			f.g.Expect(up.count()).To(Equal(n))

			// Fail closed: with the verifier unreachable nothing passes.
			down := startNGINX(f, nginx, docBlock(t, cfg.marker), cfg.verifierAddr, fmt.Sprintf("127.0.0.1:%d", freePort(f)), up.addr)
			n = up.count()
			req, _ := http.NewRequest(http.MethodGet, down+"/blogs/42", nil)
			req.Header.Set("Authorization", "Bearer "+readerToken)
			resp, err := f.http.Do(req)
			f.g.Expect(err).NotTo(HaveOccurred())
			_ = resp.Body.Close()
			f.g.Expect(resp.StatusCode).To(BeNumerically(">=", 500), "verifier unreachable")
			f.g.Expect(up.count()).To(Equal(n), "verifier unreachable: reached the upstream")
		})
	}
}

// plus is base and more, in a new slice.
func plus(base [][2]string, more ...[2]string) [][2]string {
	return append(slices.Clone(base), more...)
}

func freePort(f *fixture) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
