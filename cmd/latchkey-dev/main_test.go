package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// TestEmbeddedRun runs the built latchkey-dev binary as `make run` does,
// drives it with the real kubectl the way the README's tour does, stops it
// with SIGINT and checks that it left no etcd or kube-apiserver behind.
func TestEmbeddedRun(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with 'make test', or export KUBEBUILDER_ASSETS=$(hack/control-plane.sh)")
	}
	kubectlPath := filepath.Join(assets, "kubectl")
	root := filepath.Join("..", "..")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "latchkey-dev")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	kubeconfig := filepath.Join(tmp, "kube", "kubeconfig")
	// Any free port for the verifier: a developer's own make run (or a
	// parallel test run) may hold the default 127.0.0.1:8082.
	cmd := exec.Command(bin, "--kubeconfig-out", kubeconfig, "--crd-dir", filepath.Join(root, "config", "crd", "bases"),
		"--webhook-manifest", filepath.Join(root, "config", "webhook", "manifests.yaml"),
		"--verifier-bind-address", "127.0.0.1:0")
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		// A failed test still must not leave a control plane running.
		children := childPIDs(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			t.Logf("latchkey-dev exited: %v", err)
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			for _, pid := range children {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		t.Logf("latchkey-dev output:\n%s\n%s", stdout, stderr)
	})

	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stdout.String(), "export KUBECONFIG="+kubeconfig) {
		if time.Now().After(deadline) {
			t.Fatalf("no kubeconfig announced within 60s")
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("latchkey-dev exited early: %v\n%s\n%s", err, stdout, stderr)
		case <-time.After(200 * time.Millisecond):
		}
	}

	kubectl := func(stdin string, args ...string) (string, error) {
		c := exec.Command(kubectlPath, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	mustKubectl := func(args ...string) string {
		t.Helper()
		out, err := kubectl("", args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	mustKubectl("apply", "-f", filepath.Join(root, "config", "samples")+string(filepath.Separator))

	out := mustKubectl("get", "apiclients,credentialgrants")
	for _, want := range []string{
		"CLIENT ID", "TENANT", "ACTIVE", "READY", "AGE", "apiclient.latchkey.dev/decidim-blogs-reader",
		"CLIENT", "TOKEN ID", "EXPIRES", "credentialgrant.latchkey.dev/blog-mirror-token",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get apiclients,credentialgrants lacks %q:\n%s", want, out)
		}
	}
	if out := mustKubectl("get", "cg", "-o", "wide"); !strings.Contains(out, "REASON") {
		t.Errorf("kubectl get cg -o wide lacks the Reason column:\n%s", out)
	}
	if out := mustKubectl("get", "latchkey"); !strings.Contains(out, "apiclient.latchkey.dev/sysadmin-org") {
		t.Errorf("the latchkey category does not list the ApiClients:\n%s", out)
	}

	if out := mustKubectl("explain", "apiclient.spec.scopes"); !strings.Contains(out, "scopes are the areas of the API the client may touch") {
		t.Errorf("kubectl explain apiclient.spec.scopes does not show the doc comment:\n%s", out)
	}

	sample, err := os.ReadFile(filepath.Join(root, "config", "samples", "latchkey_v1alpha1_apiclient_blogs_reader.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(sample), "    - blogs\n", "    - blogs\n    - proposals\n", 1)
	if changed == string(sample) {
		t.Fatal("could not add a scope to the blogs reader sample")
	}
	out, err = kubectl(changed, "apply", "-f", "-")
	if err == nil {
		t.Errorf("kubectl apply with changed spec.scopes succeeded:\n%s", out)
	} else if want := "spec.scopes: Invalid value: spec.scopes is immutable: create a new ApiClient"; !strings.Contains(out, want) {
		t.Errorf("kubectl apply with changed spec.scopes failed without %q:\n%s", want, out)
	}

	checkAdmission(t, kubectl)

	children := childPIDs(cmd.Process.Pid)
	if len(children) < 2 && procAvailable() {
		t.Errorf("want etcd and kube-apiserver as children of latchkey-dev, found pids %v", children)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("latchkey-dev exited with %v after SIGINT\n%s", err, stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("latchkey-dev did not stop within 60s of SIGINT")
	}
	for _, pid := range children {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d (%s) is still running after latchkey-dev stopped", pid, comm(pid))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(kubeconfig); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kubeconfig %s left behind (stat: %v)", kubeconfig, err)
	}
}

func procAvailable() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

// childPIDs lists the processes whose parent is pid, from /proc (Linux).
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces, so parse after ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			pids = append(pids, child)
		}
	}
	return pids
}

func comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// checkAdmission is issue 15's "make run with admission": the embedded API
// server calls the operator's webhook, so a rule that needs another object
// (a grant holds a subset of its client's permissions) is enforced locally.
func checkAdmission(t *testing.T, kubectl func(stdin string, args ...string) (string, error)) {
	t.Helper()
	const client = `apiVersion: latchkey.dev/v1alpha1
kind: ApiClient
metadata:
  name: admission-check
spec:
  displayName: Admission check
  scopes: [blogs]
  permissions: [blogs.read]
  tenant: "2"
`
	if out, err := kubectl(client, "apply", "-f", "-"); err != nil {
		t.Fatalf("creating ApiClient admission-check: %v\n%s", err, out)
	}
	grant := func(name, permission string) string {
		return `apiVersion: latchkey.dev/v1alpha1
kind: CredentialGrant
metadata:
  name: ` + name + `
spec:
  clientName: admission-check
  type: bearer
  permissions: [` + permission + `]
`
	}

	out, err := kubectl(grant("wider-than-client", "blogs.write"), "create", "-f", "-")
	if err == nil {
		t.Errorf("a CredentialGrant with blogs.write for a client holding only blogs.read was admitted:\n%s", out)
	} else {
		for _, want := range []string{
			// Only the webhook can say this: the CRD's rules never see the
			// ApiClient.
			`ApiClient "admission-check" does not hold permission "blogs.write"`,
			"add it to the ApiClient's spec.permissions",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the refusal of a grant wider than its client lacks %q:\n%s", want, out)
			}
		}
	}

	if out, err := kubectl(grant("within-client", "blogs.read"), "create", "-f", "-"); err != nil {
		t.Errorf("a CredentialGrant with the client's own blogs.read was refused: %v\n%s", err, out)
	}
}
