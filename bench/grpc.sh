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
# holds afterwards (ss); the median of the rounds is printed. The upstream nginx (1.22: h2c only
# on its port) cannot answer golb's HTTP/1 health check, so golb runs with panicThreshold 100.
# Every process listens on 127.0.0.1 only, is stopped by PID, every run is bounded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
GOLB=${GOLB_BIN:-$root/bin/golb}
ROUNDS=${GRPC_ROUNDS:-3}
N=${GRPC_N:-100000}
PCPU=${GRPC_PROXY_CPU:-0}
LCPU=${GRPC_LOAD_CPU:-1}
BASE=${GRPC_PORT_BASE:-28500}
UP=$((BASE + 1))
declare -A PORT=([haproxy]=$((BASE + 11)) [nginx]=$((BASE + 12)) [golb]=$((BASE + 13)))
export PATH=$PATH:/usr/sbin:/sbin
for t in h2load haproxy nginx taskset openssl ss; do
    command -v "$t" >/dev/null || { echo "grpc.sh: $t not found" >&2; exit 2; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/golb-grpcbench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -n ${GRPC_KEEP:-} ]] || rm -rf "$TMP"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$TMP/k.pem" -out "$TMP/c.pem" -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 2>/dev/null
cat "$TMP/c.pem" "$TMP/k.pem" >"$TMP/haproxy.pem"
mkdir -p "$TMP/up/tmp" "$TMP/px/tmp"
# a gRPC message: not compressed, 95 bytes of payload
{ printf '\x00\x00\x00\x00\x5f'; head -c 95 /dev/zero | tr '\0' 'm'; } >"$TMP/msg"
tmps() { local d=$1; for t in body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $d/tmp/$t;" | sed 's/body_temp/client_body_temp/'; done; }

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
panicThreshold: 100
protocol: h2
maxStreamsPerConnection: 1000
backends: [http://127.0.0.1:$UP/]
tls:
  listen: 127.0.0.1:${PORT[golb]}
  minVersion: "1.3"
  certificates: [{certFile: $TMP/c.pem, keyFile: $TMP/k.pem}]
CONF

declare -A PID
start() { # name cpu cmd... → PID[name]
    local name=$1 cpu=$2; shift 2
    taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
    pids+=($!)
    PID[$name]=$!
}
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null && break
        sleep 0.1
    done
    echo "grpc.sh: nothing listens on $1" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
upconns() { ss -tnpH state established "( dport = :$UP )" | grep -c "pid=$1," || true; }
hz=$(getconf CLK_TCK)

start up "$LCPU" nginx -c "$TMP/up.conf"
wait_port "$UP"
start nginx "$PCPU" nginx -c "$TMP/nginx.conf"
start haproxy "$PCPU" haproxy -db -f "$TMP/haproxy.cfg"
start golb "$PCPU" "$GOLB" -confpath "$TMP/golb.yaml"
for t in nginx haproxy golb; do wait_port "${PORT[$t]}" "${PID[$t]}"; done

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
    CPU[$t]+="$(awk -v d=$((c1 - c0)) -v hz="$hz" -v n="$N" 'BEGIN{printf "%.2f", d / hz * 1e6 / n}') "
    CONNS[$t]+="$(upconns "${PID[$t]}") "
}
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

for ((r = 1; r <= ROUNDS; r++)); do
    for t in haproxy nginx golb; do run "$t"; sleep 1; done
done
printf '%-8s %12s %14s %16s %10s\n' target "req/s" "CPU µs/req" "upstream conns" "not 2xx"
for t in haproxy nginx golb; do
    printf '%-8s %12s %14s %16s %10s\n' "$t" "$(median "${RPS[$t]}")" "$(median "${CPU[$t]}")" \
        "$(median "${CONNS[$t]}")" "$(median "${BAD[$t]}")"
done
