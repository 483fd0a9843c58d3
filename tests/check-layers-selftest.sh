#!/usr/bin/env bash
# The layer check must fail on a wrong include, naming it: run it on a copy of src/ with one
# include going up (base -> server) and one cycle inside a folder, and on the tree as it is.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r src "$tmp/src"
echo '#include "server/worker.h"' >>"$tmp/src/base/buf.c"
echo '#include "core/obs.h"' >>"$tmp/src/core/accesslog.c"
out=$(scripts/check-layers.sh "$tmp"); rc=$?
fail=0
[ $rc -ne 0 ] || { echo "check-layers-selftest: a wrong include passed"; fail=1; }
grep -q 'src/base/buf.c:[0-9]*: "server/worker.h" (base may not use server' <<<"$out" ||
    { echo "check-layers-selftest: the upward include was not named: $out"; fail=1; }
grep -q 'src/core/accesslog <-> src/core/obs' <<<"$out" ||
    { echo "check-layers-selftest: the cycle was not named: $out"; fail=1; }
scripts/check-layers.sh || fail=1
exit $fail
