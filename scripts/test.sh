#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent, including cargo-nextest), builds
# the binaries the end-to-end suites start (source-apiserver, sourcectl), then runs the tests
# with cargo nextest (then the doc tests). Without arguments it runs the whole workspace and
# fails unless at least 300 tests ran, so a filter or a broken harness that silently runs
# (nearly) nothing cannot pass. Extra arguments select a subset and go to the runner, e.g.
# `scripts/test.sh -p storage`; a subset fails when it runs no test at all. MIN_TESTS=<n>
# sets the floor explicitly (for a subset too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
source scripts/env.sh
bash scripts/setup.sh
args=("$@")
floor="${MIN_TESTS:-0}"
if [ "${#args[@]}" -eq 0 ]; then
  args=(--workspace)
  floor="${MIN_TESTS:-300}"
fi
# The apiserver and cli suites start these binaries; cargo builds a package's own binaries for
# its tests but not another package's (sourcectl for the apiserver suites).
cargo build --locked -p apiserver -p cli --bins
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo nextest run --locked --no-fail-fast --no-tests=fail "${args[@]}" 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
# nextest's last line: `Summary [  12.3s] 328 tests run: 328 passed, 2 skipped`.
ran="$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" | sed -nE 's/.*Summary \[.*\] +([0-9]+) tests? run:.*/\1/p' | tail -n 1)"
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
if [ -z "$ran" ]; then
  echo "✘ could not read the number of tests run from nextest's summary" >&2
  exit 1
fi
if [ "$ran" -lt "$floor" ]; then
  echo "✘ only $ran tests ran; expected at least $floor (MIN_TESTS)" >&2
  exit 1
fi
echo "✔ $ran tests ran" >&2
cargo test --locked --doc "${args[@]}"
