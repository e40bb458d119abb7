#!/usr/bin/env bash
# Installs one Go tool at a pinned version into the shared tool cache (outside
# the clone) from the Go module proxy, once, and prints its path.
#   hack/tool.sh <name> <package> <version>
set -euo pipefail
name="$1" pkg="$2" version="$3"
dir="${LATCHKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/latchkey}/tools"
bin="${dir}/${name}-${version}"
if [[ ! -x "${bin}" ]]; then
  echo "tool: installing ${pkg}@${version}" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  GOBIN="${tmp}" GOFLAGS=-buildvcs=false go install "${pkg}@${version}" >&2
  mkdir -p "${dir}"
  mv "${tmp}/$(basename "${pkg%/v[0-9]*}")" "${bin}"
fi
echo "${bin}"
