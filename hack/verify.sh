#!/usr/bin/env bash
# Regenerates every generated file (CRDs, RBAC, webhook manifests, deepcopy,
# the chart's CRDs, go.mod/go.sum) and fails if that changed anything, so a
# hand edit of a generated file, or a forgotten `make manifests`, is caught.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory manifests generate >/dev/null
go mod tidy
paths=(api config charts go.mod go.sum)
if ! git diff --exit-code --stat -- "${paths[@]}" || [[ -n "$(git ls-files --others --exclude-standard -- "${paths[@]}")" ]]; then
  echo >&2
  echo "verify: generated files are out of date (diff above, or new files:" >&2
  git ls-files --others --exclude-standard -- "${paths[@]}" >&2
  echo "). Run 'make manifests generate && go mod tidy' and commit the result; never edit generated files by hand." >&2
  exit 1
fi
echo "verify: generated files are up to date"
