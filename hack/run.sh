#!/usr/bin/env bash
# `make run`: runs the Latchkey operator on this machine.
#
# - With a usable kubeconfig ($KUBECONFIG, else ~/.kube/config, with a current
#   context), it installs the CRDs into that cluster, ensures the operator's
#   namespace exists and runs the manager (./cmd) against it.
# - Without one, or with EMBEDDED=1, it runs cmd/latchkey-dev: an embedded
#   control plane built from the Go module proxy (hack/control-plane.sh), the
#   CRDs, a kubeconfig at .kube-local/kubeconfig (path printed) and the
#   operator in-process, until Ctrl-C. There the admission webhook is on: the
#   local API server calls it on https://localhost:<port> with the operator's
#   self-managed certificate (docs/admission.md, "Admission under make run").
#
# Extra manager flags: make run RUN_ARGS='--zap-log-level=debug'.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE="${NAMESPACE:-latchkey-system}"
LOCAL_KUBECONFIG="$(pwd)/.kube-local/kubeconfig"
read -ra run_args <<<"${RUN_ARGS:-}"

log() { echo "run: $*" >&2; }

assets="$(hack/control-plane.sh)"
kubectl="${assets}/kubectl"

# usable_kubeconfig succeeds when kubectl would find a kubeconfig with a
# current context that is not the one a previous embedded run left behind.
usable_kubeconfig() {
  local files=() f found=""
  if [[ -n "${KUBECONFIG:-}" ]]; then
    IFS=: read -ra files <<<"${KUBECONFIG}"
  else
    files=("${HOME}/.kube/config")
  fi
  for f in "${files[@]}"; do
    [[ -n "${f}" && -f "${f}" ]] || continue
    # A kubeconfig of an embedded control plane is stale once that run ended.
    [[ "$(realpath "${f}")" == "${LOCAL_KUBECONFIG}" ]] && return 1
    found=1
  done
  [[ -n "${found}" ]] && [[ -n "$("${kubectl}" config current-context 2>/dev/null)" ]]
}

if [[ "${EMBEDDED:-}" != 1 ]] && usable_kubeconfig; then
  log "using kubeconfig context $("${kubectl}" config current-context) (EMBEDDED=1 starts a local control plane instead)"
  "${kubectl}" apply --server-side -f config/crd/bases
  "${kubectl}" get namespace "${NAMESPACE}" >/dev/null 2>&1 || "${kubectl}" create namespace "${NAMESPACE}"
  go build -o bin/manager ./cmd
  # The admission webhook stays off: the cluster's API server cannot call a
  # webhook on this machine (no Service points here and no serving
  # certificate it trusts). The CRDs' schema and CEL rules still hold.
  exec bin/manager --enable-webhooks=false --namespace="${NAMESPACE}" ${run_args[@]+"${run_args[@]}"}
fi

log "no usable kubeconfig (or EMBEDDED=1): starting an embedded control plane"
export KUBEBUILDER_ASSETS="${assets}"
go build -o bin/latchkey-dev ./cmd/latchkey-dev
# exec: the signal that stops `make run` reaches latchkey-dev directly, which
# stops the manager and then the control plane.
exec bin/latchkey-dev --kubeconfig-out="${LOCAL_KUBECONFIG}" --namespace="${NAMESPACE}" ${run_args[@]+"${run_args[@]}"}
