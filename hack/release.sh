#!/usr/bin/env bash
# Writes a Latchkey release into $DIST (default dist/), with no Docker daemon
# and no registry (docs/release.md):
#
#   latchkey-$VERSION.oci.tar                 the operator image, OCI layout, linux/amd64 + linux/arm64
#   latchkey-$VERSION-linux-<arch>.tar        the same image per platform (podman/docker load -i)
#   kubectl-latchkey-$VERSION-<os>-<arch>     the CLI (kubectl plugin), linux/darwin x amd64/arm64
#   install.yaml                              the kustomize install (config/default), image $IMAGE:$VERSION
#   latchkey-${VERSION#v}.tgz                 the Helm chart, appVersion (default image tag) $VERSION
#   SHA256SUMS                                sha256sum -c SHA256SUMS
#
# Every binary has $VERSION stamped into internal/version (--version).
#
#   VERSION          required, vMAJOR.MINOR.PATCH[-PRERELEASE], e.g. v0.2.0
#   IMAGE            image repository (default ghcr.io/latchkey-dev/latchkey)
#   IMAGE_PLATFORMS  default "linux/amd64 linux/arm64"
#   CLI_PLATFORMS    default "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"
#   DIST, BUILD_DIR  output and intermediate directories (default dist, bin/release)
#   HELM, KUSTOMIZE  tool paths (default: the ones `make tools` builds)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-}"
IMAGE="${IMAGE:-ghcr.io/latchkey-dev/latchkey}"
IMAGE_PLATFORMS="${IMAGE_PLATFORMS:-linux/amd64 linux/arm64}"
CLI_PLATFORMS="${CLI_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}"
DIST="${DIST:-dist}"
BUILD_DIR="${BUILD_DIR:-bin/release}"
PKG=github.com/latchkey-dev/latchkey

log() { echo "release: $*" >&2; }
die() { log "$*"; exit 1; }

semver='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$'
[[ "${VERSION}" =~ ${semver} ]] ||
  die "VERSION must be a version tag like v0.2.0 (got '${VERSION}'): make release VERSION=v0.2.0"
if [[ -z "${HELM:-}" || -z "${KUSTOMIZE:-}" ]]; then
  eval "$(make -s --no-print-directory tools | grep -E '^(HELM|KUSTOMIZE)=')"
fi
[[ -x "${HELM}" && -x "${KUSTOMIZE}" ]] || die "helm (${HELM}) or kustomize (${KUSTOMIZE}) is missing: run make tools"
# The chart ships its own copy of the CRDs (make manifests): never release
# a chart whose CRDs differ from config/crd.
diff -r config/crd/bases charts/latchkey/crds >/dev/null ||
  die "charts/latchkey/crds differs from config/crd/bases: run make manifests"
[[ -z "$(git status --porcelain 2>/dev/null)" ]] ||
  log "warning: the work tree has uncommitted changes; the release is built from them"

mkdir -p "${DIST}"
files=()
start=${SECONDS}

# The image, for every image platform.
DIST="${DIST}" BUILD_DIR="${BUILD_DIR}" VERSION="${VERSION}" IMAGE="${IMAGE}" PLATFORMS="${IMAGE_PLATFORMS}" QUIET=1 \
  hack/image.sh >/dev/null
files+=("latchkey-${VERSION}.oci.tar")
for platform in ${IMAGE_PLATFORMS}; do files+=("latchkey-${VERSION}-${platform%/*}-${platform#*/}.tar"); done

# The CLI.
for platform in ${CLI_PLATFORMS}; do
  os="${platform%/*}" arch="${platform#*/}"
  name="kubectl-latchkey-${VERSION}-${os}-${arch}"
  log "building ${name}"
  CGO_ENABLED=0 GOOS="${os}" GOARCH="${arch}" GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w -X ${PKG}/internal/version.Version=${VERSION}" \
    -o "${DIST}/${name}" ./cmd/kubectl-latchkey
  files+=("${name}")
done

# install.yaml: config/default with the image set to this version.
log "rendering install.yaml"
# kustomize takes only relative paths to bases: an overlay next to a copy
# of config/.
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
cp -R config "${work}/config"
mkdir "${work}/release"
cat >"${work}/release/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../config/default
images:
- name: ghcr.io/latchkey-dev/latchkey
  newName: ${IMAGE}
  newTag: ${VERSION}
EOF
"${KUSTOMIZE}" build "${work}/release" >"${DIST}/install.yaml"
grep -q "image: ${IMAGE}:${VERSION}\$" "${DIST}/install.yaml" ||
  die "install.yaml does not use ${IMAGE}:${VERSION}"
files+=("install.yaml")

# The chart: version without the v (SemVer), appVersion the image tag.
log "packaging the chart"
chart_version="${VERSION#v}"
"${HELM}" package charts/latchkey --version "${chart_version}" --app-version "${VERSION}" \
  --destination "${DIST}" >/dev/null
"${HELM}" lint "${DIST}/latchkey-${chart_version}.tgz" --quiet >/dev/null
files+=("latchkey-${chart_version}.tgz")

# Checksums of exactly this release's files.
(
  cd "${DIST}"
  if command -v sha256sum >/dev/null; then sha256sum "${files[@]}"; else shasum -a 256 "${files[@]}"; fi
) >"${DIST}/SHA256SUMS"

log "wrote ${VERSION} to ${DIST}/ in $((SECONDS - start))s:"
(cd "${DIST}" && ls -l "${files[@]}" SHA256SUMS) >&2
cat >&2 <<EOF

Publish: attach the files above to the GitHub release ${VERSION}, and push the image:
  skopeo copy --all --preserve-digests oci-archive:${DIST}/latchkey-${VERSION}.oci.tar docker://${IMAGE}:${VERSION}
(or crane: docs/release.md). Verify a download with: sha256sum -c SHA256SUMS
EOF
