#!/usr/bin/env bash
# Installs the real programs the tests talk to ("test peers") when they are
# missing, from Debian's packages, so `make test` alone passes on a fresh
# machine. It needs root and apt-get; without them it stops at once with the
# one command to run. Installed peers are found again on the next run, so a
# warm run costs nothing.
#
#   peer   Debian package  used by
#   nginx  nginx-light     internal/verifier/suite (NGINX auth_request in front of the verifier)
#   podman podman          internal/image (runs the operator image against the test API server)
#   runc   runc            internal/image (the OCI runtime the test asks podman for)
#   chromium chromium      internal/console/suite (the console in a real, headless browser)
#   npm    npm             fetches axe-core (below) when it is not cached yet
#
# With arguments, it installs only the peers named, as command:package pairs,
# and nothing else (make bench: hack/test-peers.sh wrk:wrk taskset:util-linux).
#
# Without arguments, it also puts axe-core (the accessibility checker the console's browser tests
# inject) from the npm registry into the cache, once: npm pack, unpacked into
# ${XDG_CACHE_HOME:-~/.cache}/latchkey/axe-core/package/axe.min.js.
set -euo pipefail

AXE_VERSION=4.11.0
axe_dir="${XDG_CACHE_HOME:-${HOME}/.cache}/latchkey/axe-core"

# fetch_axe unpacks axe-core from the npm registry into the cache.
fetch_axe() {
  [[ -f "${axe_dir}/package/axe.min.js" && -f "${axe_dir}/axe-core-${AXE_VERSION}.tgz" ]] && return 0
  mkdir -p "${axe_dir}"
  echo "test-peers: fetching axe-core ${AXE_VERSION} from the npm registry" >&2
  (cd "${axe_dir}" && npm pack --silent "axe-core@${AXE_VERSION}" >/dev/null && tar -xzf "axe-core-${AXE_VERSION}.tgz" package/axe.min.js package/LICENSE)
}

# command  package
peers=(
  "nginx nginx-light"
  "podman podman"
  "runc runc"
  "chromium chromium"
  "npm npm"
)

if (($# > 0)); then
  peers=()
  for a in "$@"; do
    [[ "${a}" == *:* ]] || { echo "test-peers: ${a}: want command:package, e.g. wrk:wrk" >&2; exit 2; }
    peers+=("${a%%:*} ${a#*:}")
  done
  fetch_axe() { :; }
fi

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

missing=()
for p in "${peers[@]}"; do
  read -r cmd pkg <<<"${p}"
  have "${cmd}" || missing+=("${pkg}")
done
if ((${#missing[@]} == 0)); then
  fetch_axe
  exit 0
fi

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-peers: the tests need ${missing[*]}; install them first:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test-peers: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fetch_axe
