#!/usr/bin/env bash
# Builds Latchkey's container image without Docker or a registry: the static
# manager binary for each platform (CGO_ENABLED=0, -trimpath, the version
# stamped into internal/version), then hack/image (go-containerregistry)
# assembles them into an OCI image index on an empty base: user 65532:65532,
# entrypoint /manager, OCI labels (version, source, revision, created). It
# writes into $DIST:
#
#   latchkey-$VERSION.oci.tar               OCI image layout (tar), the multi-arch index
#   latchkey-$VERSION-linux-<arch>.tar      one docker-archive per platform, tagged
#                                           $IMAGE:$VERSION (podman load -i / docker load -i)
#
# and prints how to push them. The output is reproducible: file and config
# times are the commit time (SOURCE_DATE_EPOCH wins).
#
#   VERSION    image tag and stamped version (default: git describe, or dev)
#   IMAGE      repository (default ghcr.io/latchkey-dev/latchkey)
#   PLATFORMS  space-separated os/arch (default "linux/amd64 linux/arm64")
#   DIST       output directory (default dist)
#   BUILD_DIR  where the binaries are built (default bin/image)
#   QUIET=1    do not print the push instructions
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
IMAGE="${IMAGE:-ghcr.io/latchkey-dev/latchkey}"
PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64}"
DIST="${DIST:-dist}"
BUILD_DIR="${BUILD_DIR:-bin/image}"
SOURCE="${SOURCE:-https://github.com/latchkey-dev/latchkey}"
REVISION="${REVISION:-$(git rev-parse HEAD 2>/dev/null || true)}"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
PKG=github.com/latchkey-dev/latchkey

log() { echo "image: $*" >&2; }

args=()
for platform in ${PLATFORMS}; do
  os="${platform%/*}" arch="${platform#*/}"
  out="${BUILD_DIR}/${os}-${arch}/manager"
  log "building the manager for ${platform} (${VERSION})"
  CGO_ENABLED=0 GOOS="${os}" GOARCH="${arch}" GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w -X ${PKG}/internal/version.Version=${VERSION}" -o "${out}" ./cmd
  args+=(-binary "${platform}=${out}")
done

log "assembling ${IMAGE}:${VERSION} into ${DIST}/"
go run ./hack/image -version "${VERSION}" -repository "${IMAGE}" -source "${SOURCE}" \
  -revision "${REVISION}" -created "${SOURCE_DATE_EPOCH}" -out "${DIST}" "${args[@]}"

[[ "${QUIET:-}" == 1 ]] && exit 0
oci="${DIST}/latchkey-${VERSION}.oci.tar"
cat >&2 <<EOF

Push the multi-arch image (no Docker needed), with skopeo:
  skopeo copy --all --preserve-digests oci-archive:${oci} docker://${IMAGE}:${VERSION}
or with crane (go install github.com/google/go-containerregistry/cmd/crane@v0.22.1), which reads a layout directory:
  mkdir -p ${DIST}/oci && tar -xf ${oci} -C ${DIST}/oci && crane push ${DIST}/oci ${IMAGE}:${VERSION}
Run one platform locally:
  podman load -i ${DIST}/latchkey-${VERSION}-linux-$(go env GOARCH).tar && podman run --rm ${IMAGE}:${VERSION} --version
EOF
