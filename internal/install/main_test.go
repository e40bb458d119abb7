package install

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var (
	env *testenv.Env
	// helmBin and kustomizeBin are the tools `make test` built.
	helmBin, kustomizeBin string
	// managerBin is cmd/ built once for the package.
	managerBin string
)

func TestMain(m *testing.M) {
	helmBin, kustomizeBin = os.Getenv("HELM"), os.Getenv("KUSTOMIZE")
	for name, path := range map[string]string{"HELM": helmBin, "KUSTOMIZE": kustomizeBin} {
		if path == "" {
			fmt.Fprintf(os.Stderr, "install: $%s is not set: run the tests with 'make test', which builds helm and kustomize (hack/tool.sh) and exports their paths\n", name)
			os.Exit(1)
		}
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(os.Stderr, "install: $%s: %v\n", name, err)
			os.Exit(1)
		}
	}
	dir, err := os.MkdirTemp("", "latchkey-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Build the manager while the control plane starts.
	managerBin = filepath.Join(dir, "manager")
	code := func() int {
		defer func() { _ = os.RemoveAll(dir) }()
		return testenv.RunWhileStarting(m, &env, testenv.Options{}, func() error {
			cmd := exec.Command("go", "build", "-o", managerBin, "./cmd")
			cmd.Dir = testenv.RepoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("building the manager: %v\n%s", err, out)
			}
			return nil
		})
	}()
	os.Exit(code)
}
