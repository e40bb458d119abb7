// Package suite tests the console in a real browser (Chromium from Debian,
// headless, driven with chromedp) against a real API server, the operator
// with its admission webhook and the verifier.
package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/console"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{Webhooks: true}) }

// screenshotDir is where the tests write a PNG of each page when
// LATCHKEY_CONSOLE_SCREENSHOTS is set (make console-screenshots).
func screenshotDir() string { return os.Getenv("LATCHKEY_CONSOLE_SCREENSHOTS") }

// fixture is one test's namespace, running operator and verifier.
type fixture struct {
	t        *testing.T
	ns, opNs string
	verifier string
}

// newFixture starts the operator (webhook and verifier) watching ns and the
// extra namespaces.
func newFixture(t *testing.T, extra ...string) *fixture {
	t.Helper()
	return newFixtureWith(t, nil, extra...)
}

// newFixtureWith is newFixture with a hook that sees the namespaces and may
// change the operator's options before it starts.
func newFixtureWith(t *testing.T, hook func(f *fixture, o *operator.Options), extra ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, ns: env.Namespace(t), opNs: env.Namespace(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.verifier = "http://" + ln.Addr().String()
	opts := operator.Options{Namespace: f.opNs, WatchNamespaces: append([]string{f.ns}, extra...), EnableWebhooks: true, VerifierListener: ln}
	if hook != nil {
		hook(f, &opts)
	}
	env.StartManager(t, opts)
	probe := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "probe"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	testenv.Eventually(t, 60*time.Second, func() error {
		return env.Client.Create(context.Background(), probe.DeepCopy(), client.DryRunAll)
	})
	testenv.Eventually(t, 60*time.Second, func() error {
		if code := f.verify(nil); code != http.StatusUnauthorized {
			return fmt.Errorf("verifier answers %d", code)
		}
		return nil
	})
	return f
}

func (f *fixture) do(req *http.Request) int {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return -1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// verify asks /v1/verify about the credential in h.
func (f *fixture) verify(h http.Header) int {
	req, _ := http.NewRequest(http.MethodGet, f.verifier+"/v1/verify", nil)
	for k, v := range h {
		req.Header[k] = v
	}
	return f.do(req)
}

// token asks /oauth2/token for an access token with client credentials.
func (f *fixture) token(id, secret string) int {
	req, _ := http.NewRequest(http.MethodPost, f.verifier+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return f.do(req)
}

func (f *fixture) wantCode(what string, code int, get func() int) {
	f.t.Helper()
	testenv.Eventually(f.t, 20*time.Second, func() error {
		if got := get(); got != code {
			return fmt.Errorf("%s: answered %d, want %d", what, got, code)
		}
		return nil
	})
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// consoleServer is a running console and its log.
type consoleServer struct {
	srv *console.Server
	log *testenv.SyncBuffer
}

// startConsole serves a console acting with cfg, showing ns first.
func startConsole(t *testing.T, cfg *rest.Config, ns string, mods ...func(*console.Options)) *consoleServer {
	t.Helper()
	log := &testenv.SyncBuffer{}
	opts := console.Options{Config: cfg, Namespace: ns, Log: log, Timeout: 60 * time.Second}
	for _, m := range mods {
		m(&opts)
	}
	srv, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("console log:\n%s", log.String())
		}
	})
	return &consoleServer{srv: srv, log: log}
}

// chromium finds Debian's Chromium (hack/test-peers.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: run hack/test-peers.sh (as root: apt-get install chromium) or 'make test', which runs it")
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	// base is the console's address.
	base string
}

func newBrowser(t *testing.T, cs *consoleServer) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser: without a timeout, which would stop it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx, base: cs.srv.BaseURL()}
	// Sign in with the one-time link.
	b.do(chromedp.Navigate(cs.srv.URL()), chromedp.WaitVisible(chromedp.CSS("h1")))
	if loc := get(b, chromedp.Location()); strings.Contains(loc, "token=") {
		t.Fatalf("after signing in the browser is at %s: the token stays in the URL", loc)
	}
	return b
}

// get runs one action that returns a value.
func get[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fatal(err)
	}
	return v
}

func (b *browser) fatal(err error) {
	b.t.Helper()
	loc, _ := chromedp.Run(b.ctx, chromedp.Location())
	body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("browser at %s: %v\npage text:\n%s", loc, err, body)
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fatal(err)
	}
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	return get(b, chromedp.Evaluate[T](expr))
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("h1")))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return get(b, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) html() string {
	b.t.Helper()
	return eval[string](b, `document.documentElement.outerHTML`)
}

// waitFor waits until the JavaScript expression holds (live updates,
// navigations: an evaluation that fails while the page changes is retried).
func (b *browser) waitFor(expr string) {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	b.fatal(fmt.Errorf("waiting for %s: %v", expr, last))
}

// submit clicks sel and waits for the next page.
func (b *browser) submit(sel string) {
	b.t.Helper()
	before := eval[string](b, `String(performance.timeOrigin)`)
	b.do(chromedp.Click(chromedp.CSS(sel)))
	b.waitFor(fmt.Sprintf(`String(performance.timeOrigin) !== %q && document.readyState === "complete" && !!document.querySelector("h1")`, before))
}

// check runs the accessibility checks and the 375 px check on the current
// page, and takes its screenshot when asked.
func (b *browser) check(name string) {
	b.t.Helper()
	b.labelled(name)
	b.axe(name)
	b.narrow(name)
	b.screenshot(name)
}

// labelled: every visible form control has an accessible name.
func (b *browser) labelled(name string) {
	b.t.Helper()
	unlabelled := eval[[]string](b, `Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea, button")).filter(function (el) {
		if (el.tagName === "BUTTON") return !(el.getAttribute("aria-label") || el.textContent.trim());
		return !((el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby"));
	}).map(function (el) { return el.outerHTML; })`)
	if len(unlabelled) > 0 {
		b.t.Errorf("page %s: controls without a label: %v", name, unlabelled)
	}
}

// axeSource is axe-core's axe.min.js from the npm package that
// hack/test-peers.sh puts in the cache.
func axeSource(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LATCHKEY_AXE_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "latchkey", "axe-core")
	}
	src, err := os.ReadFile(filepath.Join(dir, "package", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is missing (%v): run hack/test-peers.sh, which fetches it with npm pack", err)
	}
	return string(src)
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// axe injects axe-core (Evaluate runs outside the page's CSP) and fails on
// serious or critical violations.
func (b *browser) axe(name string) {
	b.t.Helper()
	eval[bool](b, axeSource(b.t)+";true")
	raw := get(b, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(function (r) { return JSON.stringify(r.violations); })`, chromedp.EvalAwaitPromise))
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		b.t.Fatalf("axe result: %v", err)
	}
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			var targets []string
			for _, n := range v.Nodes {
				targets = append(targets, fmt.Sprint(n.Target...))
			}
			b.t.Errorf("page %s: axe %s violation %s (%s) at %v", name, v.Impact, v.ID, v.Help, targets)
		}
	}
}

// narrow: at 375 px the page has no horizontal overflow.
func (b *browser) narrow(name string) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(375, 800))
	if overflow := eval[int](b, `document.documentElement.scrollWidth - window.innerWidth`); overflow > 0 {
		wide := eval[[]string](b, `Array.from(document.querySelectorAll("body *")).filter(function (e) { return e.getBoundingClientRect().right > window.innerWidth + 1; }).slice(0, 5).map(function (e) { return e.tagName + "#" + e.id + "." + e.className; })`)
		b.t.Errorf("page %s overflows a 375 px viewport by %d px: %v", name, overflow, wide)
	}
	if dir := screenshotDir(); dir != "" {
		png := get(b, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+"-375.png"), png, 0o644); err != nil {
			b.t.Error(err)
		}
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := screenshotDir()
	if dir == "" {
		return
	}
	b.do(chromedp.EmulateViewport(1100, 800))
	png := get(b, chromedp.FullScreenshot(100))
	b.do(chromedp.EmulateViewport(1280, 900))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// secretOf reads a consumer Secret's key as the administrator.
func secretOf(t *testing.T, ns, name, key string) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return string(s.Data[key])
}

// noLeak fails when a secret shows in the console's log.
func noLeak(t *testing.T, cs *consoleServer, secrets map[string][]byte) {
	t.Helper()
	if findings := testenv.FindLeaks(cs.log.Bytes(), secrets); len(findings) > 0 {
		t.Errorf("secrets in the console's log: %v", findings)
	}
	if !strings.Contains(cs.log.String(), "console: GET /clients") {
		t.Errorf("the console's log has no request lines: the leak sweep looked at nothing:\n%s", cs.log.String())
	}
}
