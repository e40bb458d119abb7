#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from the Go module proxy (nothing is
# downloaded from the web) into a cache outside the clone, and prints the
# directory, which is what envtest's KUBEBUILDER_ASSETS wants.
#
# Idempotent: when the binaries of the requested versions are already in the
# cache it only prints the directory. A cold build takes ~8 minutes on 2 cores.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.7.3}"
CACHE_ROOT="${LATCHKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/latchkey}"
DEST="${CACHE_ROOT}/k8s/${K8S_VERSION}-etcd${ETCD_VERSION}"
STAMP="${DEST}/.complete"

log() { echo "control-plane: $*" >&2; }

if [[ -f "${STAMP}" && -x "${DEST}/etcd" && -x "${DEST}/kube-apiserver" && -x "${DEST}/kubectl" ]]; then
  echo "${DEST}"
  exit 0
fi

mkdir -p "${DEST}"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

if [[ ! -x "${DEST}/etcd" ]]; then
  log "building etcd v${ETCD_VERSION} (about a minute)"
  mkdir -p "${work}/etcd" && cd "${work}/etcd"
  go mod init latchkey.local/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null 2>&1
  go build -trimpath -o "${DEST}/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "${DEST}/etcd.tmp" "${DEST}/etcd"
fi

if [[ ! -x "${DEST}/kube-apiserver" || ! -x "${DEST}/kubectl" ]]; then
  log "building kube-apiserver and kubectl v${K8S_VERSION} (7-8 minutes cold)"
  mkdir -p "${work}/k8s" && cd "${work}/k8s"
  # k8s.io/kubernetes replaces its staging modules with local paths; a module
  # that depends on it must map each one to the published v0.x release.
  gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "${gomod}" ]] || { log "cannot find go.mod of k8s.io/kubernetes@v${K8S_VERSION}"; exit 1; }
  staging_version="v0.${K8S_VERSION#1.}"
  {
    echo "module latchkey.local/k8s"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    echo
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "${gomod}" \
      | awk '{print $1}' | grep -v '^k8s.io/sample-' \
      | sed "s|.*|replace & => & ${staging_version}|"
  } >go.mod
  go mod tidy >/dev/null 2>&1 || true
  pkg=k8s.io/component-base/version
  minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  ldflags="-s -w -X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}" >/dev/null 2>&1 || true
  go build -trimpath -ldflags "${ldflags}" -o "${DEST}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "${DEST}/kube-apiserver.tmp" "${DEST}/kube-apiserver"
  go build -trimpath -ldflags "${ldflags}" -o "${DEST}/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
  mv "${DEST}/kubectl.tmp" "${DEST}/kubectl"
fi

"${DEST}/kube-apiserver" --version >&2
touch "${STAMP}"
echo "${DEST}"
