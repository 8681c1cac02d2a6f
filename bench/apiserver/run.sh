#!/usr/bin/env bash
# API server benchmark (run by hand, not in CI): GET latency at a fixed rate and the time to list
# 10,000 objects as JSON and as a Table, against the limits issue 4 sets (GET p99 < 2 ms at
# 1,000 req/s; 10,000-object Table list < 200 ms). Load comes from `oha` (crates.io), installed
# into ~/.cache/source-apiserver/tools when missing. Everything runs on loopback.
# SOURCE_APISERVER_BIN names a prebuilt binary to measure instead of building this checkout
# (compare.sh uses it to measure two builds in one session).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.."
source scripts/env.sh
tools="$HOME/.cache/source-apiserver/tools"
oha="$tools/bin/oha"
[ -x "$oha" ] || cargo install oha --locked --root "$tools"
if [ -n "${SOURCE_APISERVER_BIN:-}" ]; then
  bin="$SOURCE_APISERVER_BIN"
else
  cargo build --release -p apiserver --bin source-apiserver >&2
  bin="$CARGO_TARGET_DIR/release/source-apiserver"
fi

work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-$(date +%s)
echo "$token,bench,1,\"system:masters\"" > "$work/tokens.csv"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" --data-dir "$work/data" --listen "127.0.0.1:$port" --token-auth-file "$work/tokens.csv" \
  --history-revisions 20000 >"$work/server.log" 2>&1 &
server=$!
base="https://127.0.0.1:$port/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories"
for _ in $(seq 100); do [ -f "$work/data/kubeconfig" ] && curl -sk "https://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
auth=(-H "Authorization: Bearer $token")

object() { # name-or-generateName
  printf '{"apiVersion":"source.toolkit.fluxcd.io/v1","kind":"OCIRepository","metadata":{%s,"labels":{"team":"bench"},"annotations":{"owner":"platform"}},"spec":{"url":"oci://registry.example.com/org/manifests/podinfo","interval":"5m","ref":{"semver":">=6.0.0 <7.0.0"},"ignore":"*.md\\n","suspend":true}}' "$1"
}
object '"name":"podinfo"' > "$work/one.json"
object '"generateName":"bench-"' > "$work/gen.json"
curl -sk "${auth[@]}" -H 'Content-Type: application/json' --data-binary @"$work/one.json" "$base" >/dev/null

echo "► creating 10,000 objects (16 concurrent clients)" >&2
"$oha" -n 10000 -c 16 --no-tui --insecure -m POST "${auth[@]}" -H 'Content-Type: application/json' \
  -D "$work/gen.json" --output-format json "$base" > "$work/create.json"
count=$(curl -sk "${auth[@]}" "$base?limit=1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(1 + d["metadata"].get("remainingItemCount", 0))')
echo "► GET at 1,000 req/s for 10 s" >&2
"$oha" -z 10s -q 1000 -c 8 --no-tui --insecure "${auth[@]}" --output-format json "$base/podinfo" > "$work/get.json"

time_list() { # accept header; prints median seconds of 5 runs
  for _ in 1 2 3 4 5; do
    curl -sk -o /dev/null -w '%{time_total}\n' "${auth[@]}" -H "Accept: $1" "$base"
  done | sort -n | sed -n 3p
}
json_s=$(time_list 'application/json')
table_s=$(time_list 'application/json;as=Table;v=v1;g=meta.k8s.io')

python3 - "$work/create.json" "$work/get.json" "$json_s" "$table_s" "$count" <<'PY'
import json, sys
create, get = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
json_s, table_s, count = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
p = get["latencyPercentiles"]
p50, p99 = p["p50"] * 1000, p["p99"] * 1000
print(f"objects stored: {count}; create status codes: {create.get('statusCodeDistribution')}; errors: {create.get('errorDistribution')}")
print(f"creates/s over HTTPS (16 clients): {create['summary']['requestsPerSec']:.0f}")
print(f"GET at {get['summary']['requestsPerSec']:.0f} req/s: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
      f"(limit 2 ms: {p99 / 2:.2f}x of the limit), success {get['summary']['successRate']:.3f}")
print(f"list {count} as JSON: {json_s * 1000:.0f} ms")
print(f"list {count} as Table: {table_s * 1000:.0f} ms (limit 200 ms: {table_s / 0.2:.2f}x of the limit)")
PY
