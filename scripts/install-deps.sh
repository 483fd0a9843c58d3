#!/usr/bin/env bash
# Installs the Debian packages deps.txt lists for the given groups, only those missing.
# Usage: scripts/install-deps.sh build [test] [bench]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want=()
for group in "$@"; do
    line=$(grep -E "^${group}:" "$here/deps.txt" | cut -d: -f2-) || { echo "install-deps: unknown group $group" >&2; exit 2; }
    for p in $line; do want+=("$p"); done
done
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
# Packages such as nginx and haproxy start a system service on install; golb's benchmark runs its own
# copies in the foreground instead, so forbid service starts while installing.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && created_policy=1
fi
trap '[ $created_policy = 1 ] && $sudo rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}"; then
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
