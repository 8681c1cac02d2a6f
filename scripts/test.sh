#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs every test of the
# workspace (unit, integration and end-to-end suites against the real registry and kubectl).
# Extra arguments go to the test runner, e.g. `scripts/test.sh -p storage`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
source scripts/env.sh
bash scripts/setup.sh
args=("$@")
[ "${#args[@]}" -gt 0 ] || args=(--workspace)
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast "${args[@]}"
  cargo test --locked --doc "${args[@]}"
else
  cargo test --locked --no-fail-fast "${args[@]}"
fi
