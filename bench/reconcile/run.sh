#!/usr/bin/env bash
# Reconcile benchmark (run by hand, release build, not in CI):
#   N OCIRepositories (default 1000) against a local docker-registry → time until all are Ready,
#   peak RSS of source-apiserver, and registry requests per object per interval in steady state
#   (counted from the registry's access log, requests with the server's user agent only).
# Usage: bench/reconcile/run.sh [N]     env: CONCURRENT (4), INTERVAL seconds (30), REPOS (10),
#        STEADY_INTERVALS (3), CREATORS (10 parallel `kubectl create` processes)
# The objects are spread over REPOS repositories holding podinfo-kustomize under tag v1; every
# object resolves, pulls, extracts and stores its own artifact. Objects are created by CREATORS
# parallel `kubectl create -f` (one POST each); the clock starts before them. Readiness is
# polled once a second with `kubectl get --chunk-size=50` (small pages, so the poll itself adds
# little to the server's memory).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/scripts/env.sh"
n="${1:-1000}"
concurrent="${CONCURRENT:-4}"
interval="${INTERVAL:-30}"
repos="${REPOS:-10}"
steady="${STEADY_INTERVALS:-3}"
creators="${CREATORS:-10}"
src="$repo/../shared/testdata/podinfo-kustomize"

for tool in docker-registry kubectl python3 curl; do
  command -v "$tool" >/dev/null || { echo "✗ missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
echo "► building source-apiserver and sourcectl (release)" >&2
(cd "$repo" && cargo build --release -q -p apiserver --bin source-apiserver -p cli --bin sourcectl)
bin="$CARGO_TARGET_DIR/release"

work="$(mktemp -d /tmp/bench-reconcile.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rport="$(free_port)"
cat >"$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$rport
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
until curl -fsS "http://127.0.0.1:$rport/v2/" >/dev/null 2>&1; do sleep 0.1; done

echo "► pushing podinfo-kustomize to $repos repositories" >&2
for r in $(seq 0 $((repos - 1))); do
  DOCKER_CONFIG="$work" "$bin/sourcectl" push artifact "oci://127.0.0.1:$rport/bench/app$r:v1" \
    --path "$src" --source bench --revision "v1@sha1:$(printf '%040d' "$r")" --insecure-registry >/dev/null 2>&1
done

sport="$(free_port)"
"$bin/source-apiserver" --data-dir "$work/data" --listen "127.0.0.1:$sport" --concurrent "$concurrent" \
  >"$work/server.log" 2>&1 &
server_pid=$!
pids+=($server_pid)
export KUBECONFIG="$work/data/kubeconfig"
until kubectl get --raw /readyz >/dev/null 2>&1; do sleep 0.1; done

python3 - "$n" "$repos" "$rport" "$interval" "$creators" "$work" <<'PY'
import sys
n, repos, port, interval, creators, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
files = [open(f"{work}/objects-{c}.yaml", "w") for c in range(creators)]
for i in range(n):
    print(f"""---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: app-{i}
  namespace: default
spec:
  interval: {interval}s
  url: oci://127.0.0.1:{port}/bench/app{i % repos}
  insecure: true
  ref:
    tag: v1""", file=files[i % creators])
PY

ready_count() {
  kubectl get ocirepositories --chunk-size=50 -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c '^True$' || true
}
echo "► creating $n OCIRepositories (concurrent=$concurrent, interval=${interval}s)" >&2
start=$(date +%s.%N)
rss_idle_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
creator_pids=()
for c in $(seq 0 $((creators - 1))); do
  kubectl create -f "$work/objects-$c.yaml" >/dev/null &
  creator_pids+=($!)
done
for p in "${creator_pids[@]}"; do wait "$p"; done
created=$(date +%s.%N)
while [ "$(ready_count)" -lt "$n" ]; do sleep 1; done
done_at=$(date +%s.%N)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")

echo "► steady state: counting registry requests over $steady intervals" >&2
sleep "$interval"
count() { grep -c '"source-apiserver/' "$work/registry.log" || true; }
methods() { grep '"source-apiserver/' "$work/registry.log" | awk '{print $6}' | tr -d '"' | sort | uniq -c | tr '\n' ' '; }
before=$(count)
before_methods=$(methods)
sleep $((interval * steady))
after=$(count)
rss_end_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")

echo "► restart with empty artifact storage: every object pulls again" >&2
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
rm -rf "$work/data/artifacts"
restart=$(date +%s.%N)
"$bin/source-apiserver" --data-dir "$work/data" --listen "127.0.0.1:$sport" --concurrent "$concurrent" \
  >>"$work/server.log" 2>&1 &
server_pid=$!
pids+=($server_pid)
stored() { find "$work/data/artifacts" -name '*.tar.gz' -type f 2>/dev/null | wc -l; }
until [ "$(stored)" -ge "$n" ]; do sleep 0.2; done
restored=$(date +%s.%N)
rss_restart_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
python3 - "$start" "$created" "$done_at" "$rss_kib" "$rss_end_kib" "$before" "$after" "$n" "$steady" "$rss_idle_kib" "$restart" "$restored" "$rss_restart_kib" <<'PY'
import sys
start, created, done, rss, rss_end, before, after, n, steady, idle, restart, restored, rss_restart = sys.argv[1:]
start, created, done = float(start), float(created), float(done)
print(f"objects:                         {n}")
print(f"create (parallel kubectl create): {created - start:.1f} s")
print(f"all Ready after start:           {done - start:.1f} s  (after the creates: {done - created:.1f} s)")
print(f"peak RSS until all Ready:        {int(rss) / 1024:.1f} MiB (idle before: {int(idle) / 1024:.1f} MiB, whole run: {int(rss_end) / 1024:.1f} MiB)")
delta = int(after) - int(before)
print(f"restart, all {n} re-pulled:      {float(restored) - float(restart):.1f} s (server start included), peak RSS {int(rss_restart) / 1024:.1f} MiB")
print(f"steady-state registry requests:  {delta} in {steady} intervals = {delta / (int(n) * int(steady)):.3f} per object per interval")
PY
echo "registry requests by method (whole run, before the steady window): $before_methods" >&2
