package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/cli"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{Webhooks: true}) }

// fixture is one test's namespace and running operator.
type fixture struct {
	t    *testing.T
	ns   string
	opNs string
	// kubeconfig is a file for env's API server, as the CLI's --kubeconfig.
	kubeconfig string
	// verifier is the base URL of the operator's verification service.
	verifier string
}

// writeKubeconfig writes env's admin kubeconfig into a file for the test.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newFixture starts the operator (with its admission webhook) for a fresh
// namespace. Tests that use it do not run in parallel: the webhook server
// listens on envtest's one local port.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, ns: env.Namespace(t), opNs: env.Namespace(t), kubeconfig: writeKubeconfig(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.verifier = "http://" + ln.Addr().String()
	env.StartManager(t, operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, EnableWebhooks: true, VerifierListener: ln})
	f.waitForWebhook()
	testenv.Eventually(t, 30*time.Second, func() error {
		if code := f.verify(nil); code != http.StatusOK && code != http.StatusUnauthorized {
			return fmt.Errorf("verifier answers %d", code)
		}
		return nil
	})
	return f
}

// verify asks the verifier's /v1/verify about the credential in h and
// returns the status code (-1 when it cannot be reached).
func (f *fixture) verify(h http.Header) int {
	req, _ := http.NewRequest(http.MethodGet, f.verifier+"/v1/verify", nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return -1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// basic is HTTP Basic authentication with user:pass (client id and secret,
// key id and key secret, username and password).
func basic(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// bearer is bearer-token authentication.
func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// wantVerify waits (briefly: the verifier reads an informer cache) until
// the verifier answers code for the credential in h.
func (f *fixture) wantVerify(what string, h http.Header, code int) {
	f.t.Helper()
	testenv.Eventually(f.t, 10*time.Second, func() error {
		if got := f.verify(h); got != code {
			return fmt.Errorf("%s: /v1/verify answered %d, want %d", what, got, code)
		}
		return nil
	})
}

// waitForWebhook waits until the API server can call the webhook (a dry-run
// create is admitted), so a test's first create is not refused because the
// server is still starting.
func (f *fixture) waitForWebhook() {
	f.t.Helper()
	probe := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "probe"},
		Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}},
	}
	testenv.Eventually(f.t, 30*time.Second, func() error {
		return env.Client.Create(context.Background(), probe.DeepCopy(), client.DryRunAll)
	})
}

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command in-process, as the binary does, against env's API
// server in the fixture's namespace.
func (f *fixture) run(args ...string) result {
	f.t.Helper()
	return runCLI(append(args, "--kubeconfig", f.kubeconfig, "-n", f.ns)...)
}

// mustRun is run that fails the test unless the command succeeded.
func (f *fixture) mustRun(args ...string) string {
	f.t.Helper()
	r := f.run(args...)
	if r.code != 0 {
		f.t.Fatalf("%s: exit code %d, stderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func runCLI(args ...string) result {
	return runCLIWithInput("", args...)
}

func runCLIWithInput(stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), "api-client", args, genericiooptions.IOStreams{
		In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut,
	})
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// object decodes one JSON object (one output line) into a map, so tests see
// exactly which keys were printed.
func object(t *testing.T, line string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, line)
	}
	return m
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}
