# The operator image, for people with Docker (or podman/buildah):
#
#   docker build --build-arg VERSION=v0.2.0 -t ghcr.io/latchkey-dev/latchkey:v0.2.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.2.0 -t … --push .
#
# `make image` builds the same image (static manager, user 65532:65532,
# entrypoint /manager) with no Docker daemon and no registry: docs/release.md.

# Build the manager binary on the build machine's platform, for the target's.
FROM --platform=${BUILDPLATFORM} golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev

WORKDIR /workspace
# Dependencies first: a layer that only changes with go.mod and go.sum.
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/

# Static (CGO_ENABLED=0), reproducible (-trimpath, no VCS stamping), the
# version stamped for --version.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/latchkey-dev/latchkey/internal/version.Version=${VERSION}" \
      -o manager ./cmd

# distroless's static image, as its non-root user: no shell, no package
# manager; the manager needs neither.
FROM gcr.io/distroless/static:nonroot
ARG VERSION=dev
ARG REVISION=""
LABEL org.opencontainers.image.title="latchkey" \
      org.opencontainers.image.description="Latchkey: API client credentials as Kubernetes resources" \
      org.opencontainers.image.source="https://github.com/latchkey-dev/latchkey" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
