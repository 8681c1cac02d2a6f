#!/usr/bin/env bash
# Makes the self-signed overlay's certificates with openssl: a CA, a serving certificate for the
# Service's DNS names signed by it, and in OUT_DIR (default: overlays/self-signed/generated)
#   serving-secret.yaml     the kubernetes.io/tls Secret source-apiserver-tls
#   ca-bundle-patch.yaml    a JSON patch setting spec.caBundle of the APIServices to the CA
# The CA key is not kept: rerun the script (and re-apply) to rotate both.
#
# Usage: deploy/gen-certs.sh [OUT_DIR]
# Environment: NAMESPACE (source-apiserver), SERVICE (source-apiserver), DAYS (365).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/overlays/self-signed/generated}"
namespace="${NAMESPACE:-source-apiserver}"
service="${SERVICE:-source-apiserver}"
days="${DAYS:-365}"

command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$((days * 10))" \
  -keyout "$work/ca.key" -out "$work/ca.crt" -subj "/CN=$service-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 \
  -keyout "$work/tls.key" -out "$work/tls.csr" -subj "/CN=$service.$namespace.svc" 2>/dev/null
cat > "$work/ext.cnf" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local
EXT
openssl x509 -req -sha256 -days "$days" -in "$work/tls.csr" \
  -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -extfile "$work/ext.cnf" -out "$work/tls.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null

b64() { base64 < "$1" | tr -d '\n'; }
umask 077
cat > "$out/serving-secret.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: $service-tls
  namespace: $namespace
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$work/tls.crt")
  tls.key: $(b64 "$work/tls.key")
  ca.crt: $(b64 "$work/ca.crt")
YAML
cat > "$out/ca-bundle-patch.yaml" <<YAML
- op: add
  path: /spec/caBundle
  value: $(b64 "$work/ca.crt")
YAML
echo "gen-certs.sh: wrote $out/serving-secret.yaml and $out/ca-bundle-patch.yaml" >&2
