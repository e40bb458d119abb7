package image

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestOCIArchive: the OCI archive is an image layout whose index.json holds
// one OCI image index named <repository>:<version> (what skopeo copy --all
// pushes), with one image per platform, the same image as the per-platform
// archive.
func TestOCIArchive(t *testing.T) {
	dir := t.TempDir()
	untar(t, filepath.Join(dist, "latchkey-"+Version+".oci.tar"), dir)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json: want one OCI image index, got %+v", tm.Manifests)
	}
	if got := tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != Repository+":"+Version {
		t.Errorf("index.json ref.name %q, want %s:%s", got, Repository, Version)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("the test release has one platform, the index has %d", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.MediaType != types.OCIManifestSchema1 || d.Platform == nil || d.Platform.OS != runtime.GOOS || d.Platform.Architecture != runtime.GOARCH || d.ArtifactType != "" {
		t.Errorf("index entry %+v: want an OCI image manifest for %s, without artifactType", d, platform)
	}

	img, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// The per-platform archive holds the same image: the same config (the
	// image ID podman shows). Its manifest differs: a docker-archive has
	// none, and readers make up a Docker one.
	tb, err := tarball.ImageFromPath(filepath.Join(dist, "latchkey-"+Version+"-"+platform+".tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tb.ConfigName(); err != nil || got != want {
		t.Errorf("latchkey-%s-%s.tar holds config %v (%v), the index %v", Version, platform, got, err, want)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || strings.Join(cf.Config.Entrypoint, " ") != "/manager" {
		t.Errorf("config: user %q, entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("want one layer: %d, %v", len(layers), err)
	}
	if got := layerFiles(t, layers[0]); strings.Join(got, " ") != "tmp/ dtrwxrwxrwx manager -rwxr-xr-x" {
		t.Errorf("layer files: %q, want tmp/ (1777) and manager (0755)", got)
	}
}

func layerFiles(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		out = append(out, h.Name, h.FileInfo().Mode().String())
	}
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(path, dir+string(filepath.Separator)) {
			t.Fatalf("%s: entry %q leaves the directory", file, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var out *os.File
			if out, err = os.Create(path); err == nil {
				_, err = io.Copy(out, tr)
				err = errors.Join(err, out.Close())
			}
		default:
			t.Fatalf("%s: unexpected entry %q (type %c)", file, h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
