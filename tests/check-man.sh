#!/usr/bin/env bash
# The man pages stay clean and complete:
#  1. `mandoc -T lint -W warning` and `groff -ww` print nothing for docs/man/golb.8 and golb.yml.5;
#  2. every key the config parser accepts (the key tables in src/config/config*.c) has its own
#     ".It Cm NAME" item in golb.yml.5 (nested keys as PARENT.NAME), so a new key cannot be added
#     without its documentation;
#  3. for the table rows with a number default (DURATION, COUNT), the item says "Default: N.".
# Usage: tests/check-man.sh [DIR]  (DIR holds golb.8 and golb.yml.5; default docs/man)
set -u
cd "$(dirname "$0")/.."
dir=${1:-docs/man}
pages=("$dir/golb.8" "$dir/golb.yml.5")
fail=0
problem() { echo "check-man: $*" >&2; fail=1; }

for tool in mandoc groff; do
    command -v $tool >/dev/null || problem "$tool is not installed (deps.txt, group test)"
done
for p in "${pages[@]}"; do
    [ -f "$p" ] || { problem "$p is missing"; continue; }
    out=$(mandoc -T lint -W warning "$p" 2>&1) || [ -n "$out" ] || out="mandoc failed"
    [ -z "$out" ] || problem "mandoc -T lint -W warning $p:"$'\n'"$out"
    out=$(groff -ww -mandoc -Tutf8 -z "$p" 2>&1)
    [ -z "$out" ] || problem "groff -ww $p:"$'\n'"$out"
done

# Key names: the string literals of each key table, with the prefix its section takes. A table
# is an initializer "keys[] = {", "names[] = {" or "config_tls_backend_keys[] = {"; it is named
# FILE:FUNCTION (the function it is in, or "-" at file scope). A table not listed below fails the
# check: say here where its keys are documented.
prefix_of() {
    case "$1" in
        src/config/config.c:-) echo "" ;;                     # the top-level keys
        src/config/config_backend.c:parse_backend) echo "" ;; # a backend mapping
        src/config/config_tls.c:-) echo "" ;;                 # backends' TLS keys
        src/config/config_tls.c:config_tls_section) echo "tls." ;;
        src/config/config_tls.c:load_certificates) echo "" ;; # a tls.certificates entry
        src/config/config_lb.c:config_lb_sticky) echo "stickySession." ;;
        src/config/config_obs.c:config_obs_admin) echo "admin." ;;
        src/config/config_pool.c:parse_pool) echo "" ;;        # a pool: top-level keys it overrides
        src/config/config_route.c:parse_route) echo "" ;;      # a route's own keys
        src/config/config_route.c:parse_match) echo "match." ;;
        src/config/config_route.c:parse_split) echo "split." ;;
        src/config/config_route.c:parse_redirect) echo "redirect." ;;
        src/config/config_route.c:parse_respond) echo "respond." ;;
        src/config/config_route.c:parse_rate) echo "rateLimit." ;;
        src/config/config_net.c:config_net_proxy_protocol) echo "proxyProtocol." ;;
        src/config/config_dns.c:config_dns_resolvers) echo "resolvers." ;;
        *) return 1 ;;
    esac
}
tables=$(awk '
    /^[a-z][^;]*\(/ && !/^static const/ && !/=/ { fn = $0; sub(/\(.*/, "", fn); sub(/.* \**/, "", fn) }
    /^}/ { fn = "-" }
    BEGIN { fn = "-" }
    /(^|[ *])(keys|names|config_tls_backend_keys)\[\] = \{/ { inside = 1; table = FILENAME ":" fn }
    inside {
        line = $0; sub(/\/\*.*/, "", line)
        while (match(line, /"[A-Za-z][A-Za-z0-9]*"/)) {
            print table, substr(line, RSTART + 1, RLENGTH - 2)
            line = substr(line, RSTART + RLENGTH)
        }
        if ($0 ~ /};/) inside = 0
    }' src/config/config*.c)
[ -n "$tables" ] || problem "found no key tables in src/config/config*.c"
nkeys=0
while read -r table key; do
    if ! pre=$(prefix_of "$table"); then
        problem "key table $table (key $key) is unknown to tests/check-man.sh: add its prefix"
        continue
    fi
    nkeys=$((nkeys + 1))
    grep -Eq "^\.It Cm ${pre//./\\.}$key( |$)|^\.It .*Cm ${pre//./\\.}$key ." "$dir/golb.yml.5" ||
        problem "golb.yml.5 does not document ${pre}$key (from $table): add an \".It Cm ${pre}$key\" item"
done <<< "$tables"

# Defaults of the DURATION(name, field, seconds) and COUNT(name, field, lo, hi, default) rows.
while read -r key def; do
    body=$(awk -v k="$key" '
        /^\.It / { on = ($0 ~ ("^\\.It Cm " k "( |$)")) ; next }
        /^\.(El|Sh)/ { on = 0 }
        on' "$dir/golb.yml.5")
    grep -q "^Default: $def\.\$" <<< "$body" ||
        problem "golb.yml.5: $key must say \"Default: $def.\" (src/config/config.c)"
done < <(sed -nE 's/^ *DURATION\("([A-Za-z]+)", *[a-z_]+, *([0-9]+)\),.*/\1 \2/p;
                  s/^ *COUNT\("([A-Za-z]+)", *[a-z_]+, *[0-9]+, *[0-9]+, *([0-9]+)\),.*/\1 \2/p' src/config/config.c)

if [ $fail -eq 0 ]; then
    echo "check-man: ok (mandoc and groff clean, $nkeys config keys documented)"
    [ -z "${GOLB_RESULTS:-}" ] || echo "1 0" >> "$GOLB_RESULTS"
else
    [ -z "${GOLB_RESULTS:-}" ] || echo "0 1" >> "$GOLB_RESULTS"
fi
exit $fail
