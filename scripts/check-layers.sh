#!/usr/bin/env bash
# check-layers.sh — every #include in src/ goes down the layers, never up or sideways.
#
#   base ← net ← http ← config ← upstream ← lb ← core ← session ← server
#                                                  ↖ admin ↙ (core and below; only server wires it)
#
# A file may include headers of its own folder and of any folder to its left. admin/ may include
# core/ and below; of the other folders only server/ (the process that starts the admin listener)
# may include admin/. An include of a golb header must name its folder ("base/buf.h"), so that
# this check sees every edge. A header named *_int.h (a struct body or helpers one module keeps
# to itself, e.g. core/exchange_int.h) may be included only from its own folder. cmd/ and tests/
# are outside the layers.
# Two modules that include each other (a cycle inside a folder) are reported too.
# Prints each wrong include as FILE:LINE: "header" (folder A may not use folder B) and exits 1.
# Usage: check-layers.sh [ROOT]   (ROOT: a tree with src/, default this checkout)
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2
order=(base net http config upstream lb core session server)
declare -A rank=()
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done
rank[admin]=side # on the side: see allowed()

allowed() { # from-folder to-folder
    local a=$1 b=$2
    [[ $a == "$b" ]] && return 0
    if [[ $b == admin ]]; then [[ $a == server ]]; return; fi
    if [[ $a == admin ]]; then (( ${rank[$b]} <= ${rank[core]} )); return; fi
    (( ${rank[$b]} < ${rank[$a]} ))
}

bad=0
declare -A edge=() # "from-module to-module" (a module is its .c and .h), for the cycle check
for dir in src/*/; do
    dir=${dir%/}; from=${dir#src/}
    if [[ -z ${rank[$from]:-} ]]; then
        echo "$dir: a folder the layer order does not know (add it to scripts/check-layers.sh and docs/architecture.md)"
        bad=1; continue
    fi
    while IFS=: read -r file line text; do
        hdr=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$text")
        [[ -n $hdr ]] || continue
        to=${hdr%%/*}
        a=${file%.*} b=src/${hdr%.*}
        edge["${a%_int} ${b%_int}"]=1 # a module's private X_int.h is part of module X
        if [[ $hdr != */* || -z ${rank[$to]:-} ]]; then
            echo "$file:$line: \"$hdr\" (name the layer folder: \"<layer>/$hdr\")"
            bad=1; continue
        fi
        if [[ $hdr == *_int.h && $to != "$from" ]]; then
            echo "$file:$line: \"$hdr\" (a *_int.h header is private to its folder)"
            bad=1; continue
        fi
        if ! allowed "$from" "$to"; then
            echo "$file:$line: \"$hdr\" ($from may not use $to: see docs/architecture.md, Layers)"
            bad=1
        fi
    done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir"/*.[ch] 2>/dev/null)
done
# Two modules of one folder that include each other: the layers allow it, the design does not.
for e in "${!edge[@]}"; do
    read -r a b <<<"$e"
    if [[ $a < $b && -n ${edge["$b $a"]:-} ]]; then
        echo "$a <-> $b: the two modules include each other (give the edge one direction)"
        bad=1
    fi
done
[[ $bad == 0 ]] && echo "check-layers: ok (${#order[@]} layers + admin, every include goes down)"
exit $bad
