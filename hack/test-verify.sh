#!/usr/bin/env bash
# Proves that `make verify` catches a hand edit of a generated file: for a
# generated CRD, the chart's copy of it and the deepcopy code, it appends a
# line, expects `make verify` to fail, and puts the file back byte for byte
# (from a copy, not from git, so uncommitted work is never touched).
# Run by .ci/run after `make verify` has passed.
set -euo pipefail
cd "$(dirname "$0")/.."

backup="$(mktemp)"
current=""
restore() { if [[ -n "${current}" ]]; then cp -p "${backup}" "${current}"; current=""; fi; }
trap 'restore; rm -f "${backup}"' EXIT
trap 'exit 130' INT TERM

check() {
  local file="$1" edit="$2"
  [[ -f "${file}" ]] || { echo "test-verify: ${file} does not exist" >&2; exit 1; }
  cp -p "${file}" "${backup}"
  current="${file}"
  printf '%s\n' "${edit}" >>"${file}"
  if make --no-print-directory verify >/dev/null 2>&1; then
    echo "test-verify: FAIL: make verify passed after a hand edit of ${file}" >&2
    exit 1
  fi
  restore
  echo "test-verify: ok: make verify fails after a hand edit of ${file}"
}

check config/crd/bases/latchkey.dev_apiclients.yaml "# hand edit"
check charts/latchkey/crds/latchkey.dev_credentialgrants.yaml "# hand edit"
check api/v1alpha1/zz_generated.deepcopy.go "// hand edit"

# The tree is as it was: verify passes again.
make --no-print-directory verify >/dev/null
echo "test-verify: ok: make verify passes again on the restored tree"
