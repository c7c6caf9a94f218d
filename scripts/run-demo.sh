#!/usr/bin/env bash
# `make run`: the demo upstream on 127.0.0.1:8080 and Envoy with envoy/forward-proxy.yaml on
# 127.0.0.1:10000 (admin 127.0.0.1:9901). With MODE=external, also the demo auth service on
# 127.0.0.1:9002 and envoy/forward-proxy-external.yaml. All run in the foreground of this
# script so that Ctrl-C, or any one dying, stops the others: nothing is left listening.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_BIN=${ENVOY_BIN:-.venv/bin/envoy}
UPSTREAM_BIN=${UPSTREAM_BIN:-target/debug/demo-upstream}
AUTH_SERVICE_BIN=${AUTH_SERVICE_BIN:-target/debug/proxy-auth-service}
MODE=${MODE:-local}
case "$MODE" in
  local) CONFIG=${CONFIG:-envoy/forward-proxy.yaml} ;;
  external) CONFIG=${CONFIG:-envoy/forward-proxy-external.yaml} ;;
  *) echo "run-demo: MODE must be local or external, not '$MODE'" >&2; exit 2 ;;
esac

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
if [ "$MODE" = external ]; then
  "$AUTH_SERVICE_BIN" --listen 127.0.0.1:9002 --user alice:wonderland --realm "proxy-auth directory" &
  pids+=($!)
fi
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
  curl -s http://127.0.0.1:9901/stats | grep wasmcustom.proxy_auth      # allowed / denied counters
MSG
if [ "$MODE" = external ]; then
  cat <<'MSG'
External mode: credentials other than demo/demo are asked of the auth service on 127.0.0.1:9002.
  curl -i -x http://127.0.0.1:10000 -U alice:wonderland http://127.0.0.1:8080/  # 200, x-auth-user: alice
  curl -i -x http://127.0.0.1:10000 -U alice:wrong http://127.0.0.1:8080/       # 407, the service's challenge
  curl -s http://127.0.0.1:9002/_calls                                           # calls the service received
MSG
fi
printf 'Ctrl-C stops everything.\n\n'

# Return as soon as either process ends; the EXIT trap stops the other.
wait -n "${pids[@]}"
