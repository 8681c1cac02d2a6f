#!/usr/bin/env bash
# Pushes and pulls the same trees with sourcectl, oras (Python library) and skopeo against one
# local registry, in one run, and prints wall time, peak RSS and time ratios against sourcectl.
# Run by hand (not in CI):  bench/registry/run.sh [MEGABYTES_OF_GENERATED_MANIFESTS, default 200]
# REPEAT (default 3) runs of every measurement, each push to a fresh repository (no blob reuse);
# the table shows the median time and the largest peak RSS. Tools are interleaved per run so
# that background load hits all of them alike.
#
# What each tool does, end to end (a tree on disk -> registry -> a tree on disk):
#   sourcectl  push artifact (deterministic tar+gzip, streamed upload) / pull artifact (streamed, verified, extracted)
#   oras       oras-py push of the directory (it tars+gzips it) / pull (download, then extract)
#   skopeo     tar -czf + an OCI layout + `skopeo copy oci:... docker://...` /
#              `skopeo copy docker://... dir:...` + tar -xzf of the layer
# Peak RSS is GNU time's "Maximum resident set size" (the largest process of the command).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$repo/scripts/env.sh"
megabytes="${1:-200}"
repeat="${REPEAT:-3}"
testdata="${TESTDATA:-$repo/../shared/testdata}"

for tool in docker-registry skopeo /usr/bin/time python3; do
  command -v "$tool" >/dev/null || { echo "✗ missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
python="$SOURCE_APISERVER_VENV/bin/python"
"$python" -c 'import oras' 2>/dev/null || { echo "✗ missing oras in the venv: run scripts/setup.sh" >&2; exit 1; }

echo "► building sourcectl (release)" >&2
(cd "$repo" && cargo build --release -p cli --quiet)
sourcectl="$CARGO_TARGET_DIR/release/sourcectl"

work="$(mktemp -d /tmp/bench-registry.XXXXXX)"
registry_pid=""
cleanup() { [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
host="127.0.0.1:$port"
cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/storage}, delete: {enabled: true}}
http: {addr: $host}
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

echo "► generating ${megabytes} MB of manifests" >&2
"$python" "$here/gen_tree.py" "$work/generated" "$megabytes" >&2

trees=(podinfo-kustomize podinfo-deploy podinfo-chart generated)
tree_path() { if [ "$1" = generated ]; then echo "$work/generated"; else echo "$testdata/$1"; fi; }

# measure <label> <command...>: runs it under GNU time, appends "label seconds rss_kb" to results.
results="$work/results.txt"
measure() {
  local label="$1"; shift
  local tlog="$work/time.log"
  if ! /usr/bin/time -v -o "$tlog" "$@" >"$work/cmd.out" 2>"$work/cmd.err"; then
    echo "✗ $label failed:" >&2; cat "$work/cmd.err" >&2; exit 1
  fi
  local secs rss
  secs="$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tlog")"
  rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tlog")"
  echo "$label $secs $rss" >>"$results"
}

skopeo_push() { # <tree> <ref>
  local tree="$1" ref="$2" layout="$work/layout-$RANDOM"
  mkdir -p "$layout/blobs/sha256"
  tar -C "$tree" -czf "$layout/layer.tgz" .
  "$python" - "$layout" <<'PY'
import hashlib, json, os, sys
layout = sys.argv[1]
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(layout, "blobs/sha256", h), "wb").write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
def put_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    size = os.path.getsize(path)
    os.rename(path, os.path.join(layout, "blobs/sha256", h.hexdigest()))
    return {"digest": "sha256:" + h.hexdigest(), "size": size}
layer = dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put_file(os.path.join(layout, "layer.tgz")))
config = dict(mediaType="application/vnd.oci.image.config.v1+json", **put(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'))
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": [layer]}).encode()
m = dict(mediaType="application/vnd.oci.image.manifest.v1+json", annotations={"org.opencontainers.image.ref.name": "v1"}, **put(manifest))
json.dump({"schemaVersion": 2, "manifests": [m]}, open(os.path.join(layout, "index.json"), "w"))
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout:v1" "docker://$ref"
  rm -rf "$layout"
}
skopeo_pull() { # <ref> <outdir>
  local ref="$1" out="$2" dir="$work/skopeo-dir-$RANDOM"
  skopeo copy --quiet --src-tls-verify=false "docker://$ref" "dir:$dir"
  local layer
  layer="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]+"/manifest.json"))["layers"][0]["digest"].split(":")[1])' "$dir")"
  tar -C "$out" -xzf "$dir/$layer"
  rm -rf "$dir"
}
export -f skopeo_push skopeo_pull
export work python

for tree in "${trees[@]}"; do
  path="$(tree_path "$tree")"
  echo "► $tree ($(du -sh "$path" | cut -f1)), $repeat runs" >&2
  for run in $(seq "$repeat"); do
    for tool in sourcectl oras skopeo; do
      ref="$host/bench/$tool-$tree-$run:v1"
      out="$work/out-$tool-$tree"; rm -rf "$out"; mkdir -p "$out"
      case "$tool" in
        sourcectl)
          measure "$tree push $tool" "$sourcectl" push artifact "oci://$ref" --path "$path" --source bench --revision v1 --insecure-registry
          measure "$tree pull $tool" "$sourcectl" pull artifact "oci://$ref" --output "$out" --insecure-registry ;;
        oras)
          measure "$tree push $tool" "$python" "$here/oras_client.py" push "$ref" "$path"
          measure "$tree pull $tool" "$python" "$here/oras_client.py" pull "$ref" "$out" ;;
        skopeo)
          measure "$tree push $tool" bash -c 'skopeo_push "$0" "$1"' "$path" "$ref"
          measure "$tree pull $tool" bash -c 'skopeo_pull "$0" "$1"' "$ref" "$out" ;;
      esac
      rm -rf "$out"
    done
  done
done

echo
printf '%-18s %-5s %-10s %9s %12s %14s\n' tree op tool seconds peak_rss_MB "time/sourcectl"
awk '
  { k=$1" "$2" "$3; if (!(k in n)) order[++m]=k; n[k]++; t[k, n[k]]=$4; if ($5>rss[k]) rss[k]=$5 }
  END {
    for (i=1; i<=m; i++) { k=order[i]; c=n[k];
      for (a=1; a<=c; a++) for (b=a+1; b<=c; b++) if (t[k,b] < t[k,a]) { x=t[k,a]; t[k,a]=t[k,b]; t[k,b]=x }
      med[k]=t[k, int((c+1)/2)] }
    for (i=1; i<=m; i++) { k=order[i]; split(k, f, " "); base=med[f[1]" "f[2]" sourcectl"];
      printf "%-18s %-5s %-10s %9.2f %12.1f %14.2f\n", f[1], f[2], f[3], med[k], rss[k]/1024, (base>0 ? med[k]/base : 0) }
  }' "$results"
