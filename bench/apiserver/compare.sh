#!/usr/bin/env bash
# Before/after in one session: builds the release server at <base-rev> (from `git archive`, in a
# temporary directory) and at this checkout, then runs run.sh against each, alternating, ROUNDS
# times (default 2), so both sides see the same machine; the builds run at the lowest CPU
# priority, the measurements at normal priority. Usage: compare.sh <base-rev>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base="${1:?usage: compare.sh <base-rev>}"
rounds="${ROUNDS:-2}"
cd "$root"
source scripts/env.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/before"
git archive "$base" | tar -x -C "$work/before"
echo "► building $base" >&2
(cd "$work/before" && nice -n 19 cargo build --release -p apiserver --bin source-apiserver >&2)
cp "$CARGO_TARGET_DIR/release/source-apiserver" "$work/before.bin"
echo "► building $(git rev-parse --short HEAD)" >&2
nice -n 19 cargo build --release -p apiserver --bin source-apiserver >&2
cp "$CARGO_TARGET_DIR/release/source-apiserver" "$work/after.bin"
for round in $(seq "$rounds"); do
  for side in before after; do
    echo "## $side ($([ $side = before ] && echo "$base" || git rev-parse --short HEAD)), round $round, load $(cut -d' ' -f1 /proc/loadavg)"
    SOURCE_APISERVER_BIN="$work/$side.bin" "$here/run.sh"
  done
done
