package cli_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wantOneLineError checks a failed run: exit code != 0, nothing on stdout,
// exactly one line "error: ..." on stderr containing every want.
func wantOneLineError(t *testing.T, r result, want ...string) {
	t.Helper()
	t.Logf("stderr: %s", r.stderr)
	if r.code == 0 {
		t.Errorf("exit code 0, want a failure; stdout: %s", r.stdout)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "error: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one line 'error: ...'", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}
}

// unreachableKubeconfig points at a port where nothing listens: a command
// that got as far as calling the API would fail with "cannot reach", so the
// validation messages below prove nothing was sent.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
`
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInvalidInvocations: mistakes are caught before any API call, each with
// exit code 1 and one line that says what to do.
func TestInvalidInvocations(t *testing.T) {
	kc := unreachableKubeconfig(t)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing --scope", []string{"create"}, []string{"--scope is required"}},
		{"missing --scope with permissions", []string{"create", "--permission", "system.a"}, []string{"--scope is required"}},
		{"unknown format", []string{"create", "--scope", "system", "--format", "yaml"}, []string{`unknown --format "yaml"`, "json or text"}},
		{"unknown format on get", []string{"get", "--format", "xml"}, []string{`unknown --format "xml"`}},
		{"permission outside the scopes", []string{"create", "--scope", "blogs", "--permission", "system.organizations.update", "--tenant", "2"},
			[]string{`"system.organizations.update" is not valid for scopes blogs`}},
		{"permission without a dot", []string{"create", "--scope", "blogs", "--permission", "blogs", "--tenant", "2"}, []string{`invalid --permission "blogs"`}},
		{"tenant missing for a non-global scope", []string{"create", "--scope", "blogs", "--permission", "blogs.read"},
			[]string{"--tenant (or --organization-id) is required", `scope "blogs"`}},
		{"tenant missing, mixed scopes", []string{"create", "--scope", "system", "--scope", "blogs"}, []string{"--tenant (or --organization-id) is required"}},
		{"both tenant spellings", []string{"create", "--scope", "blogs", "--tenant", "2", "--organization-id", "3"}, []string{"give only one"}},
		{"invalid scope", []string{"create", "--scope", "Blogs", "--tenant", "2"}, []string{`invalid --scope "Blogs"`}},
		{"invalid tenant", []string{"create", "--scope", "blogs", "--tenant", "a b"}, []string{`invalid tenant "a b"`}},
		{"invalid id", []string{"create", "--scope", "system", "--id", "x"}, []string{`invalid --id "x"`}},
		{"empty secret", []string{"create", "--scope", "system", "--secret", ""}, []string{"--secret is empty"}},
		{"zero timeout", []string{"get", "--timeout", "0s"}, []string{"--timeout must be positive"}},
		{"positional argument", []string{"create", "system"}, []string{"takes no arguments"}},
		{"unknown flag", []string{"create", "--scopes", "system"}, []string{"unknown flag: --scopes"}},
		{"unknown verb", []string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{"grant without --id", []string{"grant", "--permission", "blogs.read"}, []string{"--id is required"}},
		{"grant without --permission", []string{"grant", "--id", "x"}, []string{"--permission is required"}},
		{"revoke without --permission", []string{"revoke", "--id", "x"}, []string{"--permission is required"}},
		{"issue without --id", []string{"issue"}, []string{"--id is required"}},
		{"issue with an unknown type", []string{"issue", "--id", "x", "--type", "oauth"}, []string{`unknown --type "oauth"`}},
		{"issue with two expiries", []string{"issue", "--id", "x", "--expires-in", "1h", "--expires-at", "2030-01-01T00:00:00Z"}, []string{"give only one"}},
		{"issue with a bad duration", []string{"issue", "--id", "x", "--expires-in", "soon"}, []string{`invalid --expires-in "soon"`}},
		{"issue with a bad time", []string{"issue", "--id", "x", "--expires-at", "tomorrow"}, []string{`invalid --expires-at "tomorrow"`, "RFC 3339"}},
		{"rotate without a target", []string{"rotate"}, []string{"exactly one of --id"}},
		{"rotate with two targets", []string{"rotate", "--id", "a", "--grant", "b"}, []string{"exactly one of --id"}},
		{"delete without a target", []string{"delete"}, []string{"exactly one of --id"}},
		{"activate without --id", []string{"activate"}, []string{"--id is required"}},
		{"whoami without --verifier", []string{"whoami", "--token", "t"}, []string{"--verifier is required"}},
		{"whoami with a bad URL", []string{"whoami", "--token", "t", "--verifier", "localhost:8082"}, []string{"invalid --verifier"}},
		{"no cluster reachable", []string{"get"}, []string{"cannot reach the Kubernetes API server at https://127.0.0.1:1", "--kubeconfig"}},
		{"no cluster reachable on create", []string{"create", "--scope", "system"}, []string{"cannot reach", "KUBECONFIG"}},
	}
	t.Setenv("LATCHKEY_TOKEN", "")
	t.Setenv("LATCHKEY_VERIFIER_URL", "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOneLineError(t, runCLI(append(tc.args, "--kubeconfig", kc)...), tc.want...)
		})
	}

	t.Run("no kubeconfig at all", func(t *testing.T) {
		t.Setenv("KUBECONFIG", "")
		t.Setenv("HOME", t.TempDir())
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		wantOneLineError(t, runCLI("get"), "no cluster configured", "--kubeconfig", "KUBECONFIG")
	})
	t.Run("missing kubeconfig file", func(t *testing.T) {
		wantOneLineError(t, runCLI("get", "--kubeconfig", filepath.Join(t.TempDir(), "nope")), "loading kubeconfig", "--kubeconfig")
	})
}

// TestAPIRejections: what only the cluster knows (other clients, the
// webhook's rules, the operator's state) fails the same way: one line, the
// API server's own message when it has one.
func TestAPIRejections(t *testing.T) {
	f := newFixture(t)
	f.mustRun("create", "--scope", "system", "--id", "Sys_Admin")
	f.mustRun("create", "--scope", "system", "--id", "chosen", "--secret", "s3cret-chosen-by-a-human")

	// A Secret that is not Latchkey's, where a client's Secret would go.
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "taken"}, StringData: map[string]string{"x": "y"}}
	if err := env.Client.Create(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		args []string
		want []string
	}{
		// Not a resource name, so both get generated names: the webhook
		// refuses the second one's client id.
		{"duplicate client id (webhook)", []string{"create", "--scope", "system", "--id", "Sys_Admin"},
			[]string{`denied the request`, "Sys_Admin"}},
		{"name taken", []string{"create", "--scope", "system", "--id", "chosen"}, []string{"chosen", "already exists"}},
		{"unknown id", []string{"get", "--id", "nobody"}, []string{`no API client with id "nobody"`, "get -n " + f.ns}},
		{"grant outside the saved scopes", []string{"grant", "--id", "Sys_Admin", "--permission", "blogs.read"},
			[]string{`"blogs.read" is not valid for scopes system`}},
		{"revoke outside the saved scopes", []string{"revoke", "--id", "Sys_Admin", "--permission", "blogs.read"}, []string{"not valid for scopes system"}},
		{"issue a permission the client lacks", []string{"issue", "--id", "Sys_Admin", "--permission", "system.organizations.read"},
			[]string{"not granted to client Sys_Admin", "grant --id Sys_Admin"}},
		{"rotate a chosen secret", []string{"rotate", "--id", "chosen"}, []string{"put the new secret there"}},
		{"rotate an unknown grant", []string{"rotate", "--grant", "nope"}, []string{`no CredentialGrant "nope"`}},
		{"not Ready in time", []string{"create", "--scope", "system", "--id", "taken", "--timeout", "3s"},
			[]string{"ApiClient " + f.ns + "/taken is not Ready after 3s", "SecretConflict", "--timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOneLineError(t, f.run(tc.args...), tc.want...)
		})
	}
}

// TestWhoamiClient checks the HTTP side of whoami against a stand-in
// verifier: the token is sent as a bearer token, read from stdin with
// --token -, and the answer printed as JSON or text.
func TestWhoamiClient(t *testing.T) {
	const tok = "lk_ABC_secret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/base/v1/current" || r.Header.Get("Authorization") != "Bearer "+tok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_token"}`)
			return
		}
		_, _ = io.WriteString(w, "{\n  \"client_id\": \"id_x\",\n  \"permissions\": [\"a.b\", \"a.c\"],\n  \"tenant\": null\n}\n")
	}))
	defer srv.Close()
	base := srv.URL + "/base"

	r := runCLI("whoami", "--token", tok, "--verifier", base)
	if r.code != 0 || r.stdout != `{"client_id":"id_x","permissions":["a.b","a.c"],"tenant":null}`+"\n" {
		t.Errorf("whoami: %+v", r)
	}
	r = runCLIWithInput(tok+"\n", "whoami", "--token", "-", "--verifier", base, "--format", "text")
	if r.code != 0 || !strings.Contains(r.stdout, "permissions:  a.b, a.c") || !strings.Contains(r.stdout, "tenant:       (none)") {
		t.Errorf("whoami --format text: %+v", r)
	}
	t.Setenv("LATCHKEY_VERIFIER_URL", base)
	t.Setenv("LATCHKEY_TOKEN", tok)
	if r := runCLI("whoami"); r.code != 0 {
		t.Errorf("whoami from the environment: %+v", r)
	}
	wantOneLineError(t, runCLI("whoami", "--token", "wrong"), "rejected the token", "401")
}

// TestHelp: every verb has -h/--help, named as the program was invoked.
func TestHelp(t *testing.T) {
	for _, verb := range []string{"", "create", "get", "grant", "revoke", "issue", "rotate", "activate", "deactivate", "delete", "whoami"} {
		args := strings.Fields(verb + " --help")
		r := runCLI(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, "api-client "+verb) {
			t.Errorf("%s --help: exit %d\n%s%s", verb, r.code, r.stdout, r.stderr)
		}
		if r := runCLI(strings.Fields(verb + " -h")...); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%s -h: exit %d", verb, r.code)
		}
	}
	r := runCLI("create", "--help")
	for _, flag := range []string{"--scope", "--permission", "--tenant", "--organization-id", "--name", "--id", "--secret", "--allow-impersonate", "--allow-login", "--format", "--kubeconfig", "--context", "--namespace"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("create --help lacks %s", flag)
		}
	}
}
