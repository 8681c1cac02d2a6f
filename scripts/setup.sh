#!/usr/bin/env bash
# Installs everything the tests and the quickstart need on a fresh Debian machine, idempotently:
# Debian packages (the CNCF Distribution registry, skopeo, htpasswd, OpenSSL headers), the test
# runner cargo-nextest (from crates.io, so CI and developers run the same runner) and a Python
# virtualenv with the independent OCI client (oras), the OpenAPI validator, schemathesis and
# kubernetes-validate (Kubernetes JSON schemas bundled: deploy/ is validated offline).
# Prints the PATH additions; `source scripts/env.sh` puts them in the current shell.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"

apt_packages=(docker-registry skopeo apache2-utils libssl-dev pkg-config curl jq time shellcheck make)
# The etcd backend: etcd-server/etcd-client for the storage suite's 3-member cluster,
# protobuf-compiler for the etcd-client crate's build script.
apt_packages+=(etcd-server etcd-client protobuf-compiler)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "► installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the registry as a system service on port 5000; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
# Debian's etcd-server starts a member on 2379/2380 as a system service; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "► installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

pip_packages=(oras openapi-spec-validator schemathesis cryptography pynacl kubernetes-validate sigstore tuf)
if [ ! -x "$SOURCE_APISERVER_VENV/bin/python" ]; then
  python3 -m venv "$SOURCE_APISERVER_VENV"
fi
if ! "$SOURCE_APISERVER_VENV/bin/python" -c 'import oras, openapi_spec_validator, schemathesis, cryptography, nacl, kubernetes_validate, sigstore, tuf' 2>/dev/null; then
  echo "► installing Python packages: ${pip_packages[*]}" >&2
  "$SOURCE_APISERVER_VENV/bin/pip" install -q --disable-pip-version-check "${pip_packages[@]}"
fi
echo "✔ test tools installed" >&2
