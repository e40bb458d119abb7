#!/usr/bin/env bash
# Runs every `go test -fuzz` target for a short, bounded time, so parsers are
# fuzzed on every `make test` and in CI without making either slow. New
# inputs that fail are written to the package's testdata/fuzz/ and then run
# as ordinary test cases by `go test` forever after.
#
# Each target has an execution-count budget (about 10 s on a 2-core machine),
# not a duration: with a duration, Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" failure when a starved worker is still
# mid-input at the deadline (golang/go#75804, fixed in Go 1.27). A count has no
# deadline to race; a busy machine only makes it slower. FUZZTIME overrides
# every budget for a longer local run (FUZZTIME=2m or FUZZTIME=5000000x).
set -euo pipefail
cd "$(dirname "$0")/.."

# package  target  budget
targets=(
  "./internal/permissions FuzzParsePermission 600000x"
  "./internal/catalog FuzzLoadCatalog 150000x"
  "./internal/token FuzzParse 800000x"
  "./internal/accesstoken FuzzParse 200000x"
  "./internal/requestscope FuzzAllowed 600000x"
  "./internal/verifier FuzzCredentialFrom 60000x"
  "./internal/verifier FuzzVerifyRequest 20000x"
  "./internal/verifier FuzzFormEndpoints 15000x"
  "./internal/verifier FuzzRevokeForm 15000x"
  "./internal/verifier FuzzVerifyScoped 15000x"
  "./internal/verifier FuzzCheckRequest 20000x"
  "./internal/console FuzzRequestParsers 200000x"
)

for t in "${targets[@]}"; do
  read -r pkg fn budget <<<"${t}"
  budget="${FUZZTIME:-${budget}}"
  echo "fuzz: ${pkg} ${fn} for ${budget}"
  # -run='^$' skips the package's ordinary tests (go test ./... runs them);
  # -parallel bounds the workers on small CI machines.
  go test "${pkg}" -run='^$' -fuzz="^${fn}\$" -fuzztime="${budget}" -parallel="${FUZZ_PARALLEL:-2}"
done
