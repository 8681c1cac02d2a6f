#!/usr/bin/env bash
# Start-up cost of a small push and pull: sourcectl against skopeo and oras-py, CPU seconds
# (user + sys) and wall seconds of the whole process, median of RUNS (default 10) runs after
# one warm-up, against one local plain-HTTP registry (`--insecure-registry`, skopeo
# `--*-tls-verify=false`, oras-py `insecure=True`), then against one local HTTPS registry with a
# CA made here, verified (sourcectl `--ca-file`, skopeo `--*-cert-dir`; both also load the system
# roots, so this measures reading the system CA bundle).
# Run by hand (not in CI):  [SOURCECTL=<binary>] bench/registry/startup.sh [TREE, default podinfo-kustomize]
#   sourcectl push artifact  tar + gzip + upload of the tree
#   skopeo copy oci:… docker://…  upload of the same artifact from a prepared OCI layout (no tar)
#   oras_client.py push      oras-py: tar + gzip + upload
#   pulls: sourcectl pull artifact (download + extract), skopeo copy docker://… dir:…
#   (download only), oras_client.py pull (download + extract)
#   https: the same push and pull of sourcectl and skopeo against the verified registry
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/scripts/env.sh"
runs="${RUNS:-10}"
tree="${TESTDATA:-$repo/../shared/testdata}/${1:-podinfo-kustomize}"
python="$SOURCE_APISERVER_VENV/bin/python"
for tool in docker-registry skopeo openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "✗ missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
# SOURCECTL=<binary> measures a given build instead of building the release one.
sourcectl="${SOURCECTL:-}"
if [ -z "$sourcectl" ]; then
  (cd "$repo" && cargo build --release -p cli --quiet)
  sourcectl="$CARGO_TARGET_DIR/release/sourcectl"
fi

work="$(mktemp -d /tmp/bench-startup.XXXXXX)"
registry_pids=()
cleanup() { for pid in "${registry_pids[@]}"; do kill "$pid" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_registry <name> <host> [tls yaml]: a Distribution registry in $work/<name>.
start_registry() {
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s%s}\n' \
    "$work/$1" "$2" "${3:-}" >"$work/$1.yml"
  docker-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
  registry_pids+=($!)
}
host="127.0.0.1:$(free_port)"
start_registry storage "$host"
# The HTTPS registry: a CA and a server certificate for 127.0.0.1, made here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out "$work/server.crt" 2>/dev/null
mkdir -p "$work/certs.d" && cp "$work/ca.crt" "$work/certs.d/ca.crt"
tls_host="127.0.0.1:$(free_port)"
start_registry tls-storage "$tls_host" ", tls: {certificate: $work/server.crt, key: $work/server.key}"
for _ in $(seq 100); do curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 100); do curl -fsS --cacert "$work/ca.crt" "https://$tls_host/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# median <label> <command...>: one warm-up, then RUNS runs; prints median CPU and wall seconds.
median() {
  local label="$1"; shift
  "$@" >/dev/null 2>&1
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%U %S %e' -o "$work/t" "$@" >/dev/null 2>&1
    awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$work/t"
  done | sort -n | awk -v l="$label" '{c[NR]=$1; w[NR]=$2} END {m=int((NR+1)/2); printf "%-22s cpu %.3f s  wall %.3f s\n", l, c[m], w[m]}'
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

tls_push=(push artifact "oci://$tls_host/bench/sourcectl:v1" --path "$tree" --source s --revision r --ca-file "$work/ca.crt")
"$sourcectl" "${tls_push[@]}" >/dev/null 2>&1
median "sourcectl push https" "$sourcectl" "${tls_push[@]}"
median "skopeo push https" skopeo copy --dest-cert-dir "$work/certs.d" "oci:$work/layout:v1" "docker://$tls_host/bench/skopeo:v1"
median "sourcectl pull https" sh -c "rm -rf '$work/out' && exec '$sourcectl' pull artifact 'oci://$tls_host/bench/sourcectl:v1' --output '$work/out' --ca-file '$work/ca.crt'"
median "skopeo pull https" sh -c "rm -rf '$work/sk' && exec skopeo copy --src-cert-dir '$work/certs.d' 'docker://$tls_host/bench/sourcectl:v1' 'dir:$work/sk'"
