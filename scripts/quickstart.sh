#!/usr/bin/env bash
# The main job in one command, on a fresh Debian machine with the Rust toolchain:
#   install the tools (scripts/setup.sh) → build source-apiserver and sourcectl → start a local
#   registry (Debian's docker-registry, its own config in a temp dir, a free loopback port) →
#   push ../shared/testdata/podinfo-kustomize with sourcectl → start the server → apply an
#   OCIRepository → wait for Ready with kubectl → download the artifact with
#   `kubectl get --raw .../artifact` → check its sha256 against status.artifact.digest.
# Every process it starts is stopped on exit, and its temp dir removed (KEEP=1 keeps the dir).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
source "$here/env.sh"

step() { printf '► %s\n' "$*" >&2; }
ok() { printf '✔ %s\n' "$*" >&2; }
fail() { printf '✗ %s\n' "$*" >&2; exit 1; }

work="$(mktemp -d -t source-apiserver-quickstart-XXXXXX)"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  [ "$status" -eq 0 ] || echo "✗ quickstart failed (logs were in $work; rerun with KEEP=1 to keep them)" >&2
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for <seconds> <description> <command...>
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
    sleep 0.2
  done
}

step "installing tools (scripts/setup.sh)"
"$here/setup.sh"

step "building source-apiserver and sourcectl (into $CARGO_TARGET_DIR)"
(cd "$repo" && cargo build -q -p apiserver --bin source-apiserver -p cli --bin sourcectl)
bin="$CARGO_TARGET_DIR/debug"
ok "built $bin/source-apiserver and $bin/sourcectl"

registry_port="$(free_port)"
step "starting docker-registry on 127.0.0.1:$registry_port"
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
YAML
registry_bin="$(command -v docker-registry || echo /usr/bin/docker-registry)"
"$registry_bin" serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
pids+=($!)
wait_for 30 "the registry" curl -fsS "http://127.0.0.1:$registry_port/v2/"
ok "registry ready"

url="oci://127.0.0.1:$registry_port/podinfo/manifests"
src="$repo/../shared/testdata/podinfo-kustomize"
[ -d "$src" ] || fail "missing $src"
step "pushing $src to $url:6.5.0 with sourcectl"
DOCKER_CONFIG="$work/docker" "$bin/sourcectl" push artifact "$url:6.5.0" --path "$src" \
  --source https://github.com/stefanprodan/podinfo --revision "6.5.0@sha1:$(printf '%040d' 0)" \
  --insecure-registry

server_port="$(free_port)"
step "starting source-apiserver on https://127.0.0.1:$server_port"
"$bin/source-apiserver" --data-dir "$work/data" --listen "127.0.0.1:$server_port" >"$work/server.log" 2>&1 &
pids+=($!)
export KUBECONFIG="$work/data/kubeconfig"
wait_for 60 "the server" kubectl get --raw /readyz
ok "server ready (KUBECONFIG=$KUBECONFIG)"

step "applying OCIRepository default/podinfo"
kubectl apply -f - <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: podinfo
  namespace: default
spec:
  interval: 1m
  url: $url
  insecure: true
  ref:
    semver: ">=6.0.0"
YAML

step "waiting for Ready"
kubectl wait --for=condition=Ready ocirepository/podinfo --timeout=60s
kubectl get ocirepository podinfo

step "downloading the artifact with kubectl get --raw"
kubectl get --raw /apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories/podinfo/artifact >"$work/artifact.tar.gz"
want="$(kubectl get ocirepository podinfo -o jsonpath='{.status.artifact.digest}')"
got="sha256:$(sha256sum "$work/artifact.tar.gz" | cut -d' ' -f1)"
[ "$got" = "$want" ] || fail "artifact digest $got differs from status.artifact.digest $want"
ok "artifact $(stat -c %s "$work/artifact.tar.gz") bytes, digest $got matches status.artifact.digest"
tar -tzf "$work/artifact.tar.gz" | sed 's/^/    /' >&2
ok "quickstart done: revision $(kubectl get ocirepository podinfo -o jsonpath='{.status.artifact.revision}')"
