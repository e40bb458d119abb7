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
set -euo pipefail

# command  package
peers=(
  "nginx nginx-light"
  "podman podman"
  "runc runc"
)

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

missing=()
for p in "${peers[@]}"; do
  read -r cmd pkg <<<"${p}"
  have "${cmd}" || missing+=("${pkg}")
done
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-peers: the tests need ${missing[*]}; install them first:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test-peers: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
