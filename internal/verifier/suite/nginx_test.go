package suite_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// nginxConf puts the verifier in front of an upstream with auth_request, as
// docs/gateways.md shows.
const nginxConf = `
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
  server {
    listen 127.0.0.1:%[2]d;
    location /blogs/ {
      auth_request /_latchkey;
      auth_request_set $latchkey_client $upstream_http_x_latchkey_client_id;
      proxy_set_header X-Client-Id $latchkey_client;
      proxy_pass http://%[3]s;
    }
    location = /_latchkey {
      internal;
      proxy_pass http://%[4]s/v1/verify$request_uri;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Latchkey-Permission "blogs.read";
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`

// Acceptance 2: real NGINX (Debian's package) with auth_request.
func TestNGINXAuthRequest(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				nginx, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatal("nginx is not installed: run 'apt-get install nginx-light' (.ci/run does)")
	}
	f := newFixture(t)

	// The upstream echoes the identity NGINX passed on.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	go func() {
		_ = http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = fmt.Fprintf(w, "hello %s", r.Header.Get("X-Client-Id"))
		}))
	}()
	t.Cleanup(func() { _ = up.Close() })

	port := freePort(f)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	f.g.Expect(os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port, up.Addr(), strings.TrimPrefix(f.url, "http://"))), 0o600)).To(Succeed())
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	f.g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	f.g.Eventually(func() error {
		c, err := net.Dial("tcp", base[7:])
		if err == nil {
			_ = c.Close()
		}
		return err
	}).Should(Succeed())

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
	cs := f.secret("blog")

	call := func(h map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/blogs/42?x=1", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		f.g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	readerToken := f.secret("reader")["token"]
	code, body := call(map[string]string{"Authorization": "Bearer " + readerToken})
	f.g.Expect(code).To(Equal(200))
	f.g.Expect(body).To(Equal("hello " + cs["client_id"]))
	code, _ = call(map[string]string{"X-API-Key": readerToken})
	f.g.Expect(code).To(Equal(200))

	code, _ = call(nil)
	f.g.Expect(code).To(Equal(401), "missing credential")
	code, _ = call(map[string]string{"Authorization": "Bearer " + f.secret("writer")["token"]})
	f.g.Expect(code).To(Equal(403), "lacks blogs.read")
	// A client cannot lift the gateway's requirement with its own header.
	code, _ = call(map[string]string{"Authorization": "Bearer " + f.secret("writer")["token"], "X-Latchkey-Permission": ""})
	f.g.Expect(code).To(Equal(403))

	f.g.Expect(env.Client.Delete(f.ctx, reader)).To(Succeed())
	f.g.Eventually(func() int { code, _ := call(map[string]string{"Authorization": "Bearer " + readerToken}); return code }).
		WithTimeout(2*time.Second).Should(Equal(401), "revoked")
}

func freePort(f *fixture) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
