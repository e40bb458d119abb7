package suite

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/console"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// Acceptance 3: a user allowed only namespace team-a (impersonated) sees
// only team-a, and what it may not do shows a clear "forbidden" message.
func TestConsoleRBAC(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"team-a", "team-b"} {
		if err := env.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, "team-a", "team-b")
	for _, ns := range []string{"team-a", "team-b"} {
		c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ns + "-app"},
			Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
		if err := env.Client.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), c) })
	}
	// alice may read and change clients and grants in team-a; she may not
	// delete them nor read Secrets, and has nothing elsewhere.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "latchkey-editor"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{latchkeyv1alpha1.GroupVersion.Group}, Resources: []string{"apiclients", "credentialgrants"},
		Verbs: []string{"get", "list", "watch", "create", "update", "patch"},
	}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "alice"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	alice := rest.CopyConfig(env.Config)
	alice.Impersonate = rest.ImpersonationConfig{UserName: "alice"}
	cs := startConsole(t, alice, "team-a")
	b := newBrowser(t, cs)
	_ = f

	b.open("/clients")
	options := eval[[]string](b, `Array.from(document.querySelectorAll("#namespace option")).map(function (o) { return o.value; })`)
	if len(options) != 1 || options[0] != "team-a" {
		t.Errorf("namespace picker offers %v, want only team-a", options)
	}
	b.waitFor(`!!document.querySelector("tr[data-client=team-a-app]")`)
	if strings.Contains(b.html(), "team-b-app") {
		t.Error("alice sees team-b's client")
	}
	b.check("clients-rbac")

	// Another namespace: forbidden, said plainly.
	b.open("/clients?namespace=team-b")
	msg := b.text("#problem")
	if !strings.HasPrefix(msg, "Forbidden") || !strings.Contains(msg, `User "alice" cannot list resource "apiclients"`) {
		t.Errorf("team-b: %q, want a Forbidden message naming alice and the denied request", msg)
	}
	if strings.Contains(b.html(), "team-b-app") {
		t.Error("alice sees team-b's client")
	}
	b.check("forbidden")

	// Reveal needs to read a Secret, which alice may not.
	b.open("/clients/team-a/team-a-app")
	b.waitFor(`!document.querySelector("#reveal").disabled`)
	b.submit("#reveal")
	msg = b.text("#problem")
	if !strings.HasPrefix(msg, "Forbidden") || !strings.Contains(msg, `cannot get resource "secrets"`) {
		t.Errorf("Reveal: %q, want Forbidden", msg)
	}
	// Revoke needs delete, which alice may not.
	b.open("/clients/team-a/team-a-app/revoke")
	b.submit("#confirm")
	msg = b.text("#problem")
	if !strings.HasPrefix(msg, "Forbidden") || !strings.Contains(msg, `cannot delete resource "apiclients"`) {
		t.Errorf("Revoke: %q, want Forbidden", msg)
	}
	for _, bad := range []string{"goroutine", ".go:", "panic"} {
		if strings.Contains(b.html(), bad) {
			t.Errorf("the forbidden page contains %q: a stack trace?", bad)
		}
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "team-a-app"}, &latchkeyv1alpha1.ApiClient{}); err != nil {
		t.Errorf("team-a-app after a forbidden Revoke: %v", err)
	}
}

// Acceptance 4: a POST without the CSRF token, from another Origin, or
// without the session cookie is refused (and changes nothing), as is a
// request with another Host (DNS rebinding) and a second use of the login
// link; pages carry the strict CSP and no inline script; the page holds the
// secret only after Reveal; the console's log holds no secret.
func TestConsoleSecurity(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cs := startConsole(t, env.Config, f.ns)
	base := cs.srv.BaseURL()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values, header http.Header, c *http.Client) (int, string, http.Header) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if h := header.Get("Host"); h != "" {
			req.Host = h
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	// Before signing in: nothing.
	if code, _, _ := do("GET", "/clients", nil, nil, hc); code != http.StatusUnauthorized {
		t.Errorf("GET /clients without a session: %d, want 401", code)
	}
	// Sign in; the cookie is HttpOnly and SameSite=Strict.
	code, _, h := do("GET", strings.TrimPrefix(cs.srv.URL(), base), nil, nil, hc)
	if code != http.StatusSeeOther || h.Get("Location") != "/clients" {
		t.Fatalf("login: %d to %q", code, h.Get("Location"))
	}
	ck := h.Get("Set-Cookie")
	if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Errorf("session cookie %q: want HttpOnly and SameSite=Strict", ck)
	}
	// The link works once.
	other, _ := cookiejar.New(nil)
	if code, _, _ := do("GET", strings.TrimPrefix(cs.srv.URL(), base), nil, nil, &http.Client{Jar: other, Timeout: 30 * time.Second}); code != http.StatusUnauthorized {
		t.Errorf("second use of the login link: %d, want 401", code)
	}
	// Another Host (DNS rebinding): refused.
	if code, _, _ := do("GET", "/clients", nil, http.Header{"Host": {"evil.example:80"}}, hc); code != http.StatusMisdirectedRequest {
		t.Errorf("Host evil.example: %d, want 421", code)
	}

	code, page, h := do("GET", "/clients/new?namespace="+f.ns, nil, nil, hc)
	if code != http.StatusOK {
		t.Fatalf("GET /clients/new: %d", code)
	}
	if got := h.Get("Content-Security-Policy"); got != console.ContentSecurityPolicy || !strings.Contains(got, "script-src 'self'") {
		t.Errorf("CSP %q", got)
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>|<script>`).MatchString(page) || strings.Contains(page, " onclick=") {
		t.Error("a page has inline script")
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token in the form")
	}
	origin := http.Header{"Origin": {base}}
	form := func(name string, withCSRF bool) url.Values {
		v := url.Values{"namespace": {f.ns}, "scopes": {"system"}, "id": {name}}
		if withCSRF {
			v.Set("csrf", csrf[1])
		}
		return v
	}
	noCookie := &http.Client{Timeout: 30 * time.Second, CheckRedirect: hc.CheckRedirect}
	for _, c := range []struct {
		what   string
		form   url.Values
		header http.Header
		client *http.Client
		want   int
	}{
		{"no CSRF token", form("no-csrf", false), origin, hc, http.StatusForbidden},
		{"wrong CSRF token", url.Values{"namespace": {f.ns}, "scopes": {"system"}, "id": {"bad-csrf"}, "csrf": {"x" + csrf[1]}}, origin, hc, http.StatusForbidden},
		{"another Origin", form("other-origin", true), http.Header{"Origin": {"http://evil.example"}}, hc, http.StatusForbidden},
		{"no Origin", form("no-origin", true), nil, hc, http.StatusForbidden},
		{"Origin null", form("null-origin", true), http.Header{"Origin": {"null"}}, hc, http.StatusForbidden},
		{"no session cookie", form("no-cookie", true), origin, noCookie, http.StatusUnauthorized},
	} {
		if code, _, _ := do("POST", "/clients/new", c.form, c.header, c.client); code != c.want {
			t.Errorf("POST with %s: %d, want %d", c.what, code, c.want)
		}
	}
	list := &latchkeyv1alpha1.ApiClientList{}
	if err := env.Client.List(ctx, list, client.InNamespace(f.ns)); err != nil || len(list.Items) != 0 {
		t.Fatalf("refused POSTs created %d clients (%v)", len(list.Items), err)
	}
	// The same POST, complete, is accepted: the refusals above are the checks'.
	if code, _, h := do("POST", "/clients/new", form("accepted", true), origin, hc); code != http.StatusSeeOther || h.Get("Location") != "/clients/"+f.ns+"/accepted" {
		t.Fatalf("complete POST: %d to %q", code, h.Get("Location"))
	}
	c := &latchkeyv1alpha1.ApiClient{}
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "accepted"}, c); err != nil {
			return err
		}
		if c.Status.TokenID == "" {
			return io.ErrNoProgress
		}
		return nil
	})
	secret := secretOf(t, f.ns, c.Status.SecretName, "client_secret")
	for _, p := range []string{"/clients?namespace=" + f.ns, "/clients/" + f.ns + "/accepted", "/clients/" + f.ns + "/accepted/credentials", "/clients/" + f.ns + "/accepted/revoke"} {
		code, page, _ := do("GET", p, nil, nil, hc)
		if code != http.StatusOK || strings.Contains(page, secret) {
			t.Errorf("GET %s: %d, holds the secret: %v", p, code, strings.Contains(page, secret))
		}
	}
	// Reveal is a POST with the CSRF token; a GET does not reveal.
	if code, _, _ := do("GET", "/clients/"+f.ns+"/accepted/reveal", nil, nil, hc); code != http.StatusMethodNotAllowed {
		t.Errorf("GET reveal: %d, want 405", code)
	}
	if code, page, _ := do("POST", "/clients/"+f.ns+"/accepted/reveal", url.Values{"csrf": {csrf[1]}}, origin, hc); code != http.StatusOK || !strings.Contains(page, secret) {
		t.Errorf("Reveal: %d, shows the secret: %v", code, strings.Contains(page, secret))
	}
	noLeak(t, cs, map[string][]byte{"client secret": []byte(secret), "login token": []byte(strings.SplitN(cs.srv.URL(), "token=", 2)[1])})
}
