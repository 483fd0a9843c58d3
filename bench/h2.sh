#!/usr/bin/env bash
# bench/h2.sh — HTTP/2 over TLS 1.3 (ECDSA P-256, the same certificate) to golb, HAProxy and
# nginx, HTTP/1.1 keep-alive pools to one upstream nginx, one worker/thread each, with h2load.
#
#   bench/h2.sh            (GOLB_BIN=bin/golb, H2_ROUNDS=3, H2_SMALL_N=100000, H2_BIG_N=1000)
#
# Every proxy keeps up to 1024 idle upstream connections (1000 requests are in flight at once).
# Scenarios: small  `h2load -c 100 -m 10` GETs of a 3-byte body;
#            many   `h2load -c 1000 -m 1` GETs of a 3-byte body (many connections);
#            big    `h2load -c 10 -m 10` GETs of a 1 MiB body.
# The proxy runs on CPU H2_PROXY_CPU (0), h2load and the upstream on H2_LOAD_CPU (1). For each run:
# req/s and MiB/s as h2load reports them, and the proxy's CPU time (utime + stime from /proc) per
# request, in µs; the median of the rounds is printed. Every process listens on 127.0.0.1 only,
# is stopped by PID, and every run is bounded by its request count and a timeout.
set -euo pipefail
ROUNDS=${H2_ROUNDS:-3}
SMALL_N=${H2_SMALL_N:-100000}
BIG_N=${H2_BIG_N:-1000}
PCPU=${H2_PROXY_CPU:-0}
LCPU=${H2_LOAD_CPU:-1}
BASE=${H2_PORT_BASE:-28400}
BENCH_NAME=h2.sh BENCH_KEEP=${H2_KEEP:-}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
bench_init "$BASE" golb-h2bench h2load haproxy nginx taskset openssl

mkdir -p "$TMP/www"
head -c 1048576 /dev/zero | tr '\0' 'x' >"$TMP/www/1m"

cat >"$TMP/up.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $TMP/up/pid; error_log $TMP/up/err warn;
events { worker_connections 4096; }
http { access_log off; default_type text/plain; sendfile on; keepalive_timeout 300s;
  keepalive_requests 100000000;
$(tmps "$TMP/up")
  server { listen 127.0.0.1:$UP backlog=4096; root $TMP/www; location = /1m { }
           location / { return 200 "ok\n"; } } }
EOF
cat >"$TMP/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $TMP/px/pid; error_log $TMP/px/err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_timeout 300s; keepalive_requests 100000000;
$(tmps "$TMP/px")
  upstream up { server 127.0.0.1:$UP; keepalive 1024; keepalive_requests 100000000; }
  server { listen 127.0.0.1:${PORT[nginx]} ssl backlog=4096; http2 on;
    ssl_certificate $TMP/c.pem; ssl_certificate_key $TMP/k.pem; ssl_protocols TLSv1.3;
    http2_max_concurrent_streams 128;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host; } } }
EOF
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.3
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend be
backend be
    http-reuse always
    server s1 127.0.0.1:$UP
EOF
cat >"$TMP/golb.yaml" <<EOF
listen: 127.0.0.1:$((BASE + 20))
workers: 1
maxConnections: 20000
upstreamMaxIdle: 1024
healthCheckPeriod: 60
backends: [http://127.0.0.1:$UP/]
tls:
  listen: 127.0.0.1:${PORT[golb]}
  minVersion: "1.3"
  certificates: [{certFile: $TMP/c.pem, keyFile: $TMP/k.pem}]
EOF
nginx_ver=$(sed -n 's/.*nginx\/\([0-9.]*\).*/\1/p' < <(nginx -v 2>&1))
if [[ $(printf '%s\n1.25.1\n' "$nginx_ver" | sort -V | head -1) != 1.25.1 ]]; then
    # before 1.25.1: "listen ... ssl http2" instead of the http2 directive
    sed -i -e 's/ ssl backlog=4096; http2 on;/ ssl http2 backlog=4096;/' "$TMP/nginx.conf"
fi

bench_start_all

declare -A RPS CPU MBS
run() { # target scenario round
    local t=$1 s=$2 args path n
    case $s in
    small) args=(-c 100 -m 10); path=/; n=$SMALL_N ;;
    many) args=(-c 1000 -m 1); path=/; n=$SMALL_N ;;
    *) args=(-c 10 -m 10); path=/1m; n=$BIG_N ;;
    esac
    local c0 c1 out
    c0=$(cpu_ticks "${PID[$t]}")
    out=$(timeout 300 taskset -c "$LCPU" h2load "${args[@]}" -n "$n" \
        "https://127.0.0.1:${PORT[$t]}$path" 2>&1)
    c1=$(cpu_ticks "${PID[$t]}")
    grep -q "$n succeeded" <<<"$out" || { echo "h2.sh: $t $s failed:" >&2; echo "$out" >&2; exit 1; }
    local rps mbs
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s, \([0-9.]*\)\([KMG]\)B\/s.*/\1/p' <<<"$out")
    mbs=$(sed -n 's/^finished in .*, [0-9.]* req\/s, \([0-9.]*\)\([KMG]\)B\/s.*/\1 \2/p' <<<"$out" |
        awk '{v=$1; if ($2=="K") v/=1024; if ($2=="G") v*=1024; printf "%.0f", v}')
    RPS[$t.$s]+="$rps "
    MBS[$t.$s]+="$mbs "
    CPU[$t.$s]+="$(us_per_req $((c1 - c0)) "$n") "
}

for ((r = 1; r <= ROUNDS; r++)); do
    for s in small many big; do
        for t in haproxy nginx golb; do run "$t" "$s" "$r"; sleep 1; done
    done
done
printf '%-8s %-6s %12s %10s %14s %16s\n' target scen "req/s" "MiB/s" "CPU µs/req" "CPU / best peer"
for s in small many big; do
    best=$(least "$(median "${CPU[haproxy.$s]}")" "$(median "${CPU[nginx.$s]}")")
    for t in haproxy nginx golb; do
        cpu=$(median "${CPU[$t.$s]}")
        printf '%-8s %-6s %12s %10s %14s %16s\n' "$t" "$s" "$(median "${RPS[$t.$s]}")" \
            "$(median "${MBS[$t.$s]}")" "$cpu" "$(ratio "$cpu" "$best")"
    done
done
