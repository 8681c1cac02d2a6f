#!/usr/bin/env bash
# Reconcile benchmark of issue 14 (run by hand, release build, not in CI; CI runs the 100-object
# check apiserver/tests/scale_regression.rs). One run measures every target and, in the same
# run and against the same server and registry, the physical floor it is compared with:
#
#   small     N_SMALL (1000) OCIRepositories over K_SMALL (50) artifacts
#   distinct  N_SMALL (1000) over as many distinct artifacts
#   large     N_LARGE (10000) over K_LARGE (100) artifacts, then a restart with them stored
#
# For each: a fresh server (default flags; CONCURRENT sets --concurrent), the objects POSTed by
# a 16-thread client (client.py create), the time until all are Ready after the last create,
# the peak RSS (VmHWM); then the floor: client.py registry (one HEAD per object, one manifest
# GET + blob GET per artifact, 16 threads) and client.py writes (2 durable writes per object
# through the API — the finalizer and the status write a shared reconcile makes — 16 threads).
# `small` also counts the registry requests per object per interval in steady state
# (STEADY_INTERVALS intervals of INTERVAL seconds, from the registry's access log, the server's
# user agent only). `large` then stops the server (SIGTERM) and starts it on the same data:
# seconds until /readyz answers, and the peak RSS until every object was reconciled again.
#
# STORES ("sqlite") names the object stores each scenario runs on, one after the other in the
# same run: `sqlite` (the embedded default) and `etcd` (a 3-member cluster of Debian's
# `etcd-server` on loopback, its data on the same file system as SQLite's, the server started
# with --etcd-servers and a prefix per scenario). With both, a comparison per scenario follows
# the table: creates/s of the client, seconds to all Ready, peak RSS, the durable-write floor,
# and etcd / SQLite for each, with each store's time to its own floor.
#
# Usage: bench/reconcile/run.sh        env: SCENARIOS ("small distinct large"), STORES ("sqlite"),
#        N_SMALL, K_SMALL, N_LARGE, K_LARGE, INTERVAL (30), STEADY_INTERVALS (2), CONCURRENT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/scripts/env.sh"
scenarios="${SCENARIOS:-small distinct large}"
stores="${STORES:-sqlite}"
n_small="${N_SMALL:-1000}"
k_small="${K_SMALL:-50}"
n_large="${N_LARGE:-10000}"
k_large="${K_LARGE:-100}"
interval="${INTERVAL:-30}"
steady="${STEADY_INTERVALS:-2}"
src="$repo/../shared/testdata/podinfo-kustomize"
[ -d "$src" ] || src="$repo/testdata/podinfo-kustomize"
client="$here/client.py"

for tool in docker-registry python3 curl; do
  command -v "$tool" >/dev/null || { echo "✗ missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
for s in $stores; do
  case $s in
    sqlite) ;;
    etcd) for tool in etcd etcdctl; do
        command -v "$tool" >/dev/null || { echo "✗ missing $tool: run scripts/setup.sh" >&2; exit 1; }
      done ;;
    *) echo "unknown store $s (sqlite, etcd)" >&2; exit 2 ;;
  esac
done
echo "► building source-apiserver (release)" >&2
(cd "$repo" && cargo build --release -q -p apiserver --bin source-apiserver)
bin="$CARGO_TARGET_DIR/release"

work="$(mktemp -d /tmp/bench-reconcile.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]:-}"; do if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
sub() { python3 -c "print(f'{$1 - $2:.2f}')"; }

rport="$(free_port)"
reg="127.0.0.1:$rport"
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
  addr: $reg
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
until curl -fsS "http://$reg/v2/" >/dev/null 2>&1; do sleep 0.1; done
most=$k_small
case " $scenarios " in *" distinct "*) most=$((n_small > most ? n_small : most)) ;; esac
case " $scenarios " in *" large "*) most=$((k_large > most ? k_large : most)) ;; esac
echo "► pushing $most distinct podinfo-kustomize artifacts" >&2
python3 "$client" push "$reg" "$most" "$src"

# start_etcd: a 3-member etcd cluster on loopback, its data under $work (the file system of the
# servers' SQLite data directories, so both stores fsync to the same disk); sets etcd_servers
# and etcd_pids once every member reports healthy.
start_etcd() {
  local i client peer clients=() peers=() initial=()
  for i in 0 1 2; do
    clients+=("http://127.0.0.1:$(free_port)"); peers+=("http://127.0.0.1:$(free_port)")
    initial+=("m$i=${peers[$i]}")
  done
  etcd_servers=$(IFS=,; echo "${clients[*]}")
  etcd_pids=()
  for i in 0 1 2; do
    client=${clients[$i]}; peer=${peers[$i]}
    etcd --name "m$i" --data-dir "$work/etcd/m$i" --listen-client-urls "$client" \
      --advertise-client-urls "$client" --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$(IFS=,; echo "${initial[*]}")" --initial-cluster-state new \
      --initial-cluster-token "bench-$$" --logger zap --log-outputs stderr >"$work/etcd-m$i.log" 2>&1 &
    etcd_pids+=($!)
    pids+=($!)
  done
  until ETCDCTL_API=3 etcdctl --endpoints "$etcd_servers" --command-timeout 2s endpoint health \
    >/dev/null 2>&1; do sleep 0.2; done
}
case " $stores " in *" etcd "*) echo "► starting a 3-member etcd cluster" >&2; start_etcd ;; esac

server_requests() { grep -c '"source-apiserver/' "$work/registry.log" || true; }
server_heads() { grep '"source-apiserver/' "$work/registry.log" | grep -c '"HEAD ' || true; }

# start_server DATA_DIR [STORE]: starts the server, sets server_pid, API_ADDR and
# started_at/served_at. On etcd the objects live under a prefix named after DATA_DIR, and the
# server is only taken as started once it leads (it alone runs the controllers).
start_server() {
  local data=$1 store=${2:-sqlite} port
  port="$(free_port)"
  export API_ADDR="127.0.0.1:$port"
  local flags=(--data-dir "$data" --listen "$API_ADDR")
  [ -n "${CONCURRENT:-}" ] && flags+=(--concurrent "$CONCURRENT")
  [ "$store" = etcd ] && flags+=(--etcd-servers "$etcd_servers" --etcd-prefix "/bench/$(basename "$data")")
  started_at=$(now)
  "$bin/source-apiserver" "${flags[@]}" >>"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=($server_pid)
  until [ -f "$data/pki/admin.key" ] && curl -fs --cacert "$data/pki/ca.crt" --cert "$data/pki/admin.crt" \
    --key "$data/pki/admin.key" "https://$API_ADDR/readyz" >/dev/null 2>&1; do sleep 0.02; done
  served_at=$(now)
  if [ "$store" = etcd ]; then
    until curl -fs --cacert "$data/pki/ca.crt" --cert "$data/pki/admin.crt" --key "$data/pki/admin.key" \
      "https://$API_ADDR/metrics" | grep -qx 'leader_election_master_status{name="source-apiserver"} 1'; do
      sleep 0.1
    done
  fi
}

results="$work/results.md"
# scenario NAME N K [STORE]
scenario() {
  local name=$1 n=$2 k=$3 store=${4:-sqlite} data="$work/data-$1-${4:-sqlite}" label=$1
  [ "$stores" = sqlite ] || label="$name, $store"
  echo "► $label: $n OCIRepositories over $k artifacts" >&2
  start_server "$data" "$store"
  local idle create_s created ready_s rss registry_s writes_s
  idle=$(hwm_mib "$server_pid")
  local t0
  t0=$(now)
  create_s=$(python3 "$client" create "$data" "$n" "$k" "$reg" "$interval")
  created=$(now)
  python3 "$client" ready "$data" "$n"
  ready_s=$(sub "$(now)" "$created")
  rss=$(hwm_mib "$server_pid")
  registry_s=$(python3 "$client" registry "$reg" "$n" "$k")
  writes_s=$(python3 "$client" writes "$data" "$n" $((2 * n)))
  local floor
  floor=$(python3 -c "print(f'{$registry_s + $writes_s:.2f}')")
  printf '| %s | %d / %d | %.2f s | **%.2f s** | %s MiB (idle %s) | %.2f s + %.2f s = %.2f s | %.1f× | %.1f× |\n' \
    "$label" "$n" "$k" "$create_s" "$ready_s" "$rss" "$idle" "$registry_s" "$writes_s" "$floor" \
    "$(python3 -c "print($ready_s / $floor)")" "$(python3 -c "print(85 * $n / 1000 / $ready_s)")" >>"$results"
  printf '%s %s %s %s %s %s %s %s\n' "$name" "$store" "$n" "$create_s" "$ready_s" "$rss" "$registry_s" "$writes_s" \
    >>"$results.stores"
  if [ "$name" = small ]; then
    echo "► $name: steady state over $steady intervals of ${interval}s" >&2
    sleep "$interval"
    local before after
    before=$(server_requests)
    sleep $((interval * steady))
    after=$(server_requests)
    echo "$label steady state: $((after - before)) registry requests in $steady intervals of ${interval}s = $(python3 -c "print(f'{($after - $before) / ($n * $steady):.3f}')") per object per interval" >>"$results.notes"
  fi
  if [ "$name" = large ]; then
    echo "► $name: restart with $n stored objects" >&2
    kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
    local heads
    heads=$(server_heads)
    start_server "$data" "$store"
    local serve_s
    serve_s=$(sub "$served_at" "$started_at")
    until [ "$(server_heads)" -ge $((heads + n)) ]; do sleep 0.2; done
    echo "$label restart with $n stored: serving after $serve_s s; all $n reconciled again after $(sub "$(now)" "$started_at") s; peak RSS $(hwm_mib "$server_pid") MiB" >>"$results.notes"
  fi
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
  # The data stays until the run ends: on an ext4 without a journal (this machine's), every
  # new inode is checked against the inode table for recent deletions, and after deleting a
  # scenario's thousands of files the next scenario's artifact directories and links cost ~35 %
  # of the server's CPU in the kernel (`perf`: recently_deleted), which the floor never pays.
}

echo '| scenario | objects / artifacts | creates (16 threads) | all Ready after the last create | peak RSS | floor: registry + writes | × floor | faster than Flux (85 s per 1,000) |' >"$results"
echo '|---|---|---|---|---|---|---|---|' >>"$results"
: >"$results.notes"
: >"$results.stores"
for s in $scenarios; do
  for store in $stores; do
    case $s in
      small) scenario small "$n_small" "$k_small" "$store" ;;
      distinct) scenario distinct "$n_small" "$n_small" "$store" ;;
      large) scenario large "$n_large" "$k_large" "$store" ;;
      *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
  done
done
if [ -n "${etcd_pids:-}" ]; then
  echo "etcd members' peak RSS: $(for p in "${etcd_pids[@]}"; do printf '%s MiB ' "$(hwm_mib "$p")"; done)" \
    >>"$results.notes"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$results.notes"
cat "$results" "$results.notes"
# etcd beside SQLite, per scenario that ran on both (the rows above, side by side).
python3 - "$results.stores" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, store, n, create_s, ready_s, rss, registry_s, writes_s = line.split()
    rows.setdefault(name, {})[store] = dict(
        n=int(n), create=int(n) / float(create_s), ready=float(ready_s), rss=float(rss),
        writes=float(writes_s), floor=float(registry_s) + float(writes_s))
for name, by in rows.items():
    if not {"sqlite", "etcd"} <= by.keys():
        continue
    s, e = by["sqlite"], by["etcd"]
    print(f"\n{name}: SQLite against etcd (3 members), {s['n']} objects")
    print("| measure | SQLite | etcd | etcd / SQLite |\n|---|---|---|---|")
    for label, key, unit in [("creates/s of the client (16 threads)", "create", "/s"),
                             ("all Ready after the last create", "ready", " s"),
                             ("peak RSS of the server", "rss", " MiB"),
                             (f"durable-write floor ({2 * s['n']} PATCHes, 16 threads)", "writes", " s"),
                             ("floor: registry + writes", "floor", " s")]:
        print(f"| {label} | {s[key]:.2f}{unit} | {e[key]:.2f}{unit} | {e[key] / s[key]:.2f}× |")
    print(f"| all Ready × its own floor | {s['ready'] / s['floor']:.2f}× | {e['ready'] / e['floor']:.2f}× | |")
PY
