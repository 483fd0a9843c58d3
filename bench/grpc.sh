#!/usr/bin/env bash
# bench/grpc.sh — unary gRPC-shaped calls (POST, content-type application/grpc, te: trailers, a
# 100-byte message; the answer a small body with grpc-status 0 in trailers) with h2load over
# HTTP/2 + TLS 1.3 (ECDSA P-256) to golb (protocol: h2), nginx (grpc_pass) and HAProxy (proto h2),
# each speaking h2c to one upstream nginx, one worker/thread each.
#
#   bench/grpc.sh          (GOLB_BIN=bin/golb, GRPC_ROUNDS=3, GRPC_N=100000)
#
# h2load -c 100 -m 10 (1000 calls in flight). The proxy runs on CPU GRPC_PROXY_CPU (0), h2load
# and the upstream on GRPC_LOAD_CPU (1). For each run: req/s as h2load reports it, the proxy's
# CPU time (utime + stime from /proc) per call in µs, and the upstream connections the proxy
# holds afterwards (ss); the median of the rounds is printed. golb checks the upstream nginx (h2c
# only on its port) with a GET over HTTP/2, as its `protocol: h2` says.
# Every process listens on 127.0.0.1 only, is stopped by PID, every run is bounded.
set -euo pipefail
ROUNDS=${GRPC_ROUNDS:-3}
N=${GRPC_N:-100000}
PCPU=${GRPC_PROXY_CPU:-0}
LCPU=${GRPC_LOAD_CPU:-1}
BASE=${GRPC_PORT_BASE:-28500}
BENCH_NAME=grpc.sh BENCH_KEEP=${GRPC_KEEP:-}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "$BASE" golb-grpcbench h2load haproxy nginx taskset openssl ss

# a gRPC message: not compressed, 95 bytes of payload
{ printf '\x00\x00\x00\x00\x5f'; head -c 95 /dev/zero | tr '\0' 'm'; } >"$TMP/msg"

cat >"$TMP/up.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $TMP/up/pid; error_log $TMP/up/err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_timeout 300s; keepalive_requests 100000000;
  http2_max_requests 100000000; http2_max_concurrent_streams 1000;
$(tmps "$TMP/up")
  server { listen 127.0.0.1:$UP http2 backlog=4096;
           location / { default_type application/grpc; add_trailer grpc-status 0;
                        return 200 "ok"; } } }
CONF
cat >"$TMP/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $TMP/px/pid; error_log $TMP/px/err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_timeout 300s; keepalive_requests 100000000;
  http2_max_requests 100000000;
$(tmps "$TMP/px")
  upstream up { server 127.0.0.1:$UP; keepalive 1024; keepalive_requests 100000000; }
  server { listen 127.0.0.1:${PORT[nginx]} ssl http2 backlog=4096;
    ssl_certificate $TMP/c.pem; ssl_certificate_key $TMP/k.pem; ssl_protocols TLSv1.3;
    http2_max_concurrent_streams 128;
    location / { grpc_pass grpc://up; } } }
CONF
cat >"$TMP/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/haproxy.pem alpn h2 ssl-min-ver TLSv1.3
    default_backend be
backend be
    http-reuse always
    server s1 127.0.0.1:$UP proto h2
CONF
cat >"$TMP/golb.yaml" <<CONF
listen: 127.0.0.1:$((BASE + 20))
workers: 1
maxConnections: 20000
healthCheckPeriod: 60
protocol: h2
maxStreamsPerConnection: 1000
backends: [http://127.0.0.1:$UP/]
tls:
  listen: 127.0.0.1:${PORT[golb]}
  minVersion: "1.3"
  certificates: [{certFile: $TMP/c.pem, keyFile: $TMP/k.pem}]
CONF

upconns() { ss -tnpH state established "( dport = :$UP )" | grep -c "pid=$1," || true; }

bench_start_all

declare -A RPS CPU CONNS BAD
run() { # target
    local t=$1 c0 c1 out
    c0=$(cpu_ticks "${PID[$t]}")
    out=$(timeout 300 taskset -c "$LCPU" h2load -c 100 -m 10 -n "$N" -d "$TMP/msg" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "https://127.0.0.1:${PORT[$t]}/bench.Svc/Unary" 2>&1)
    c1=$(cpu_ticks "${PID[$t]}")
    grep -q "$N done" <<<"$out" || { echo "grpc.sh: $t failed:" >&2; echo "$out" >&2; exit 1; }
    # answers other than 2xx are counted, not fatal (nginx's grpc_pass meets the upstream
    # nginx answering before it read the body: "upstream sent frame for unknown stream")
    BAD[$t]+="$((N - $(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out"))) "
    RPS[$t]+="$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out") "
    CPU[$t]+="$(us_per_req $((c1 - c0)) "$N") "
    CONNS[$t]+="$(upconns "${PID[$t]}") "
}

for ((r = 1; r <= ROUNDS; r++)); do
    for t in haproxy nginx golb; do run "$t"; sleep 1; done
done
printf '%-8s %12s %14s %16s %16s %10s\n' target "req/s" "CPU µs/req" "CPU / best peer" \
    "upstream conns" "not 2xx"
best=$(least "$(median "${CPU[haproxy]}")" "$(median "${CPU[nginx]}")")
for t in haproxy nginx golb; do
    cpu=$(median "${CPU[$t]}")
    printf '%-8s %12s %14s %16s %16s %10s\n' "$t" "$(median "${RPS[$t]}")" "$cpu" \
        "$(ratio "$cpu" "$best")" "$(median "${CONNS[$t]}")" "$(median "${BAD[$t]}")"
done
