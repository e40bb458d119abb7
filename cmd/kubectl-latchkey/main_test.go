package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{}) }

// build compiles this command into dir under the given file name.
func build(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return out
}

// kubectl is the kubectl built with the control plane (hack/control-plane.sh
// puts it next to kube-apiserver, in KUBEBUILDER_ASSETS).
func kubectl(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no kubectl in KUBEBUILDER_ASSETS (run hack/control-plane.sh): %v", err)
	}
	return p
}

type run struct {
	code           int
	stdout, stderr string
}

func execute(t *testing.T, pathDir, bin string, args ...string) run {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PATH="+pathDir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return run{code: code, stdout: out.String(), stderr: errOut.String()}
}

// TestKubectlPlugin runs the built binary three ways: directly, as the
// kubectl plugin "kubectl latchkey" found on PATH by the real kubectl, and
// under the name api-client.
func TestKubectlPlugin(t *testing.T) {
	ctx := context.Background()
	ns, opNs := env.Namespace(t), env.Namespace(t)
	env.StartManager(t, operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}})

	dir := t.TempDir()
	plugin := build(t, dir, "kubectl-latchkey")
	apiClient := filepath.Join(dir, "api-client")
	if err := os.Symlink(plugin, apiClient); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}

	// The binary itself: Decidim's fixed-credentials example.
	r := execute(t, dir, plugin, "create", "--scope", "system", "--permission", "system.organizations.update",
		"--permission", "system.organizations.read", "--id", "sysadmin-org", "--secret", "my-insecure-password",
		"--kubeconfig", kc, "-n", ns)
	want := `{"id":"sysadmin-org","secret":"my-insecure-password","name":"API Client ***-org","scopes":["system"],"permissions":["system.organizations.update","system.organizations.read"],"tenant":null}` + "\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("kubectl-latchkey create: exit %d\nstdout: %s\nstderr: %s\nwant: %s", r.code, r.stdout, r.stderr, want)
	}
	// A second client, created behind the CLI's back, for "get all".
	other := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "from-git"},
		Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2", DisplayName: "From Git"},
	}
	if err := env.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	k := kubectl(t)
	t.Run("kubectl plugin list finds it", func(t *testing.T) {
		r := execute(t, dir, k, "plugin", "list", "--name-only")
		if !strings.Contains(r.stdout, "kubectl-latchkey") {
			t.Errorf("kubectl plugin list: %+v", r)
		}
	})

	t.Run("kubectl latchkey get", func(t *testing.T) {
		var recs []map[string]any
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := execute(t, dir, k, "latchkey", "get", "--kubeconfig", kc, "-n", ns)
			if r.code != 0 {
				t.Fatalf("kubectl latchkey get: exit %d, stderr: %s", r.code, r.stderr)
			}
			recs = nil
			for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				recs = append(recs, m)
			}
			// from-git's secret appears once the operator has issued it.
			if len(recs) == 2 && recs[0]["secret"] != nil && recs[1]["secret"] != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl latchkey get: %s\nstderr: %s", r.stdout, r.stderr)
			}
			time.Sleep(200 * time.Millisecond)
		}
		byID := map[string]map[string]any{}
		for _, m := range recs {
			byID[fmt.Sprint(m["id"])] = m
		}
		if m := byID["sysadmin-org"]; m == nil || m["secret"] != "my-insecure-password" || m["name"] != "API Client ***-org" {
			t.Errorf("sysadmin-org: %v", m)
		}
		var git map[string]any
		for id, m := range byID {
			if id != "sysadmin-org" {
				git = m
			}
		}
		if git["name"] != "From Git" || git["tenant"] != "2" || !strings.HasPrefix(fmt.Sprint(git["id"]), "id_") {
			t.Errorf("from-git: %v", git)
		}

		// One client, through kubectl, in text; and the namespace from
		// the kubeconfig context would be "default": -n is passed through.
		r := execute(t, dir, k, "latchkey", "get", "--id", "sysadmin-org", "--format", "text", "--kubeconfig", kc, "--namespace", ns)
		if r.code != 0 || !strings.Contains(r.stdout, "my-insecure-password") || !strings.Contains(r.stdout, "Resource:") {
			t.Errorf("kubectl latchkey get --id --format text: %+v", r)
		}
	})

	t.Run("kubectl latchkey names itself and fails with one line", func(t *testing.T) {
		r := execute(t, dir, k, "latchkey", "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "kubectl latchkey [command]") {
			t.Errorf("kubectl latchkey --help: %+v", r)
		}
		r = execute(t, dir, k, "latchkey", "create", "--kubeconfig", kc, "-n", ns)
		if r.code == 0 || r.stderr != "error: --scope is required: give each area of the API the client may touch, for example --scope system or --scope blogs\n" {
			t.Errorf("kubectl latchkey create without --scope: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("as api-client", func(t *testing.T) {
		r := execute(t, dir, apiClient, "get", "--id", "sysadmin-org", "--kubeconfig", kc, "-n", ns)
		if r.code != 0 || r.stdout != want {
			t.Errorf("api-client get: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		r = execute(t, dir, apiClient, "grant", "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "api-client grant --id ID --permission PERMISSION...") {
			t.Errorf("api-client grant --help: %+v", r)
		}
	})
}
