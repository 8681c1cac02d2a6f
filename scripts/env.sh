# Sourced by the scripts: where build output and test tools live, outside the clone so that later
# runs reuse them. Override any of these in the environment.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/source-apiserver/target}"
export SOURCE_APISERVER_VENV="${SOURCE_APISERVER_VENV:-$HOME/.cache/source-apiserver/venv}"
# kubectl's versioned builds (kubectl.1.27 ... kubectl.1.33) live beside the default one.
case ":$PATH:" in *":$SOURCE_APISERVER_VENV/bin:"*) ;; *) export PATH="$SOURCE_APISERVER_VENV/bin:$PATH" ;; esac
