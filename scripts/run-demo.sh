#!/usr/bin/env bash
# `make run`: the demo upstream on 127.0.0.1:8080 and Envoy with envoy/forward-proxy.yaml on
# 127.0.0.1:10000 (admin 127.0.0.1:9901). Both run in the foreground of this script so that
# Ctrl-C, or either one dying, stops the other: nothing is left listening afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_BIN=${ENVOY_BIN:-.venv/bin/envoy}
UPSTREAM_BIN=${UPSTREAM_BIN:-target/debug/demo-upstream}
CONFIG=${CONFIG:-envoy/forward-proxy.yaml}

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

"$UPSTREAM_BIN" --listen 127.0.0.1:8080 &
pids+=($!)
# Warnings only from Envoy itself, but every proxy-auth decision (debug) is shown.
"$ENVOY_BIN" -c "$CONFIG" --disable-hot-restart \
  --log-level warn --component-log-level wasm:debug &
pids+=($!)

for _ in $(seq 1 300); do
  curl -sf -o /dev/null http://127.0.0.1:9901/ready && break
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "run-demo: a process exited during start-up" >&2; exit 1; }
  done
  sleep 0.1
done
curl -sf -o /dev/null http://127.0.0.1:9901/ready || { echo "run-demo: Envoy not ready" >&2; exit 1; }

cat <<'MSG'

proxy-auth demo: forward proxy on 127.0.0.1:10000 (user demo, password demo), upstream on 127.0.0.1:8080.
Try, in another terminal:
  curl -i -x http://127.0.0.1:10000 http://127.0.0.1:8080/              # 407 Proxy Authentication Required
  curl -i -x http://127.0.0.1:10000 -U demo:demo http://127.0.0.1:8080/ # 200, upstream shows x-proxy-user: demo
  curl -i -x http://127.0.0.1:10000 -U demo:demo -p http://127.0.0.1:8080/ # the same through a CONNECT tunnel
  curl -s http://127.0.0.1:9901/stats | grep proxy_auth                 # allowed / denied counters
Ctrl-C stops everything.

MSG

# Return as soon as either process ends; the EXIT trap stops the other.
wait -n "${pids[@]}"
