package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// podman runs rootful podman on a store of its own (a temporary directory),
// so the test neither sees nor leaves images and containers in the
// machine's store, and two runs at once do not meet.
type podman struct {
	t   *testing.T
	bin string
	// global are the flags before the verb.
	global []string
}

// podmanGlobalFlags work on a machine without systemd (cgroupfs, events to
// a file) and keep every piece of state under dir. vfs needs no kernel
// overlay support and leaves no mounts behind.
func podmanGlobalFlags(dir string) []string {
	return []string{
		"--root", filepath.Join(dir, "root"),
		"--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
	}
}

// podmanRunFlags make `podman run` work here: runc (crun cannot run
// containers on this kind of machine), and rlimits no higher than the
// machine's hard limits (podman's defaults exceed them, and runc then fails
// with "error setting rlimit type 7: operation not permitted").
var podmanRunFlags = []string{
	"--runtime", "runc",
	"--ulimit", "nofile=1024:1024",
	"--ulimit", "nproc=1000:1000",
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("podman is not installed: run 'apt-get install podman runc' (make test does, through hack/test-peers.sh)")
	}
	dir := t.TempDir()
	return &podman{t: t, bin: bin, global: podmanGlobalFlags(dir)}
}

// run runs podman and returns its stdout; it fails the test on an error.
func (p *podman) run(args ...string) string {
	p.t.Helper()
	out, err := p.try(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *podman) try(args ...string) (string, error) {
	cmd := exec.Command(p.bin, append(slices.Clone(p.global), args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// TestContainer loads the release's image for this platform into podman,
// checks its metadata, and runs the operator from it against the test API
// server until an ApiClient is Ready.
func TestContainer(t *testing.T) {
	ctx := context.Background()
	p := newPodman(t)
	ref := Repository + ":" + Version

	start := time.Now()
	p.run("load", "--quiet", "--input", filepath.Join(dist, "latchkey-"+Version+"-"+platform+".tar"))
	t.Cleanup(func() {
		if _, err := p.try("rmi", "--force", ref); err != nil {
			t.Log(err)
		}
	})
	t.Logf("podman load: %s", time.Since(start).Round(time.Millisecond))

	t.Run("metadata", func(t *testing.T) {
		var inspected []struct {
			Config struct {
				User       string
				Entrypoint []string
				Labels     map[string]string
			}
			Os, Architecture string
		}
		if err := json.Unmarshal([]byte(p.run("image", "inspect", ref)), &inspected); err != nil || len(inspected) != 1 {
			t.Fatalf("podman image inspect: %v (%d images)", err, len(inspected))
		}
		img := inspected[0]
		if img.Config.User != "65532:65532" || !slices.Equal(img.Config.Entrypoint, []string{"/manager"}) {
			t.Errorf("user %q, entrypoint %q; want 65532:65532 and [/manager]", img.Config.User, img.Config.Entrypoint)
		}
		if platform != img.Os+"-"+img.Architecture {
			t.Errorf("platform %s-%s, want %s", img.Os, img.Architecture, platform)
		}
		for k, v := range map[string]string{
			"org.opencontainers.image.version": Version,
			"org.opencontainers.image.source":  "https://github.com/latchkey-dev/latchkey",
		} {
			if img.Config.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, img.Config.Labels[k], v)
			}
		}
		if img.Config.Labels["org.opencontainers.image.revision"] == "" {
			t.Errorf("no org.opencontainers.image.revision label: %v", img.Config.Labels)
		}
	})

	t.Run("--version", func(t *testing.T) {
		out := p.run(append(append([]string{"run", "--rm"}, podmanRunFlags...), ref, "--version")...)
		if want := "latchkey manager version " + Version + "\n"; out != want {
			t.Errorf("podman run %s --version: %q, want %q", ref, out, want)
		}
	})

	t.Run("the operator runs and an ApiClient goes Ready", func(t *testing.T) {
		ns, opNs := env.Namespace(t), env.Namespace(t)
		// The kubeconfig, readable by the image's user 65532.
		kcDir := t.TempDir()
		if err := os.Chmod(kcDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(kcDir, "kubeconfig"), env.KubeConfig, 0o644); err != nil {
			t.Fatal(err)
		}
		name := "latchkey-" + opNs
		args := append([]string{"run", "--detach", "--name", name}, podmanRunFlags...)
		args = append(args,
			"--network", "host", // the test API server listens on 127.0.0.1
			"--volume", kcDir+":/kube:ro",
			"--env", "KUBECONFIG=/kube/kubeconfig",
			"--read-only", "--tmpfs", "/tmp", // as the Deployments run it
			ref,
			"--enable-webhooks=false", "--namespace", opNs, "--watch-namespaces", ns,
			"--metrics-bind-address=0", "--health-probe-bind-address=0", "--verifier-bind-address=0",
		)
		start := time.Now()
		p.run(args...)
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := p.try("logs", name)
				t.Logf("container logs:\n%s", logs)
			}
			if _, err := p.try("rm", "--force", "--time", "5", name); err != nil {
				t.Log(err)
			}
		})

		ac := &latchkeyv1alpha1.ApiClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "from-the-image"},
			Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}},
		}
		if err := env.Client.Create(ctx, ac); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ac.Name}, ac); err != nil {
				t.Fatal(err)
			}
			if meta.IsStatusConditionTrue(ac.Status.Conditions, latchkeyv1alpha1.ConditionReady) {
				break
			}
			if state, _ := p.try("inspect", "--format", "{{.State.Status}}", name); strings.TrimSpace(state) != "running" {
				t.Fatalf("the container is %s, not running", strings.TrimSpace(state))
			}
			if time.Now().After(deadline) {
				t.Fatalf("ApiClient not Ready after 90s: %+v", ac.Status.Conditions)
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("container start to ApiClient Ready: %s", time.Since(start).Round(time.Millisecond))
		var secret corev1.Secret
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ac.EffectiveSecretName()}, &secret); err != nil {
			t.Fatalf("the operator in the container wrote no Secret: %v", err)
		}
		if len(secret.Data["client_id"]) == 0 || len(secret.Data["client_secret"]) == 0 {
			t.Errorf("Secret %s lacks client_id or client_secret: keys %v", secret.Name, keys(secret.Data))
		}
	})
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
