#!/usr/bin/env bash
# Runs every `go test -fuzz` target for a short, bounded time, so parsers are
# fuzzed on every `make test` and in CI without making either slow. New
# inputs that fail are written to the package's testdata/fuzz/ and then run
# as ordinary test cases by `go test` forever after.
#
# FUZZTIME (default 10s) is per target: `FUZZTIME=2m hack/fuzz.sh` for a
# longer local run.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-10s}"

# package  target
targets=(
  "./internal/permissions FuzzParsePermission"
  "./internal/catalog FuzzLoadCatalog"
  "./internal/token FuzzParse"
)

for t in "${targets[@]}"; do
  read -r pkg fn <<<"${t}"
  echo "fuzz: ${pkg} ${fn} for ${FUZZTIME}"
  # -run='^$' skips the package's ordinary tests (go test ./... runs them);
  # -parallel bounds the workers on small CI machines.
  go test "${pkg}" -run='^$' -fuzz="^${fn}\$" -fuzztime="${FUZZTIME}" -parallel="${FUZZ_PARALLEL:-2}"
done
