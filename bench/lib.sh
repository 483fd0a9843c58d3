# shellcheck shell=bash
# bench/lib.sh — what bench/h2.sh and bench/grpc.sh share, sourced by both (never run): the
# tool check, a temporary folder removed with every process started when the script ends, the
# ports, the self-signed certificate, nginx temp paths, starting the four processes (upstream
# nginx, nginx, HAProxy, golb) pinned to CPUs, and the cpu_ticks / median helpers.
#
# Before sourcing, the caller sets BENCH_NAME (the prefix of its messages) and BENCH_KEEP
# (non-empty: keep the temporary folder); after, it calls bench_init, writes its configs under
# $TMP and calls bench_start_all.

export PATH=$PATH:/usr/sbin:/sbin
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GOLB=${GOLB_BIN:-$bench_root/bin/golb}
hz=$(getconf CLK_TCK)
pids=()
declare -A PID PORT

# bench_init base tmp-prefix tool... — checks that every tool is on PATH, sets the ports (the
# upstream UP = base+1; PORT[haproxy] +11, PORT[nginx] +12, PORT[golb] +13), makes $TMP, arms
# the cleanup, and writes the certificate: $TMP/c.pem and k.pem (ECDSA P-256, CN bench.test,
# SAN 127.0.0.1), both in $TMP/haproxy.pem, and the nginx temp folders $TMP/{up,px}/tmp.
bench_init() {
    local base=$1 prefix=$2 t
    shift 2
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$BENCH_NAME: $t not found" >&2; exit 2; }
    done
    UP=$((base + 1))
    PORT=([haproxy]=$((base + 11)) [nginx]=$((base + 12)) [golb]=$((base + 13)))
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
    trap bench_cleanup EXIT
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$TMP/k.pem" -out "$TMP/c.pem" -subj /CN=bench.test \
        -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 2>/dev/null
    cat "$TMP/c.pem" "$TMP/k.pem" >"$TMP/haproxy.pem"
    mkdir -p "$TMP/up/tmp" "$TMP/px/tmp"
}
bench_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n ${BENCH_KEEP:-} ]] || rm -rf "$TMP"
}

# tmps dir — nginx's temp path directives, all under dir/tmp (for a config heredoc)
tmps() { local d=$1; for t in body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $d/tmp/$t;" | sed 's/body_temp/client_body_temp/'; done; }

start() { # name cpu cmd... → PID[name] (not in a subshell: cleanup must see every pid)
    local name=$1 cpu=$2; shift 2
    taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
    pids+=($!)
    PID[$name]=$!
}
wait_port() { # port [pid: give up early once it has exited]
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null && break
        sleep 0.1
    done
    echo "$BENCH_NAME: nothing listens on $1" >&2; return 1
}

# bench_start_all — the upstream nginx ($TMP/up.conf) on CPU $LCPU, then nginx ($TMP/nginx.conf),
# HAProxy ($TMP/haproxy.cfg) and golb ($TMP/golb.yaml) on CPU $PCPU; returns once all listen.
bench_start_all() {
    local t
    start up "$LCPU" nginx -c "$TMP/up.conf"
    wait_port "$UP"
    start nginx "$PCPU" nginx -c "$TMP/nginx.conf"
    start haproxy "$PCPU" haproxy -db -f "$TMP/haproxy.cfg"
    start golb "$PCPU" "$GOLB" -confpath "$TMP/golb.yaml"
    for t in nginx haproxy golb; do wait_port "${PORT[$t]}" "${PID[$t]}"; done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# us_per_req ticks n — CPU ticks spent on n requests, in µs per request (2 decimals)
us_per_req() { awk -v d="$1" -v hz="$hz" -v n="$2" 'BEGIN{printf "%.2f", d / hz * 1e6 / n}'; }
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
least() { printf '%s\n' "$@" | sort -g | head -1; } # the smallest of its arguments
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a / b}'; }
