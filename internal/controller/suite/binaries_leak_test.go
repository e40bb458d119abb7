package suite_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/logging"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// TestLeakTestPassesAtZapLogLevel10AndClientGoMaxVerbosity is the leak test
// for the real binaries: it builds the manager (cmd/) and the CLI
// (cmd/kubectl-latchkey), runs the manager against the envtest API server
// with --zap-log-level=10, once as a full manager and once with
// --verifier-only, issues a user-chosen client secret and credentials of
// every type, has each verifier check them, runs the CLI with -v=10 (get,
// issue), and searches everything the binaries wrote for every secret and
// every backing-token hash in every form (testenv.LeakForms). The CLI's
// stdout prints secrets on purpose (as Decidim's api-client get does); its
// stderr must not.
func TestLeakTestPassesAtZapLogLevel10AndClientGoMaxVerbosity(t *testing.T) {
	bin := buildBinaries(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t) // namespaces only: the operator is the binary
	common := []string{
		"--kubeconfig=" + kubeconfig, "--zap-log-level=10",
		"--namespace", f.opNs, "--watch-namespaces", f.ns,
		"--enable-webhooks=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
	}
	manager := startBinary(t, "manager", filepath.Join(bin, "cmd"), common...)

	chosen := "chosen-" + randomHex(t, 16)
	secrets := map[string][]byte{"user-chosen client secret (Secret chosen)": []byte(chosen)}
	if err := env.Client.Create(f.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chosen", Namespace: f.ns},
		StringData: map[string]string{"client_secret": chosen}}); err != nil {
		t.Fatal(err)
	}
	c := f.client("sysadmin", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: "chosen"}
	})
	f.waitReady(c)
	f.waitReady(f.client("generated"))
	for _, typ := range []latchkeyv1alpha1.CredentialType{latchkeyv1alpha1.CredentialTypeBearer, latchkeyv1alpha1.CredentialTypeKeyAuth, latchkeyv1alpha1.CredentialTypeBasicAuth} {
		f.waitReady(f.grant(string(typ), c.Name, func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Type = typ }))
	}
	creds := map[string]http.Header{
		"client id and secret": basicAuth(c.Status.ClientID, chosen),
		"bearer token":         bearerAuth(string(f.secret("bearer").Data["token"])),
		"key-auth key":         basicAuth(string(f.secret("key-auth").Data["key_id"]), string(f.secret("key-auth").Data["key_secret"])),
		"basic-auth login":     basicAuth(string(f.secret("basic-auth").Data["username"]), string(f.secret("basic-auth").Data["password"])),
	}
	manager.verifyAll(t, creds)
	// An access token from each binary's /oauth2/token (signed with the key
	// the manager created), used at /v1/verify: the token and the signing
	// key are swept too.
	secrets["access token from the manager"] = []byte(manager.accessToken(t, c.Status.ClientID, chosen))

	verifier := startBinary(t, "verifier-only", filepath.Join(bin, "cmd"), append(common, "--verifier-only")...)
	verifier.verifyAll(t, creds)
	secrets["access token from the verifier-only mode"] = []byte(verifier.accessToken(t, c.Status.ClientID, chosen))

	// The CLI, while the operator runs (issue waits for it).
	cli := filepath.Join(bin, "kubectl-latchkey")
	cliArgs := []string{"-v=10", "--kubeconfig", kubeconfig, "-n", f.ns}
	get := runBinary(t, cli, append([]string{"get", "--id", c.Status.ClientID}, cliArgs...)...)
	if !strings.Contains(get.stdout, chosen) {
		t.Errorf("kubectl-latchkey get did not print the client's secret on stdout: the sweep of its stderr would prove nothing")
	}
	issue := runBinary(t, cli, append([]string{"issue", "--id", c.Status.ClientID, "--description", "leak test"}, cliArgs...)...)
	if !strings.Contains(issue.stdout, "lk_") {
		t.Errorf("kubectl-latchkey issue printed no token on stdout")
	}

	// Every secret issued and every hash stored, the CLI's token included.
	issuedSecrets(t, f.ctx, env.Client, f.ns, f.opNs, secrets)
	manager.stop(t)
	verifier.stop(t)
	events, resources := apiObjects(t, f.ctx, env.Client, f.ns)

	// Each run logged at its highest verbosity: V(1) lines of Latchkey,
	// V(5) of controller-runtime, and client-go's request lines at V(6) and
	// V(7) (the last verbosity below the cap), so the sweeps below search
	// real debug output.
	clientGoRequest := regexp.MustCompile(`"msg":"Request".*"verb":"(GET|POST|PUT|PATCH)".*"headers"`)
	t.Run("manager", func(t *testing.T) {
		out := manager.output()
		wantLines(t, out, map[string]*regexp.Regexp{
			"Latchkey's V(0) lines":                 regexp.MustCompile(`"msg":"Issued secret"`),
			"the verifier's V(1) lines":             regexp.MustCompile(`"msg":"Credential rejected"`),
			"controller-runtime's V(5) lines":       regexp.MustCompile(`"msg":"Reconcile successful"`),
			"client-go's V(7) request lines":        clientGoRequest,
			"client-go's V(6) response with status": regexp.MustCompile(`"msg":"Response".*"status":"2\d\d`),
		})
		assertNoLeaks(t, map[string][]byte{
			"the manager's stdout": []byte(manager.stdout.String()), "the manager's stderr": []byte(manager.stderr.String()),
			"Events": events, "resources' status": resources,
		}, secrets)
		wantNoBodies(t, out)
	})
	t.Run("verifier-only mode", func(t *testing.T) {
		out := verifier.output()
		wantLines(t, out, map[string]*regexp.Regexp{
			"the verifier's V(1) lines":      regexp.MustCompile(`"msg":"Credential rejected"`),
			"client-go's V(7) request lines": clientGoRequest,
		})
		assertNoLeaks(t, map[string][]byte{
			"the verifier's stdout": []byte(verifier.stdout.String()), "the verifier's stderr": []byte(verifier.stderr.String()),
		}, secrets)
		wantNoBodies(t, out)
	})
	t.Run("CLI", func(t *testing.T) {
		for name, r := range map[string]result{"get": get, "issue": issue} {
			wantLines(t, r.stderr, map[string]*regexp.Regexp{
				name + ": client-go's V(7) request lines": regexp.MustCompile(`\tRequest\t\{"verb": "(GET|POST|PUT|PATCH)".*"headers"`),
			})
			wantNoBodies(t, r.stderr)
		}
		assertNoLeaks(t, map[string][]byte{
			"the stderr of kubectl-latchkey get -v=10": []byte(get.stderr), "the stderr of kubectl-latchkey issue -v=10": []byte(issue.stderr),
		}, secrets)
	})
}

// buildBinaries builds the manager (as bin/cmd) and the CLI (as
// bin/kubectl-latchkey) into a temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd", "./cmd/kubectl-latchkey")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// binary is a running manager binary.
type binary struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *testenv.SyncBuffer
	done           chan struct{}
	exited         error
	verifier       string // base URL of its verification service
}

// startBinary runs the manager binary with args and a free verifier port,
// and waits until its verifier is ready.
func startBinary(t *testing.T, name, path string, args ...string) *binary {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	b := &binary{name: name, stdout: &testenv.SyncBuffer{}, stderr: &testenv.SyncBuffer{}, done: make(chan struct{}), verifier: "http://" + addr}
	// The gRPC port is not what this test is about: off, so that two
	// binaries on this host do not both want its default.
	b.cmd = exec.Command(path, append(args, "--verifier-bind-address="+addr, "--verifier-grpc-bind-address=0")...)
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.exited = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.stop(t) })
	testenv.Eventually(t, 60*time.Second, func() error {
		select {
		case <-b.done:
			// Its output may hold secrets only if it leaks, and nothing was
			// issued yet: safe to show.
			t.Fatalf("%s exited: %v\n%s", name, b.exited, tail(b.output(), 4000))
		default:
		}
		if code := b.get(t, "/readyz", nil); code != http.StatusOK {
			return fmt.Errorf("%s: /readyz answers %d", name, code)
		}
		return nil
	})
	return b
}

// stop ends the binary with SIGTERM (so its output is complete), or kills
// it after 20 s.
func (b *binary) stop(t *testing.T) {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM", b.name)
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

func (b *binary) output() string { return b.stdout.String() + b.stderr.String() }

// get calls the binary's verification service and returns the status code
// (-1 when it cannot be reached).
func (b *binary) get(t *testing.T, path string, h http.Header) int {
	req, err := http.NewRequest(http.MethodGet, b.verifier+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return -1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// verifyAll has the binary's verifier accept every credential on
// /v1/verify, and reject a wrong one (a V(1) log line).
func (b *binary) verifyAll(t *testing.T, creds map[string]http.Header) {
	t.Helper()
	for what, h := range creds {
		testenv.Eventually(t, 20*time.Second, func() error {
			if code := b.get(t, "/v1/verify", h); code != http.StatusOK {
				return fmt.Errorf("%s: /v1/verify with the %s answered %d", b.name, what, code)
			}
			return nil
		})
	}
	if code := b.get(t, "/v1/verify", bearerAuth("lk_not-a-token")); code != http.StatusUnauthorized {
		t.Errorf("%s: /v1/verify with a wrong token answered %d, want 401", b.name, code)
	}
}

// accessToken gets an access token with client_credentials and has the
// binary's verifier accept it.
func (b *binary) accessToken(t *testing.T, id, secret string) string {
	t.Helper()
	var access string
	testenv.Eventually(t, 20*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodPost, b.verifier+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: /oauth2/token answered %d", b.name, resp.StatusCode)
		}
		access = body.AccessToken
		return nil
	})
	if code := b.get(t, "/v1/verify", bearerAuth(access)); code != http.StatusOK {
		t.Errorf("%s: /v1/verify with the access token answered %d", b.name, code)
	}
	return access
}

// result is one run of the CLI binary.
type result struct{ stdout, stderr string }

func runBinary(t *testing.T, path string, args ...string) result {
	t.Helper()
	var stdout, stderr testenv.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent") // only --kubeconfig
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			// One "error: ..." line: the CLI never prints a secret in it.
			t.Fatalf("%s %s: %v: %s", filepath.Base(path), args[0], err, lastLine(stderr.String()))
		}
		t.Fatal(err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String()}
}

// wantLines fails for every pattern that matches no line of out.
func wantLines(t *testing.T, out string, want map[string]*regexp.Regexp) {
	t.Helper()
	for what, re := range want {
		if !re.MatchString(out) {
			t.Errorf("no %s in the output (pattern %s): the capture is not at the highest verbosity", what, re)
		}
	}
}

// wantNoBodies fails if client-go's body lines (V(8)) were written.
func wantNoBodies(t *testing.T, out string) {
	t.Helper()
	for _, m := range []string{"Request Body", "Response Body", "curlCommand"} {
		if strings.Contains(out, m) {
			t.Errorf("%q lines were written: client-go logged above verbosity %d", m, logging.MaxVerbosity)
		}
	}
}

func basicAuth(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

func bearerAuth(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
