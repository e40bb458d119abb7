// Command image assembles Latchkey's container image from static manager
// binaries that are already built (hack/image.sh builds them), with no Docker
// daemon and no registry: an empty base, one layer holding /manager and /tmp,
// user 65532:65532 (distroless's "nonroot", numeric so no /etc/passwd is
// needed), entrypoint /manager, and the OCI labels. It writes
//
//	<out>/<name>-<version>.oci.tar                an OCI image layout (tar) whose
//	                                              index.json holds one multi-arch
//	                                              image index named
//	                                              <repository>:<version>
//	<out>/<name>-<version>-<os>-<arch>.tar        one docker-archive per platform,
//	                                              tagged <repository>:<version>
//	                                              (podman load / docker load)
//
// and prints the digests. With -created (seconds since the epoch, for
// example the commit time) the output is byte-for-byte reproducible.
//
//	go run ./hack/image -version v0.2.0 -repository ghcr.io/latchkey-dev/latchkey \
//	    -binary linux/amd64=bin/image/linux-amd64/manager \
//	    -binary linux/arm64=bin/image/linux-arm64/manager -out dist
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is distroless's nonroot user and group; the chart's and kustomize's
// securityContext (runAsNonRoot) accept it because it is numeric.
const User = "65532:65532"

type binaries []string

func (b *binaries) String() string     { return strings.Join(*b, ",") }
func (b *binaries) Set(s string) error { *b = append(*b, s); return nil }

func main() {
	var bins binaries
	var o options
	flag.Var(&bins, "binary", "os/arch=path of a static manager binary; repeat for each platform")
	flag.StringVar(&o.repository, "repository", "ghcr.io/latchkey-dev/latchkey", "Repository the per-platform archives are tagged with")
	flag.StringVar(&o.version, "version", "", "Image tag and org.opencontainers.image.version")
	flag.StringVar(&o.source, "source", "https://github.com/latchkey-dev/latchkey", "org.opencontainers.image.source")
	flag.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision (the git commit)")
	flag.Int64Var(&o.created, "created", 0, "Creation time, seconds since the epoch (for example the commit time, SOURCE_DATE_EPOCH); 0: the epoch")
	flag.StringVar(&o.out, "out", "dist", "Output directory")
	flag.StringVar(&o.name, "name", "latchkey", "File name prefix")
	flag.Parse()
	if err := run(o, bins); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

type options struct {
	repository, version, source, revision, out, name string
	created                                          int64
}

func run(o options, bins binaries) error {
	if o.version == "" {
		return errors.New("-version is required")
	}
	if len(bins) == 0 {
		return errors.New("at least one -binary os/arch=path is required")
	}
	tag, err := name.NewTag(o.repository + ":" + o.version)
	if err != nil {
		return fmt.Errorf("-repository and -version do not make an image reference: %w", err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	created := time.Unix(o.created, 0).UTC()

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range bins {
		platform, path, ok := strings.Cut(b, "=")
		osName, arch, ok2 := strings.Cut(platform, "/")
		if !ok || !ok2 || osName == "" || arch == "" || path == "" {
			return fmt.Errorf("-binary %q: want os/arch=path", b)
		}
		img, err := build(o, osName, arch, path, created)
		if err != nil {
			return fmt.Errorf("%s: %w", platform, err)
		}
		file := filepath.Join(o.out, fmt.Sprintf("%s-%s-%s-%s.tar", o.name, o.version, osName, arch))
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s\t%s\n", platform, digest, file)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        plainImage{img},
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}

	file := filepath.Join(o.out, fmt.Sprintf("%s-%s.oci.tar", o.name, o.version))
	digest, err := writeLayoutTar(file, idx, tag.String())
	if err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	fmt.Printf("index\t%s\t%s\n", digest, file)
	return nil
}

// plainImage is an image whose index descriptor has no artifactType:
// go-containerregistry sets it to the config's media type, which the OCI
// spec allows but older readers (skopeo 1.9) do not know, so they rewrite
// the index and its digest changes on push.
type plainImage struct{ v1.Image }

// ArtifactType is empty: an image, not an artifact.
func (plainImage) ArtifactType() (string, error) { return "", nil }

// build makes the image of one platform: an empty base plus one layer.
func build(o options, osName, arch, binary string, created time.Time) (v1.Image, error) {
	manager, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootfs(manager, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image: /manager (" + o.version + ")"},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{"/manager"},
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "latchkey",
			"org.opencontainers.image.description": "Latchkey: API client credentials as Kubernetes resources",
			"org.opencontainers.image.version":     o.version,
			"org.opencontainers.image.source":      o.source,
			"org.opencontainers.image.revision":    o.revision,
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer: /tmp (1777, as in distroless: the webhook's
// certificate directory lives under it) and /manager (0755), owned by root
// so the non-root user cannot replace the binary.
func rootfs(manager []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		hdr  tar.Header
		data []byte
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "manager", Mode: 0o755, Size: int64(len(manager))}, manager},
	}
	for _, e := range entries {
		h := e.hdr
		h.ModTime, h.Format = mtime, tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeLayoutTar writes idx as an OCI image layout whose index.json holds
// one entry, the image index, named ref (org.opencontainers.image.ref.name,
// the full reference as containerd writes it: podman load and ctr import
// tag the image with it), and tars it with fixed times and sorted names so
// the archive is reproducible.
func writeLayoutTar(file string, idx v1.ImageIndex, ref string) (v1.Hash, error) {
	dir, err := os.MkdirTemp(filepath.Dir(file), ".oci-layout-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return v1.Hash{}, err
	}
	digest, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, tarDir(dir, file)
}

// tarDir writes the files under dir into the tar file, sorted, with zero
// times and owners.
func tarDir(dir, file string) error {
	var paths []string
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		paths = append(paths, path)
		return nil
	}); err != nil {
		return err
	}
	sort.Strings(paths)
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }()
	tw := tar.NewWriter(f)
	for _, path := range paths {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		} else {
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.IsDir() {
			if err := copyFile(tw, path); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	_, err = io.Copy(w, f)
	return err
}
