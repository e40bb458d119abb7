package image

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// chartFile is the packaged chart: its version is the release's without v.
var chartFile = "latchkey-" + strings.TrimPrefix(Version, "v") + ".tgz"

// TestReleaseFiles: the release holds the image archives, the CLI, the
// install.yaml and the chart, and SHA256SUMS lists exactly them with the
// right sums.
func TestReleaseFiles(t *testing.T) {
	want := []string{
		"install.yaml",
		"kubectl-latchkey-" + Version + "-" + platform,
		chartFile,
		"latchkey-" + Version + "-" + platform + ".tar",
		"latchkey-" + Version + ".oci.tar",
	}
	f, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var listed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q is not '<sum>  <file>' (sha256sum -c reads that)", sc.Text())
		}
		listed = append(listed, name)
		if got := fileSum(t, filepath.Join(dist, name)); got != sum {
			t.Errorf("%s: SHA256SUMS says %s, the file's sum is %s", name, sum, got)
		}
	}
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("SHA256SUMS lists %q, want %q", listed, want)
	}
	// sha256sum -c, as docs/release.md tells users to run it.
	if p, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(p, "-c", "SHA256SUMS")
		cmd.Dir = dist
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
		}
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestVersion: the released CLI, installed under its plugin name, and the
// manager that went into the image print the stamped version.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	cli := filepath.Join(dir, "kubectl-latchkey")
	data, err := os.ReadFile(filepath.Join(dist, "kubectl-latchkey-"+Version+"-"+platform))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cli, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ bin, want string }{
		{cli, "kubectl latchkey version " + Version + "\n"},
		{filepath.Join(build, platform, "manager"), "latchkey manager version " + Version + "\n"},
	} {
		out, err := exec.Command(c.bin, "--version").CombinedOutput()
		if err != nil || string(out) != c.want {
			t.Errorf("%s --version: %v, %q; want %q", c.bin, err, out, c.want)
		}
	}
}

// TestInstallYAML: install.yaml is config/default with the release's image.
func TestInstallYAML(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(dist, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	images := imageLines(string(data))
	if len(images) == 0 || slices.ContainsFunc(images, func(s string) bool { return s != Repository+":"+Version }) {
		t.Errorf("install.yaml images: %q, want only %s:%s", images, Repository, Version)
	}
	for _, kind := range []string{"CustomResourceDefinition", "Deployment", "ValidatingWebhookConfiguration", "Namespace"} {
		if !strings.Contains(string(data), "\nkind: "+kind+"\n") {
			t.Errorf("install.yaml has no %s", kind)
		}
	}
}

// TestChart: helm lint and helm template pass on the packaged chart, and
// its default image is the release's.
func TestChart(t *testing.T) {
	chart := filepath.Join(dist, chartFile)
	helm := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(helmBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	helm("lint", chart)
	helm("lint", chart, "--set", "watchNamespaces={team-a,team-b}", "--set", "certManager.enabled=true")
	show := helm("show", "chart", chart)
	for _, want := range []string{"\nversion: " + strings.TrimPrefix(Version, "v") + "\n", "\nappVersion: " + Version + "\n"} {
		if !strings.Contains("\n"+show, want) {
			t.Errorf("helm show chart lacks %q:\n%s", strings.TrimSpace(want), show)
		}
	}
	images := imageLines(helm("template", "latchkey", chart, "--namespace", "latchkey-system"))
	if len(images) == 0 || slices.ContainsFunc(images, func(s string) bool { return s != Repository+":"+Version }) {
		t.Errorf("helm template images: %q, want only %s:%s", images, Repository, Version)
	}
	// A tag or digest set by the user still wins.
	images = imageLines(helm("template", "latchkey", chart, "--set", "image.tag=v9.9.9"))
	if len(images) == 0 || images[0] != Repository+":v9.9.9" {
		t.Errorf("helm template --set image.tag=v9.9.9: images %q", images)
	}
}

// imageLines are the values of every "image:" line of rendered manifests.
func imageLines(manifests string) []string {
	var out []string
	for _, l := range strings.Split(manifests, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "image: "); ok {
			out = append(out, strings.Trim(v, `"'`))
		}
	}
	return out
}
