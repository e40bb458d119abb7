#!/usr/bin/env bash
# Regenerates every generated file (CRDs, RBAC, webhook manifests, deepcopy,
# the chart's CRDs, go.mod/go.sum) and fails if that changed anything, so a
# hand edit of a generated file, or a forgotten `make manifests`, is caught.
#
# It compares the tree before and after regenerating, not the tree against
# git: a hand edit is caught whether or not it is committed (regenerating
# would silently overwrite an uncommitted one), and work in progress that is
# consistent passes. On a fresh clone (CI) the two are the same check.
set -euo pipefail
cd "$(dirname "$0")/.."

paths=(api config charts go.mod go.sum)
snapshot="$(mktemp -d)"
trap 'rm -rf "${snapshot}"' EXIT
for p in "${paths[@]}"; do
  if [[ -e "${p}" ]]; then cp -a "${p}" "${snapshot}/"; else mkdir -p "${snapshot}/${p}"; fi
done

make --no-print-directory manifests generate >/dev/null
go mod tidy

changes="${snapshot}/.changes"
for p in "${paths[@]}"; do
  [[ -e "${p}" ]] || mkdir -p "${p}"
  diff -ruN "${snapshot}/${p}" "${p}" >>"${changes}" || true
done
if [[ -s "${changes}" ]]; then
  sed "s|${snapshot}/||" "${changes}" | head -n 200 >&2
  echo >&2
  echo "verify: generated files were out of date (diff above: before -> regenerated; the tree now holds the regenerated files)." >&2
  echo "verify: never edit generated files by hand; change the Go types or markers, run 'make manifests generate && go mod tidy' and commit the result." >&2
  exit 1
fi
echo "verify: generated files are up to date"
