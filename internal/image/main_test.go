package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// Version is the release the tests build.
const Version = "v0.2.0"

// Repository is the image repository of the release.
const Repository = "ghcr.io/latchkey-dev/latchkey"

var (
	env *testenv.Env
	// dist and build are hack/release.sh's DIST and BUILD_DIR.
	dist, build string
	// helmBin is the helm the release was packaged with.
	helmBin string
	// platform is this machine's os-arch, the only one built.
	platform = runtime.GOOS + "-" + runtime.GOARCH
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if runtime.GOOS != "linux" {
			fmt.Fprintln(os.Stderr, "image: the release tests build and run linux images and need linux")
			return 1
		}
		dir, err := os.MkdirTemp("", "latchkey-image-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = os.RemoveAll(dir) }()
		dist, build = filepath.Join(dir, "dist"), filepath.Join(dir, "build")

		// Build the release while the control plane starts.
		return testenv.RunWhileStarting(m, &env, testenv.Options{}, buildRelease)
	}())
}

// buildRelease runs hack/release.sh for this machine's platform only (the
// cross builds take minutes on a small machine and add nothing the tests
// check).
func buildRelease() error {
	root := testenv.RepoRoot()
	helmBin = os.Getenv("HELM")
	kustomize := os.Getenv("KUSTOMIZE")
	if helmBin == "" || kustomize == "" {
		// Outside make test: the tools make builds (and pins).
		out, err := exec.Command("make", "-s", "--no-print-directory", "-C", root, "tools").Output()
		if err != nil {
			return fmt.Errorf("make tools (for helm and kustomize; or set $HELM and $KUSTOMIZE): %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "HELM="); ok {
				helmBin = v
			} else if v, ok := strings.CutPrefix(l, "KUSTOMIZE="); ok {
				kustomize = v
			}
		}
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "hack", "release.sh"))
	cmd.Env = append(os.Environ(),
		"VERSION="+Version, "IMAGE="+Repository, "DIST="+dist, "BUILD_DIR="+build,
		"IMAGE_PLATFORMS="+runtime.GOOS+"/"+runtime.GOARCH, "CLI_PLATFORMS="+runtime.GOOS+"/"+runtime.GOARCH,
		"HELM="+helmBin, "KUSTOMIZE="+kustomize)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hack/release.sh: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "image: built release %s for %s in %s\n", Version, platform, time.Since(start).Round(time.Second))
	return nil
}
