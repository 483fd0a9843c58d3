#!/usr/bin/env bash
# bench/run.sh — golb against HAProxy and nginx (and wrk straight to an upstream), same upstreams,
# one worker each, interleaved rounds, medians as ratios to HAProxy. See bench/README.md.
#
# Environment (all optional):
#   BENCH_ROUNDS=3  BENCH_SECONDS=10   rounds, seconds per wrk run
#   BENCH_QUICK=1                      smoke run: 1 round of 3 s runs
#   BENCH_TARGETS="direct haproxy nginx golb"   subset / order of targets
#   BENCH_CONNS=50 BENCH_BIG_CONNS=10  wrk connections: small responses / 1 MiB responses
#   BENCH_IDLE_CONNS=5000              idle keep-alive connections in the memory scenario
#   BENCH_SCENARIOS="ka close big scale idle tka tfull tres tbig tidle r1 r10k rre"   subset
#                                      (r1 r10k rre: routing with 1, 10,000 and 100 regex routes,
#                                      each proxy with the same table, bench/route_configs.py;
#                                      pp: golb behind an L4 hop, new connection per request,
#                                      with and without a PROXY v2 header: its cost)
#                                      (t*: HTTPS to the proxy, ECDSA P-256, TLS 1.3)
#   BENCH_PORT_BASE=28100              ports BASE+1..BASE+4 (upstream), +11..+14 (proxies)
#   BENCH_PROXY_CPU=0 BENCH_LOAD_CPU=1 CPU for the proxy; CPU for wrk + upstream nginx
#   BENCH_PAUSE=1                      seconds of quiet between runs
#   BENCH_KEEP_TMP=1                   keep the temp dir (configs, logs) even on success
#   GOLB_BIN=bin/golb                  the golb binary
#   BENCH_UNEVEN=1                     then run bench/uneven.py (balancing on uneven pools; 0 skips)
#   BENCH_UNEVEN_RATE=1000 BENCH_UNEVEN_SECONDS=20   its offered load and seconds per run
#   BENCH_RELOAD=1                     then run bench/reload.py (20 reloads under load; 0 skips)
#   BENCH_RELOAD_SECONDS=12 BENCH_RELOADS=20         its length and number of reloads
#   Observability cost (scenario ka): target golbobs is the same golb with the admin listener and
#   the JSON access log on (to a file); target golbref runs GOLB_REF_BIN (e.g. a build of the commit
#   before metrics existed) with golb's plain config. Neither is in the default TARGETS:
#   BENCH_TARGETS="golbref golb golbobs" BENCH_SCENARIOS=ka GOLB_REF_BIN=/path/golb make bench
#   BENCH_ACCESS_LOG=/dev/null         where golbobs writes its access log (default: a file in the
#                                      temp dir, i.e. the filesystem's write cost is included)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${BENCH_ROUNDS:-1}; SECS=${BENCH_SECONDS:-3}; IDLE=${BENCH_IDLE_CONNS:-5000}
else
    ROUNDS=${BENCH_ROUNDS:-3}; SECS=${BENCH_SECONDS:-10}; IDLE=${BENCH_IDLE_CONNS:-5000}
fi
CONNS=${BENCH_CONNS:-50}
BIG_CONNS=${BENCH_BIG_CONNS:-10}
TARGETS=${BENCH_TARGETS:-"direct haproxy nginx golb"}
SCENARIOS=${BENCH_SCENARIOS:-"ka close big scale idle tka tfull tres tbig tidle r1 r10k rre pp"}
BASE=${BENCH_PORT_BASE:-28100}
PAUSE=${BENCH_PAUSE:-1}
GOLB=${GOLB_BIN:-$root/bin/golb}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}

UP_PORTS=($((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
STATUS_PORT=$((BASE + 4))
declare -A PORT=([direct]=${UP_PORTS[0]} [haproxy]=$((BASE + 11)) [nginx]=$((BASE + 12))
    [golb]=$((BASE + 13)) [golb2]=$((BASE + 14)) [golbobs]=$((BASE + 15)) [golbref]=$((BASE + 16)))
GOLB_REF=${GOLB_REF_BIN:-}
# HTTPS listeners: with session tickets (keep-alive, resumption, 1 MiB, idle) and without them
# (every connection a full handshake; golb's is a second process, golbnt, started for it).
declare -A TLSPORT=([haproxy]=$((BASE + 21)) [nginx]=$((BASE + 22)) [golb]=$((BASE + 23)))
declare -A FULLPORT=([haproxy]=$((BASE + 31)) [nginx]=$((BASE + 32)) [golb]=$((BASE + 33)))
PORT[golbnt]=${FULLPORT[golb]}
# Routing scenarios (r1 r10k rre, not in the default list): a process of each proxy with the same
# route table (bench/route_configs.py), started for its run.
declare -A ROUTEPORT=([haproxy]=$((BASE + 41)) [nginx]=$((BASE + 42)) [golb]=$((BASE + 43)))
# Scenario pp: an HAProxy in TCP mode (the L4 tier, on the load CPU) in front of two golb
# processes, one plain (golbl4) and one reading PROXY v2 headers (golbpp); wrk opens a connection
# per request through it; golb's CPU per connection with and without the header.
PORT[golbl4]=$((BASE + 51)) PORT[golbpp]=$((BASE + 52))
L4PORT=($((BASE + 53)) $((BASE + 54)))

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- preflight
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3
for tool in wrk haproxy nginx taskset pgrep ss timeout openssl "$PY"; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null ||
        die "$tool not found; run 'scripts/install-deps.sh bench' (or 'make deps-bench')"
done
export PATH=$PATH:/usr/sbin:/sbin
for t in $TARGETS; do
    case $t in direct | haproxy | nginx) ;; golb | golbobs) [[ -x $GOLB ]] || die "$GOLB missing; run 'make'" ;;
    golbref) [[ -x $GOLB_REF ]] || die "golbref needs GOLB_REF_BIN (a golb binary to compare with)" ;;
    *) die "unknown target $t" ;; esac
done
for s in $SCENARIOS; do
    case $s in ka | close | big | scale | idle | tka | tfull | tres | tbig | tidle | r1 | r10k | rre | pp) ;;
    *) die "unknown scenario $s" ;; esac
done
[[ $TARGETS == *golb* ]] || SCENARIOS=${SCENARIOS//scale/}

allowed=$(taskset -pc $$ | sed 's/.*: //')
if ! taskset -c "$PROXY_CPU" true 2>/dev/null || ! taskset -c "$LOAD_CPU" true 2>/dev/null ||
    [[ $PROXY_CPU == "$LOAD_CPU" ]]; then
    die "need two distinct usable CPUs (BENCH_PROXY_CPU=$PROXY_CPU BENCH_LOAD_CPU=$LOAD_CPU, allowed: $allowed)"
fi
BOTH_CPUS="$PROXY_CPU,$LOAD_CPU"

# Idle connections need file descriptors in the proxies and in the client script.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((NOFILE < IDLE + 500)); then
    say "RLIMIT_NOFILE is $NOFILE: idle connections lowered to $((NOFILE - 500))"
    IDLE=$((NOFILE - 500))
fi
MAXCONN=$((IDLE + 1000))  # HAProxy needs about 2 fds per maxconn; nginx counts both sides

all_ports=("${UP_PORTS[@]}" "$STATUS_PORT")
for t in $TARGETS; do [[ $t == direct ]] || all_ports+=("${PORT[$t]}" "${TLSPORT[$t]:-}" "${FULLPORT[$t]:-}"); done
[[ $SCENARIOS == *scale* ]] && all_ports+=("${PORT[golb2]}")
[[ " $SCENARIOS " == *" r"* ]] && all_ports+=("${ROUTEPORT[@]}")
[[ " $SCENARIOS " == *" pp "* ]] && all_ports+=("${PORT[golbl4]}" "${PORT[golbpp]}" "${L4PORT[@]}")
for p in "${all_ports[@]}"; do
    [[ -n $p ]] || continue
    [[ -z $(ss -Htln "sport = :$p") ]] || die "port $p is in use; pick other ports with BENCH_PORT_BASE"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/golb-bench.XXXXXX")
mkdir -p "$root/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW="$TMP/runs.jsonl"
: >"$RAW"

# ---------------------------------------------------------------- process bookkeeping
declare -A PID=()   # name -> pid of what we started (nginx master, haproxy, golb)
STARTED=()          # every pid we started, in order

descendants() { # pid -> pid and all its descendants
    local p c
    for p in "$@"; do
        echo "$p"
        for c in $(pgrep -P "$p" 2>/dev/null); do descendants "$c"; done
    done
}

stop_pid() { # TERM the process and its descendants, KILL after 3 s
    local pid=$1 tree i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    tree=$(descendants "$pid")
    kill -TERM $tree 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL $tree 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_name() {
    local name=$1
    [[ -n ${PID[$name]:-} ]] || return 0
    stop_pid "${PID[$name]}"
    unset "PID[$name]"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[$i]}"; done
    # Kept after a failure (logs explain it) or on request; removed after success or Ctrl-C.
    if [[ ($rc == 0 || $rc == 130 || $rc == 143) && ${BENCH_KEEP_TMP:-0} != 1 ]]; then
        rm -rf "$TMP"
    else
        say "configs and logs kept in $TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT
trap 'exit 143' TERM

start_bg() { # name cpu-list command... ; stdout+stderr to $TMP/name.log
    local name=$1 cpus=$2
    shift 2
    taskset -c "$cpus" "$@" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    STARTED+=($!)
}

wait_port() { # name port: wait until something accepts on 127.0.0.1:port, or fail after 10 s
    local name=$1 port=$2 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -20 "$TMP/$name.log" >&2; die "$name exited at start-up"; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    tail -20 "$TMP/$name.log" >&2
    die "$name not listening on 127.0.0.1:$port after 10 s"
}

# ---------------------------------------------------------------- /proc readings
cpu_ticks() { # pids... -> utime+stime summed, in clock ticks
    local p line rest total=0
    for p in "$@"; do
        read -r line <"/proc/$p/stat" 2>/dev/null || continue
        rest=${line##*) }
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

cpu_busy() { # cpu -> "busy total" ticks of that CPU from /proc/stat (to see other load)
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}

rss_kb() { # pids... -> VmRSS summed, in KiB
    local p total=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

health_counters() { # -> "requests new_connections" of health checks so far (upstream's /health log)
    awk '{n++} $1 == 1 {c++} END {print n + 0, c + 0}' "$TMP/ngx-up/health.log" 2>/dev/null || echo "0 0"
}

upstream_counters() { # -> "accepts requests" of the upstream nginx (stub_status)
    local resp
    exec 3<>"/dev/tcp/127.0.0.1/$STATUS_PORT"
    printf 'GET /status HTTP/1.0\r\nHost: status\r\n\r\n' >&3
    resp=$(cat <&3)
    exec 3<&-
    # "server accepts handled requests\n A H R"; this probe counts as 1 accept + 1 request.
    awk '/^ *[0-9]+ +[0-9]+ +[0-9]+ *\r?$/ {print $1, $3; exit}' <<<"$resp"
}

# ---------------------------------------------------------------- configs
write_configs() {
    mkdir -p "$TMP/www" "$TMP/ngx-up" "$TMP/ngx-px"
    # One ECDSA P-256 certificate for every proxy's HTTPS listeners (HAProxy wants cert + key in
    # one file).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$TMP/bench.key" -out "$TMP/bench.pem" -subj /CN=bench.test \
        -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 2>/dev/null
    cat "$TMP/bench.pem" "$TMP/bench.key" >"$TMP/bench-haproxy.pem"
    printf 'ok\n' >"$TMP/www/small"
    head -c 1048576 /dev/zero | tr '\0' 'x' >"$TMP/www/1m"
    local d
    for d in ngx-up ngx-px; do mkdir -p "$TMP/$d/tmp"; done

    # Upstreams: one nginx, one process, three listeners answering "ok\n" on / and /health and
    # a 1 MiB static file on /1m; stub_status on a fourth port counts accepted connections.
    cat >"$TMP/upstream.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((MAXCONN * 2));
pid $TMP/ngx-up/nginx.pid;
error_log $TMP/ngx-up/error.log warn;
events { worker_connections $((MAXCONN * 2)); }
http {
    access_log off;
    log_format hc '\$connection_requests';
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/ngx-up/tmp/body;
    proxy_temp_path $TMP/ngx-up/tmp/proxy;
    fastcgi_temp_path $TMP/ngx-up/tmp/fastcgi;
    uwsgi_temp_path $TMP/ngx-up/tmp/uwsgi;
    scgi_temp_path $TMP/ngx-up/tmp/scgi;
    server {
        listen 127.0.0.1:${UP_PORTS[0]} backlog=4096;
        listen 127.0.0.1:${UP_PORTS[1]} backlog=4096;
        listen 127.0.0.1:${UP_PORTS[2]} backlog=4096;
        root $TMP/www;
        location = /1m { }
        # Health checks are logged (only they) so that reuse can be computed without them.
        location = /health { access_log $TMP/ngx-up/health.log hc; return 200 "ok\n"; }
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:$STATUS_PORT;
        location = /status { stub_status; }
    }
}
EOF

    # nginx as the proxy: master + 1 worker, upstream keepalive pool.
    cat >"$TMP/nginx-proxy.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $((MAXCONN * 2));
pid $TMP/ngx-px/nginx.pid;
error_log $TMP/ngx-px/error.log warn;
events { worker_connections $((MAXCONN * 2)); }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    client_body_temp_path $TMP/ngx-px/tmp/body;
    proxy_temp_path $TMP/ngx-px/tmp/proxy;
    fastcgi_temp_path $TMP/ngx-px/tmp/fastcgi;
    uwsgi_temp_path $TMP/ngx-px/tmp/uwsgi;
    scgi_temp_path $TMP/ngx-px/tmp/scgi;
    upstream up {
        server 127.0.0.1:${UP_PORTS[0]};
        server 127.0.0.1:${UP_PORTS[1]};
        server 127.0.0.1:${UP_PORTS[2]};
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    ssl_certificate $TMP/bench.pem;
    ssl_certificate_key $TMP/bench.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        listen 127.0.0.1:${TLSPORT[nginx]} ssl backlog=4096;
        ssl_session_tickets on;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The same header work golb always does: X-Forwarded-For/-Proto/-Host.
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
    server {
        listen 127.0.0.1:${FULLPORT[nginx]} ssl backlog=4096;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
EOF

    # HAProxy: one thread, round robin, aggressive server-side connection reuse, no logging.
    cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $MAXCONN
    # No stateful session cache (tickets still resume on the first TLS listener), as golb and
    # nginx's no-ticket server block: the full-handshake scenario then measures full handshakes.
    tune.ssl.cachesize 0
defaults
    mode http
    option http-keep-alive
    # The same header work golb always does: X-Forwarded-For/-Proto/-Host.
    option forwardfor
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-request 10s
    timeout http-keep-alive 300s
    maxconn $MAXCONN
frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    bind 127.0.0.1:${TLSPORT[haproxy]} ssl crt $TMP/bench-haproxy.pem alpn http/1.1 ssl-min-ver TLSv1.2
    bind 127.0.0.1:${FULLPORT[haproxy]} ssl crt $TMP/bench-haproxy.pem alpn http/1.1 ssl-min-ver TLSv1.2 no-tls-tickets
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http unless { ssl_fc }
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend be
backend be
    balance roundrobin
    http-reuse always
    server s1 127.0.0.1:${UP_PORTS[0]}
    server s2 127.0.0.1:${UP_PORTS[1]}
    server s3 127.0.0.1:${UP_PORTS[2]}
EOF

    local w
    for w in 1 2 obs ref; do
        local name=golb port=${PORT[golb]}
        [[ $w == 2 ]] && name=golb2 port=${PORT[golb2]}
        [[ $w == obs ]] && name=golbobs port=${PORT[golbobs]}
        [[ $w == ref ]] && name=golbref port=${PORT[golbref]}
        [[ $w == 2 ]] || w=1
        cat >"$TMP/$name.yaml" <<EOF
listen: "127.0.0.1:$port"
workers: $w
keepAliveTimeout: 300
backends:
  - http://127.0.0.1:${UP_PORTS[0]}/health
  - http://127.0.0.1:${UP_PORTS[1]}/health
  - http://127.0.0.1:${UP_PORTS[2]}/health
EOF
        [[ $name == golb ]] && cat >>"$TMP/$name.yaml" <<EOF
tls:
  listen: "127.0.0.1:${TLSPORT[golb]}"
  certificates:
    - certFile: $TMP/bench.pem
      keyFile: $TMP/bench.key
EOF
        if [[ $name == golbobs ]]; then
            cat >>"$TMP/$name.yaml" <<EOF
admin:
  listen: "127.0.0.1:0"
accessLog: json
accessLogPath: ${BENCH_ACCESS_LOG:-$TMP/golbobs-access.log}
EOF
        fi
    done
    local pp
    for pp in l4 pp; do
        cat >"$TMP/golb$pp.yaml" <<EOF
listen: "127.0.0.1:${PORT[golb$pp]}"
workers: 1
keepAliveTimeout: 300
backends:
  - http://127.0.0.1:${UP_PORTS[0]}/health
  - http://127.0.0.1:${UP_PORTS[1]}/health
  - http://127.0.0.1:${UP_PORTS[2]}/health
EOF
    done
    printf 'proxyProtocol:\n  trustedNetworks: [127.0.0.1]\n  required: true\n' >>"$TMP/golbpp.yaml"
    cat >"$TMP/haproxy-l4.cfg" <<EOF
global
    nbthread 1
    maxconn $MAXCONN
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    maxconn $MAXCONN
listen plain
    bind 127.0.0.1:${L4PORT[0]}
    server g 127.0.0.1:${PORT[golbl4]}
listen proxyv2
    bind 127.0.0.1:${L4PORT[1]}
    server g 127.0.0.1:${PORT[golbpp]} send-proxy-v2
EOF
    cat >"$TMP/golbnt.yaml" <<EOF
listen: "off"
workers: 1
keepAliveTimeout: 300
backends:
  - http://127.0.0.1:${UP_PORTS[0]}/health
  - http://127.0.0.1:${UP_PORTS[1]}/health
  - http://127.0.0.1:${UP_PORTS[2]}/health
tls:
  listen: "127.0.0.1:${FULLPORT[golb]}"
  sessionTickets: false
  certificates:
    - certFile: $TMP/bench.pem
      keyFile: $TMP/bench.key
EOF
}

# ---------------------------------------------------------------- starting targets
start_upstream() {
    start_bg upstream "$LOAD_CPU" nginx -p "$TMP/ngx-up" -e "$TMP/ngx-up/error.log" -c "$TMP/upstream.conf"
    wait_port upstream "${UP_PORTS[0]}"
    wait_port upstream "$STATUS_PORT"
}

start_target() { # name
    case $1 in
    direct) ;;
    haproxy)
        start_bg haproxy "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg"
        wait_port haproxy "${PORT[haproxy]}"
        ;;
    nginx)
        start_bg nginx "$PROXY_CPU" nginx -p "$TMP/ngx-px" -e "$TMP/ngx-px/error.log" -c "$TMP/nginx-proxy.conf"
        wait_port nginx "${PORT[nginx]}"
        ;;
    haproxyl4)
        start_bg haproxyl4 "$LOAD_CPU" haproxy -db -f "$TMP/haproxy-l4.cfg"
        wait_port haproxyl4 "${L4PORT[0]}"
        ;;
    golb | golb2 | golbnt | golbobs | golbref | golbl4 | golbpp)
        local cpus=$PROXY_CPU bin=$GOLB
        [[ $1 == golb2 ]] && cpus=$BOTH_CPUS
        [[ $1 == golbref ]] && bin=$GOLB_REF
        start_bg "$1" "$cpus" "$bin" -confpath "$TMP/$1.yaml"
        local i
        for ((i = 0; i < 100; i++)); do
            grep -q 'listening on' "$TMP/$1.log" 2>/dev/null && break
            kill -0 "${PID[$1]}" 2>/dev/null || { tail -20 "$TMP/$1.log" >&2; die "$1 exited at start-up"; }
            sleep 0.1
        done
        grep -q 'listening on' "$TMP/$1.log" || { tail -20 "$TMP/$1.log" >&2; die "$1 never logged 'listening on'"; }
        wait_port "$1" "${PORT[$1]}"
        ;;
    esac
}

# One routing scenario for one proxy: its own process with the scenario's route table on
# ROUTEPORT, keep-alive requests that take the table's last route, measured as the proxy.
run_route() { # round scenario target
    local round=$1 scen=$2 t=$3 d="$TMP/rt-$2" req name="$3rt"
    [[ $t == haproxy || $t == nginx || $t == golb ]] || return 0
    if [[ ! -f $d/request ]]; then
        mkdir -p "$d"
        "$PY" "$here/route_configs.py" "$scen" "$d" "$(IFS=,; echo "${UP_PORTS[*]}")" \
            "${ROUTEPORT[golb]}" "${ROUTEPORT[nginx]}" "${ROUTEPORT[haproxy]}" "$MAXCONN" >"$d/request"
    fi
    read -r host path <"$d/request"
    case $t in
    haproxy) start_bg "$name" "$PROXY_CPU" haproxy -db -f "$d/haproxy.cfg" ;;
    nginx) start_bg "$name" "$PROXY_CPU" nginx -p "$d/ngx" -e "$d/ngx/error.log" -c "$d/nginx.conf" ;;
    golb) start_bg "$name" "$PROXY_CPU" "$GOLB" -confpath "$d/golb.yaml" ;;
    esac
    wait_port "$name" "${ROUTEPORT[$t]}"
    # golb answers 503 until a health check saw the pool's backends: warm up until it is routed
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" \
            "http://127.0.0.1:${ROUTEPORT[$t]}$path") == 200 ]] && break
        sleep 0.1
    done
    timeout --foreground -k 5 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H "Host: $host" \
        "http://127.0.0.1:${ROUTEPORT[$t]}$path" >/dev/null 2>&1 || true
    URL_PORT=${ROUTEPORT[$t]} TARGET_PIDS=$(target_pids "$name") \
        run_wrk "$round" "$scen" "$t" "$CONNS" "$path" -H "Host: $host"
    stop_name "$name"
}

# ---------------------------------------------------------------- one measured run
target_pids() { # name -> pids of the process tree ("" for direct)
    [[ $1 == direct ]] && return 0
    descendants "${PID[$1]}"
}

run_wrk() { # round scenario target conns path [wrk args...] -> appends a record to $RAW
    # URL_SCHEME/URL_PORT (https scenarios) and TARGET_PIDS (golbnt measured as golb) override.
    local round=$1 scen=$2 target=$3 conns=$4 path=$5
    shift 5
    local port=${URL_PORT:-${PORT[$target]}} pids c0 c1 u0 u1 a0 a1 out line
    pids=${TARGET_PIDS:-$(target_pids "$target")}
    local upid=${PID[upstream]}
    read -r a0 r0 < <(upstream_counters)
    read -r h0 hc0 < <(health_counters)
    c0=$(cpu_ticks $pids)
    u0=$(cpu_ticks "$upid")
    read -r pb0 pt0 < <(cpu_busy "$PROXY_CPU")
    out=$(timeout --foreground -k 5 $((SECS + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "$here/wrk_report.lua" "$@" \
        "${URL_SCHEME:-http}://127.0.0.1:$port$path" 2>&1) || true
    c1=$(cpu_ticks $pids)
    u1=$(cpu_ticks "$upid")
    read -r pb1 pt1 < <(cpu_busy "$PROXY_CPU")
    read -r a1 r1 < <(upstream_counters)
    read -r h1 hc1 < <(health_counters)
    line=$(grep '^WRKJSON ' <<<"$out" | head -1 | cut -d' ' -f2-)
    if [[ -z $line ]]; then
        say "wrk gave no summary for $target/$scen:"
        echo "$out" | tail -5 >&2
        line=null
    fi
    local cpu=null
    [[ -n $pids ]] && cpu=$((c1 - c0))
    printf '{"round":%d,"scenario":"%s","target":"%s","seconds":%d,"conns":%d,"path":"%s","cpu_ticks":%s,"upstream_cpu_ticks":%d,"clk_tck":%d,"up_accepts":%d,"up_requests":%d,"up_health_requests":%d,"up_health_new_conns":%d,"rss_kb":%d,"proxy_cpu_busy_ticks":%d,"proxy_cpu_total_ticks":%d,"wrk":%s}\n' \
        "$round" "$scen" "$target" "$SECS" "$conns" "$path" "$cpu" $((u1 - u0)) "$CLK_TCK" \
        $((a1 - a0 - 1)) $((r1 - r0 - 1)) $((h1 - h0)) $((hc1 - hc0)) "$(rss_kb $pids)" $((pb1 - pb0)) $((pt1 - pt0)) "$line" >>"$RAW"
    "$PY" - "$RAW" <<'EOF' >&2
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
w = r["wrk"] or {}
n = w.get("requests", 0); s = w.get("duration_us", 1) / 1e6
msg = f"  round {r['round']} {r['scenario']:5} {r['target']:7} {n / s:10.0f} req/s"
if r["path"] == "/1m": msg += f" {w.get('bytes', 0) / s / 2**20:8.0f} MiB/s"
if w: msg += f"  p99 {w['lat_p99_us'] / 1000:.2f} ms"
if r["cpu_ticks"] is not None and n: msg += f"  cpu {r['cpu_ticks'] * 1e6 / r['clk_tck'] / n:.1f} us/req"
err = sum((w.get("errors") or {}).values())
if err: msg += f"  ERRORS {w['errors']}"
print(msg)
EOF
    sleep "$PAUSE"
}

run_idle() { # round target [tls]
    local round=$1 target=$2 tls=${3:-} pids out scen=idle port=${PORT[$2]} extra=()
    [[ -n $tls ]] && scen=tidle port=${TLSPORT[$target]} extra=(--tls)
    pids=$(target_pids "$target" | paste -sd,)
    out=$(timeout --foreground -k 5 120 taskset -c "$LOAD_CPU" "$PY" "$here/idle_conns.py" \
        --port "$port" --count "$IDLE" --pids "$pids" --timeout 60 "${extra[@]}") || true
    [[ $out == "{"* ]] || { say "idle_conns failed for $target: $out"; out=null; }
    printf '{"round":%d,"scenario":"%s","target":"%s","conns":%d,"idle":%s}\n' \
        "$round" "$scen" "$target" "$IDLE" "$out" >>"$RAW"
    "$PY" - "$RAW" <<'EOF' >&2
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
i = r["idle"] or {}
if i:
    per = (i["rss_after_kb"] - i["rss_before_kb"]) / max(i["opened"], 1)
    print(f"  round {r['round']} {r['scenario']:5} {r['target']:7} {i['opened']}/{i['requested']} open,"
          f" {i['alive']} alive, base {i['rss_before_kb'] / 1024:.1f} MiB, {per:.2f} KiB/conn")
EOF
    sleep "$PAUSE"
}

# ---------------------------------------------------------------- main
write_configs
say "temp dir $TMP; proxy on CPU $PROXY_CPU, wrk + upstream on CPU $LOAD_CPU; $ROUNDS round(s) x ${SECS}s"
start_upstream
proxies=()
for t in $TARGETS; do [[ $t == direct ]] || proxies+=("$t"); done
for t in $TARGETS; do start_target "$t"; done

declare -A START_RSS=()
for t in "${proxies[@]}"; do START_RSS[$t]=$(rss_kb $(target_pids "$t")); done

say "warming up (1 s each, not recorded)"
for t in $TARGETS; do
    timeout --foreground -k 5 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s \
        "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
done

read -ra tlist <<<"$TARGETS"
ntargets=${#tlist[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the order every round so no target always runs first (or right after another).
    order=()
    for ((i = 0; i < ntargets; i++)); do order+=("${tlist[$(((i + round - 1) % ntargets))]}"); done
    say "round $round/$ROUNDS: ${order[*]}"
    for scen in $SCENARIOS; do
        case $scen in
        ka) for t in "${order[@]}"; do run_wrk "$round" ka "$t" "$CONNS" / ; done ;;
        close) for t in "${order[@]}"; do run_wrk "$round" close "$t" "$CONNS" / -H "Connection: close"; done ;;
        big) for t in "${order[@]}"; do run_wrk "$round" big "$t" "$BIG_CONNS" /1m ; done ;;
        scale)
            start_target golb2
            timeout --foreground -k 5 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s \
                "http://127.0.0.1:${PORT[golb2]}/" >/dev/null 2>&1 || true
            run_wrk "$round" scale golb2 "$CONNS" /
            stop_name golb2
            ;;
        tka | tres | tbig)
            # HTTPS on the ticket listeners: keep-alive, resumed handshake per request (wrk
            # resumes each connection's session), 1 MiB responses.
            for t in "${order[@]}"; do
                [[ $t == direct ]] && continue
                targs=() path=/ conns=$CONNS
                [[ $scen == tres ]] && targs=(-H "Connection: close")
                [[ $scen == tbig ]] && path=/1m conns=$BIG_CONNS
                URL_SCHEME=https URL_PORT=${TLSPORT[$t]} \
                    run_wrk "$round" "$scen" "$t" "$conns" "$path" "${targs[@]}"
            done
            ;;
        tfull)
            # Session tickets and caches off on these listeners: each connection is a full
            # handshake. golb's is the golbnt process, measured as golb.
            for t in "${order[@]}"; do
                [[ $t == direct ]] && continue
                tpids=""
                if [[ $t == golb ]]; then
                    start_target golbnt
                    tpids=$(target_pids golbnt)
                fi
                URL_SCHEME=https URL_PORT=${FULLPORT[$t]} TARGET_PIDS=$tpids \
                    run_wrk "$round" tfull "$t" "$CONNS" / -H "Connection: close"
                [[ $t == golb ]] && stop_name golbnt
            done
            ;;
        tidle)
            for t in "${order[@]}"; do
                [[ $t == direct ]] && continue
                stop_name "$t"
                start_target "$t"
                timeout --foreground -k 5 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s \
                    "https://127.0.0.1:${TLSPORT[$t]}/" >/dev/null 2>&1 || true
                run_idle "$round" "$t" tls
            done
            ;;
        r1 | r10k | rre)
            for t in "${order[@]}"; do run_route "$round" "$scen" "$t"; done
            ;;
        pp)
            [[ " ${order[*]} " == *" golb "* ]] || continue
            start_target haproxyl4
            for v in l4 pp; do
                start_target "golb$v"
                URL_PORT=${L4PORT[$([[ $v == pp ]] && echo 1 || echo 0)]} \
                    TARGET_PIDS=$(target_pids "golb$v") \
                    run_wrk "$round" pp "golb$v" "$CONNS" / -H "Connection: close"
                stop_name "golb$v"
            done
            stop_name haproxyl4
            ;;
        idle)
            # Each proxy is restarted first: a process that already held 5,000 connections in
            # an earlier round keeps that memory in its allocator, and the next round would
            # measure (almost) nothing per connection. A short keep-alive run warms it up.
            for t in "${order[@]}"; do
                [[ $t == direct ]] && continue
                stop_name "$t"
                start_target "$t"
                timeout --foreground -k 5 30 taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s \
                    "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
                run_idle "$round" "$t"
            done
            ;;
        esac
    done
done

json="$root/bench/results/bench-$STAMP.json"
"$PY" "$here/report.py" --raw "$RAW" --out "$json" --rounds "$ROUNDS" --seconds "$SECS" \
    --conns "$CONNS" --big-conns "$BIG_CONNS" --idle "$IDLE" --proxy-cpu "$PROXY_CPU" \
    --load-cpu "$LOAD_CPU" --targets "$TARGETS" --golb "$GOLB" \
    --start-rss "$(for t in "${proxies[@]}"; do printf '%s=%s,' "$t" "${START_RSS[$t]}"; done)" |
    tee "${json%.json}.txt"
say "raw numbers: $json"

# Balancing on uneven pools (slow backend, stalls, weights): its own processes and ports, after
# everything above has stopped.
if [[ ${BENCH_UNEVEN:-1} == 1 ]]; then
    secs=${BENCH_UNEVEN_SECONDS:-20}
    [[ $QUICK == 1 ]] && secs=${BENCH_UNEVEN_SECONDS:-5}
    "$PY" "$here/uneven.py" --rate "${BENCH_UNEVEN_RATE:-1000}" --seconds "$secs" |
        tee "$root/bench/results/uneven-$STAMP.txt"
fi

# HTTP/2 to clients (h2load over TLS 1.3: -c 100 -m 10, -c 1000 -m 1, 1 MiB with -m 10) against
# HAProxy and nginx with HTTP/2 on: bench/h2.sh, its own processes and ports.
if [[ ${BENCH_H2:-1} == 1 ]]; then
    n=${H2_SMALL_N:-100000}
    [[ $QUICK == 1 ]] && n=${H2_SMALL_N:-20000}
    GOLB_BIN=$GOLB H2_ROUNDS=${H2_ROUNDS:-$ROUNDS} H2_SMALL_N=$n "$here/h2.sh" |
        tee "$root/bench/results/h2-$STAMP.txt"
fi

# gRPC-shaped unary calls over HTTP/2 to golb (protocol: h2), nginx grpc_pass and HAProxy proto h2:
# bench/grpc.sh, its own processes and ports.
if [[ ${BENCH_GRPC:-1} == 1 ]]; then
    n=${GRPC_N:-100000}
    [[ $QUICK == 1 ]] && n=${GRPC_N:-20000}
    GOLB_BIN=$GOLB GRPC_ROUNDS=${GRPC_ROUNDS:-$ROUNDS} GRPC_N=$n "$here/grpc.sh" |
        tee "$root/bench/results/grpc-$STAMP.txt"
fi

# Reloads under load (20 reloads adding and removing a backend while keep-alive and new-connection
# clients run): failed requests, p99, old processes, RSS. Its own processes and ports.
if [[ ${BENCH_RELOAD:-1} == 1 ]]; then
    secs=${BENCH_RELOAD_SECONDS:-12}
    [[ $QUICK == 1 ]] && secs=${BENCH_RELOAD_SECONDS:-6}
    "$PY" "$here/reload.py" --seconds "$secs" --reloads "${BENCH_RELOADS:-20}" |
        tee "$root/bench/results/reload-$STAMP.txt"
fi
