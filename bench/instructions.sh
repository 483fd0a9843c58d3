#!/usr/bin/env bash
# bench/instructions.sh — instructions per keep-alive request, counted by callgrind: a figure that
# does not move with the machine's load, for comparing two builds on a shared machine.
#
#   bench/instructions.sh [GOLB_BIN...]        (default bin/golb)
#   IR_CLOSE=1   each request on a new connection (Connection: close): the cost of a connection
#   IR_PROXY=v1|v2   golb with proxyProtocol (127.0.0.1 trusted, required) and each connection
#                starting with a PROXY header of that version (with IR_CLOSE: its cost per
#                connection is the difference with a run without IR_PROXY)
#   IR_ROUTES=N bench/instructions.sh ...      (N routes, host hK.example.com × pathPrefix /pJ, ten
#                                               prefixes per host; the request takes the last one)
#
# For each binary: toy-backend on 127.0.0.1, golb (workers: 1) under `valgrind --tool=callgrind`,
# then one keep-alive connection sends N1 and, in a second run, N2 small GETs; the difference of
# the two totals divided by N2 - N1 is the cost of one request (start-up and shutdown cancel out).
# Every process listens on loopback, is stopped by PID, and every loop is bounded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N1=${IR_N1:-2000}
N2=${IR_N2:-6000}
bins=("$@")
((${#bins[@]})) || bins=("$root/bin/golb")
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is missing" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/golb-ir.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
[[ -n ${IR_KEEP:-} ]] && mkdir -p "$IR_KEEP"

wait_line() { # file regex -> first match, within 30 s
    local i
    for ((i = 0; i < 300; i++)); do
        grep -m1 -oE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "instructions.sh: no '$2' in $1" >&2; cat "$1" >&2; return 1
}

"$root/bin/toy-backend" -listen 127.0.0.1:0 -id 1 >"$tmp/toy.log" 2>&1 &
pids+=($!)
toy=$(wait_line "$tmp/toy.log" '127\.0\.0\.1:[0-9]+' | head -1)

run_one() { # bin n -> total Ir of the run
    local bin=$1 n=$2 out="$tmp/cg.$RANDOM"
    cat >"$tmp/golb.yaml" <<EOF
listen: 127.0.0.1:0
workers: 1
healthCheckPeriod: 3600
backends:
  - http://$toy/health
EOF
    [[ -z ${IR_PROXY:-} ]] ||
        printf 'proxyProtocol:\n  trustedNetworks: [127.0.0.1]\n  required: true\n' >>"$tmp/golb.yaml"
    if ((${IR_ROUTES:-0} > 0)); then
        echo "routes:" >>"$tmp/golb.yaml"
        awk -v n="$IR_ROUTES" 'BEGIN { for (i = 0; i < n; i++)
            printf "  - {match: {host: h%d.example.com, pathPrefix: /p%d}, pool: default}\n",
                   int(i / 10), i % 10 }' >>"$tmp/golb.yaml"
    fi
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" -confpath "$tmp/golb.yaml" \
        >"$tmp/golb.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    local addr
    addr=$(wait_line "$tmp/golb.log" 'listening on [0-9.:]+' | head -1 | awk '{print $3}')
    IR_CLOSE=${IR_CLOSE:-} IR_PROXY=${IR_PROXY:-} python3 - "$addr" "$n" "${IR_ROUTES:-0}" <<'PY'
import os, socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
n, routes = int(sys.argv[2]), int(sys.argv[3])
close = bool(os.environ.get("IR_CLOSE"))
pp = {"": b"",
      "v1": b"PROXY TCP4 192.0.2.1 198.51.100.1 40000 80\r\n",
      "v2": b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", 12) +
            socket.inet_aton("192.0.2.1") + socket.inet_aton("198.51.100.1") +
            struct.pack("!HH", 40000, 80)}[os.environ.get("IR_PROXY", "")]
req = b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
if routes:  # the last route's host and prefix
    last = routes - 1
    req = b"GET /p%d/x HTTP/1.1\r\nHost: h%d.example.com\r\n" % (last % 10, last // 10) + \
        (b"Connection: close\r\n" if close else b"") + b"\r\n"
s = None if close else socket.create_connection((host, int(port)), timeout=60)
if s:
    s.sendall(pp)
buf = b""
for _ in range(n):
    if close:
        s = socket.create_connection((host, int(port)), timeout=60)
        buf = b""
        s.sendall(pp + req)
    else:
        s.sendall(req)
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1").lower()
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            total = head_end + 4 + length
            if len(buf) >= total:
                buf = buf[total:]
                break
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed early")
        buf += chunk
    if close:
        s.close()
if not close:
    s.close()
PY
    kill -TERM "$pid"
    wait "$pid" || true
    [[ -n ${IR_KEEP:-} ]] && cp "$out" "$IR_KEEP/$(basename "$(dirname "$bin")")-$n.cg"
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

printf '%-40s %12s\n' "binary" "Ir/request"
for bin in "${bins[@]}"; do
    a=$(run_one "$bin" "$N1")
    b=$(run_one "$bin" "$N2")
    printf '%-40s %12d\n' "$bin" $(((b - a) / (N2 - N1)))
done
