#!/usr/bin/env bash
# End to end in a real cluster: source-apiserver as an aggregated API server behind
# kube-apiserver, consumed by Flux's kustomize-controller.
#
#  1. creates a kind cluster (kind/kubeadm configure the front proxy: requestheader CA,
#     front-proxy-client certificate, X-Remote-* headers);
#  2. builds the image from the Dockerfile and loads it into the cluster;
#  3. applies deploy/ with the self-signed overlay (deploy/gen-certs.sh) and waits until both
#     APIServices are Available (the aggregator's probe of /apis/<group>/<version> passed);
#  4. pushes a podinfo kustomization as an OCI artifact (sourcectl) to a registry in the cluster
#     and runs the kubectl checks through the aggregator: discovery, explain (OpenAPI), apply,
#     wait for Ready, get with the printer columns, and the `artifact` subresource download,
#     whose sha256 must equal status.artifact.digest;
#  5. installs Flux's kustomize-controller (not source-controller: our APIService serves
#     source.toolkit.fluxcd.io/v1) and applies a Kustomization with
#     sourceRef {kind: OCIRepository}; podinfo must roll out from our artifact, fetched from the
#     plain-HTTP URL in status.artifact.url (the NetworkPolicy admits flux-system);
#  6. deletes the cluster (also on failure; KEEP_CLUSTER=1 keeps it).
#
# Needs docker (with a running engine), kind, kubectl, cargo, curl and openssl. Where docker's
# engine or kind is missing it prints a SKIP line and exits 0.
#
# Environment: CLUSTER (source-apiserver-e2e), KIND_NODE_IMAGE (kind's default),
# KUSTOMIZE_CONTROLLER_VERSION (v1.4.0), PODINFO_IMAGE (ghcr.io/stefanprodan/podinfo:6.5.0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cluster="${CLUSTER:-source-apiserver-e2e}"
image="source-apiserver:0.1.0"
kc_version="${KUSTOMIZE_CONTROLLER_VERSION:-v1.4.0}"
podinfo_image="${PODINFO_IMAGE:-ghcr.io/stefanprodan/podinfo:6.5.0}"
ns="source-apiserver"
group_path="/apis/source.toolkit.fluxcd.io/v1"

log() { printf '► %s\n' "$*" >&2; }
fail() { printf '✗ %s\n' "$*" >&2; exit 1; }

skip_unless_available() {
  if ! command -v docker >/dev/null 2>&1; then
    echo "SKIP tests/e2e/kind.sh: docker is not installed"; exit 0
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "SKIP tests/e2e/kind.sh: no Docker engine is running (docker info failed)"; exit 0
  fi
  if ! command -v kind >/dev/null 2>&1; then
    echo "SKIP tests/e2e/kind.sh: kind is not installed"; exit 0
  fi
  for tool in kubectl cargo curl openssl sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is required"
  done
}

cleanup() {
  local status=$?
  if [ -n "${port_forward:-}" ]; then kill "$port_forward" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ]; then
    log "failed; server log:"
    kubectl -n "$ns" logs deploy/source-apiserver --tail=100 >&2 || true
  fi
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    log "keeping cluster $cluster"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
  exit "$status"
}

create_cluster() {
  log "creating kind cluster $cluster"
  local args=(create cluster --name "$cluster" --wait 120s)
  [ -n "${KIND_NODE_IMAGE:-}" ] && args+=(--image "$KIND_NODE_IMAGE")
  kind "${args[@]}"
  kubectl config use-context "kind-$cluster" >/dev/null
}

build_and_load() {
  log "building $image"
  docker build -t "$image" "$root"
  kind load docker-image "$image" --name "$cluster"
}

deploy_server() {
  log "applying deploy/ (self-signed overlay)"
  cp -r "$root/deploy" "$work/deploy"
  "$work/deploy/gen-certs.sh"
  kubectl create namespace flux-system --dry-run=client -o yaml | kubectl apply -f -
  kubectl label namespace flux-system source-apiserver/artifact-consumer=true --overwrite
  kubectl apply -k "$work/deploy/overlays/self-signed"
  kubectl -n "$ns" rollout status deploy/source-apiserver --timeout=180s
  log "waiting for the APIServices to be Available"
  kubectl wait --for=condition=Available --timeout=180s \
    apiservice/v1.source.toolkit.fluxcd.io apiservice/v1beta2.source.toolkit.fluxcd.io
}

start_registry() {
  log "starting a registry in the cluster and pushing the podinfo artifact"
  kubectl create namespace registry --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n registry create deployment registry --image=registry:2 --port=5000 \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n registry expose deployment registry --port=5000 --dry-run=client -o yaml \
    | kubectl apply -f -
  kubectl -n registry rollout status deploy/registry --timeout=120s
  kubectl -n registry port-forward svc/registry 5000:5000 >/dev/null 2>&1 &
  port_forward=$!
  for _ in $(seq 50); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && break; sleep 0.2; done
  mkdir -p "$work/podinfo"
  cat > "$work/podinfo/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deployment.yaml]
YAML
  cat > "$work/podinfo/deployment.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: default}
spec:
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
        - name: podinfo
          image: $podinfo_image
          ports: [{containerPort: 9898}]
YAML
  (cd "$root" && cargo build -q -p cli --bin sourcectl)
  "${CARGO_TARGET_DIR:-$root/target}/debug/sourcectl" push artifact oci://127.0.0.1:5000/podinfo:v1 --path "$work/podinfo" \
    --source https://github.com/stefanprodan/podinfo --revision "v1@sha1:$(printf '%040d' 1)" \
    --insecure-registry
}

kubectl_checks() {
  log "kubectl through the aggregator"
  kubectl api-resources --api-group=source.toolkit.fluxcd.io | grep -q ocirepositories
  kubectl explain ocirepository.spec.ref >/dev/null
  kubectl apply -f - <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: podinfo, namespace: default}
spec:
  interval: 1m
  url: oci://registry.registry.svc.cluster.local:5000/podinfo
  insecure: true
  ref: {tag: v1}
YAML
  kubectl wait ocirepository/podinfo --for=condition=Ready --timeout=120s
  kubectl get ocirepositories -A | grep -q podinfo
  local digest url
  digest="$(kubectl get ocirepository/podinfo -o jsonpath='{.status.artifact.digest}')"
  url="$(kubectl get ocirepository/podinfo -o jsonpath='{.status.artifact.url}')"
  [[ "$url" == http://source-apiserver.$ns.svc.cluster.local.* ]] || fail "unexpected artifact URL $url"
  log "downloading the artifact through the aggregator"
  kubectl get --raw "$group_path/namespaces/default/ocirepositories/podinfo/artifact" \
    > "$work/artifact.tar.gz"
  [ "sha256:$(sha256sum < "$work/artifact.tar.gz" | cut -d' ' -f1)" = "$digest" ] \
    || fail "artifact digest differs from status.artifact.digest $digest"
}

flux_consumer() {
  log "installing Flux kustomize-controller $kc_version"
  local base="https://github.com/fluxcd/kustomize-controller/releases/download/$kc_version"
  kubectl apply -f "$base/kustomize-controller.crds.yaml"
  kubectl -n flux-system create serviceaccount kustomize-controller --dry-run=client -o yaml \
    | kubectl apply -f -
  kubectl create clusterrolebinding kustomize-controller --clusterrole=cluster-admin \
    --serviceaccount=flux-system:kustomize-controller --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n flux-system apply -f "$base/kustomize-controller.deployment.yaml"
  kubectl -n flux-system rollout status deploy/kustomize-controller --timeout=180s
  kubectl apply -f - <<YAML
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: podinfo, namespace: flux-system}
spec:
  interval: 1m
  prune: true
  path: ./
  sourceRef: {kind: OCIRepository, name: podinfo, namespace: default}
YAML
  kubectl -n flux-system wait kustomization/podinfo --for=condition=Ready --timeout=180s
  kubectl -n default rollout status deploy/podinfo --timeout=180s
}

main() {
  skip_unless_available
  work="$(mktemp -d)"
  trap cleanup EXIT
  create_cluster
  build_and_load
  deploy_server
  start_registry
  kubectl_checks
  flux_consumer
  log "✔ kind e2e passed"
}

main "$@"
