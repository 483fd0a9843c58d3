#!/usr/bin/env bash
# Makes docs/status-page.png: three toy backends and golb with the admin listener on ephemeral
# loopback ports, about 40 s of varying traffic (bounded curl loops), one backend drained, then a
# headless Chromium screenshot of the status page. Needs chromium and curl (deps.txt, test group).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/status-page.png}
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
for id in 1 2 3; do
    ./bin/toy-backend -id "$id" -listen 127.0.0.1:0 >"$tmp/toy$id.log" 2>&1 &
    pids+=($!)
done
port_of() { # log file -> the port it logged
    for _ in $(seq 1 100); do
        p=$(grep -o 'listening on [0-9.]*:[0-9]*' "$1" 2>/dev/null | head -1 | sed 's/.*://') || true
        [ -n "$p" ] && { echo "$p"; return; }
        sleep 0.1
    done
    echo "no port in $1" >&2; exit 1
}
cat >"$tmp/golb.yml" <<CFG
listen: 127.0.0.1:0
workers: 2
healthCheckPeriod: 1
healthCheckTimeout: 0.5
backends:
  - http://127.0.0.1:$(port_of "$tmp/toy1.log")/health
  - http://127.0.0.1:$(port_of "$tmp/toy2.log")/health
  - http://127.0.0.1:$(port_of "$tmp/toy3.log")/health
admin:
  listen: 127.0.0.1:0
  token: screenshot
CFG
./bin/golb -confpath "$tmp/golb.yml" >"$tmp/golb.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q 'admin API' "$tmp/golb.log" && break; sleep 0.1; done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$tmp/golb.log" | sed 's/.*://')
admin=$(grep -o 'http://127.0.0.1:[0-9]*/' "$tmp/golb.log")
b2=$(grep -o 'backend 127.0.0.1:[0-9]*' "$tmp/golb.log" | sed -n 2p | cut -d' ' -f2)
load() { # seconds pause-between-requests path: one keep-alive connection, bounded in time
    python3 - "$port" "$@" <<'PY'
import http.client, sys, time
port, secs, pause, path = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
end = time.monotonic() + secs
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
while time.monotonic() < end:
    try:
        c.request("GET", path)
        c.getresponse().read()
    except (OSError, http.client.HTTPException):
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    time.sleep(pause)
PY
}
# (each phase waits for its own loads only: a plain `wait` would wait for the servers too)
load 10 0.02 / & l1=$!; load 10 0.05 "/?delay=20" & l2=$!; wait $l1 $l2
load 10 0.005 / & l1=$!; load 10 0.05 "/?status=503" & l2=$!; wait $l1 $l2
curl -s -o /dev/null -X PUT -H 'Authorization: Bearer screenshot' -d '{"state":"drain"}' \
    "${admin}api/v1/backends/$b2"
load 10 0.01 "/?delay=5" & l1=$!; load 10 0.03 / & l2=$!; wait $l1 $l2
load 8 0.02 / & l1=$!
sleep 4
profile="$tmp/chromium"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size=1280,470 \
    --virtual-time-budget=3000 --screenshot="$out" "$admin" 2>/dev/null
wait $l1
echo "wrote $out"
