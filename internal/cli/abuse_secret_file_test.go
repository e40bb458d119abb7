package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

const longSecret = "kept-out-of-shell-history-0123456789"

// TestAbuseCreateSecretChecks: a chosen secret shorter than 16 characters,
// or given twice, or from an empty or unreadable file, is refused before any
// API call, with one line that says what to do.
func TestAbuseCreateSecretChecks(t *testing.T) {
	kc := unreachableKubeconfig(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty, short, long := write("empty", "\n"), write("short", "s3cret\n"), write("long", longSecret+"\n")
	tooShort := []string{"fewer than 16 characters", "openssl rand -base64 32", "--secret-file -", "leave out --secret"}
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"short --secret", "", []string{"--secret", "s3cret"}, tooShort},
		{"15 characters", "", []string{"--secret", "fifteen-chars-x"}, tooShort},
		{"short --secret-file", "", []string{"--secret-file", short}, tooShort},
		{"short secret on standard input", "s3cret\n", []string{"--secret-file", "-"}, tooShort},
		{"both flags", "", []string{"--secret", longSecret, "--secret-file", long}, []string{"--secret and --secret-file", "give only one"}},
		{"empty file", "", []string{"--secret-file", empty}, []string{"is empty", "leave the flag out"}},
		{"empty standard input", "", []string{"--secret-file", "-"}, []string{"--secret-file - is empty"}},
		{"missing file", "", []string{"--secret-file", filepath.Join(dir, "nope")}, []string{"reading --secret-file", "nope"}},
		{"file too large", "", []string{"--secret-file", write("large", strings.Repeat("x", 65<<10))}, []string{"larger than 64 KiB"}},
		// Valid: validation passes, so the command gets as far as the API.
		{"long --secret-file", "", []string{"--secret-file", long}, []string{"cannot reach"}},
		{"long secret on standard input", longSecret + "\r\n", []string{"--secret-file", "-"}, []string{"cannot reach"}},
		{"exactly 16 characters", "", []string{"--secret", "exactly-16-chars"}, []string{"cannot reach"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"create", "--scope", "system", "--kubeconfig", kc}, tc.args...)
			r := runCLIWithInput(tc.stdin, args...)
			wantOneLineError(t, r, tc.want...)
			if strings.Contains(r.stderr, "s3cret") || strings.Contains(r.stderr, longSecret) {
				t.Errorf("the error tells the secret: %s", r.stderr)
			}
		})
	}
}

// The CLI's minimum is the API's.
func TestAbuseCreateSecretMinimumIsTheWebhooks(t *testing.T) {
	if webhookv1alpha1.MinChosenSecretLength != 16 {
		t.Fatalf("the webhook's minimum is %d; the CLI checks 16: change both", webhookv1alpha1.MinChosenSecretLength)
	}
}

// TestAbuseCreateSecretFile: --secret-file (a file, or '-' for standard
// input) creates the client with exactly that secret, without its trailing
// line break, and the verifier accepts it.
func TestAbuseCreateSecretFile(t *testing.T) {
	f := newFixture(t)
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(longSecret+"-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, stdin, file, want string
	}{
		{"from-stdin", longSecret + "-stdin\n", "-", longSecret + "-stdin"},
		{"from-file", "", p, longSecret + "-file"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			r := runCLIWithInput(tc.stdin, "create", "--scope", "system", "--id", tc.id, "--secret-file", tc.file,
				"--kubeconfig", f.kubeconfig, "-n", f.ns)
			if r.code != 0 {
				t.Fatalf("exit code %d: %s", r.code, r.stderr)
			}
			rec := object(t, r.stdout)
			if rec["secret"] != tc.want {
				t.Errorf("printed secret %q, want %q", rec["secret"], tc.want)
			}
			f.checkIssued(rec)
			f.wantVerify("the secret read by --secret-file", basic(tc.id, tc.want), 200)
		})
	}
}
