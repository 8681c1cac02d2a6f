#!/usr/bin/env bash
# Start-up cost of a small push and pull: sourcectl against skopeo and oras-py, CPU seconds
# (user + sys) and wall seconds of the whole process, median of RUNS (default 10) runs after
# one warm-up, against one local plain-HTTP registry (`--insecure-registry`, skopeo
# `--*-tls-verify=false`, oras-py `insecure=True`).
# Run by hand (not in CI):  [SOURCECTL=<binary>] bench/registry/startup.sh [TREE, default podinfo-kustomize]
#   sourcectl push artifact  tar + gzip + upload of the tree
#   skopeo copy oci:… docker://…  upload of the same artifact from a prepared OCI layout (no tar)
#   oras_client.py push      oras-py: tar + gzip + upload
#   pulls: sourcectl pull artifact (download + extract), skopeo copy docker://… dir:…
#   (download only), oras_client.py pull (download + extract)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/scripts/env.sh"
runs="${RUNS:-10}"
tree="${TESTDATA:-$repo/../shared/testdata}/${1:-podinfo-kustomize}"
python="$SOURCE_APISERVER_VENV/bin/python"
for tool in docker-registry skopeo /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "✗ missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
# SOURCECTL=<binary> measures a given build instead of building the release one.
sourcectl="${SOURCECTL:-}"
if [ -z "$sourcectl" ]; then
  (cd "$repo" && cargo build --release -p cli --quiet)
  sourcectl="$CARGO_TARGET_DIR/release/sourcectl"
fi

work="$(mktemp -d /tmp/bench-startup.XXXXXX)"
registry_pid=""
cleanup() { [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
host="127.0.0.1:$port"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n' \
  "$work/storage" "$host" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# median <label> <command...>: one warm-up, then RUNS runs; prints median CPU and wall seconds.
median() {
  local label="$1"; shift
  "$@" >/dev/null 2>&1
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%U %S %e' -o "$work/t" "$@" >/dev/null 2>&1
    awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$work/t"
  done | sort -n | awk -v l="$label" '{c[NR]=$1; w[NR]=$2} END {m=int((NR+1)/2); printf "%-18s cpu %.3f s  wall %.3f s\n", l, c[m], w[m]}'
}

push=(push artifact "oci://$host/bench/sourcectl:v1" --path "$tree" --source s --revision r --insecure-registry)
"$sourcectl" "${push[@]}" >/dev/null 2>&1
skopeo copy --src-tls-verify=false "docker://$host/bench/sourcectl:v1" "oci:$work/layout:v1" >/dev/null
median "sourcectl push" "$sourcectl" "${push[@]}"
median "skopeo push" skopeo copy --dest-tls-verify=false "oci:$work/layout:v1" "docker://$host/bench/skopeo:v1"
median "oras-py push" "$python" "$here/oras_client.py" push "$host/bench/oras:v1" "$tree"
median "sourcectl pull" sh -c "rm -rf '$work/out' && exec '$sourcectl' pull artifact 'oci://$host/bench/sourcectl:v1' --output '$work/out' --insecure-registry"
median "skopeo pull" sh -c "rm -rf '$work/sk' && exec skopeo copy --src-tls-verify=false 'docker://$host/bench/sourcectl:v1' 'dir:$work/sk'"
median "oras-py pull" sh -c "rm -rf '$work/or' && exec '$python' '$here/oras_client.py' pull '$host/bench/oras:v1' '$work/or'"
