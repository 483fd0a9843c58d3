#!/usr/bin/env bash
# `make test`: build and run every test layer, plain and under ASan+UBSan, then replay the fuzz corpora.
# Prints one closing line "N passed, M failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
export GOLB_RESULTS; GOLB_RESULTS=$(mktemp)
trap 'rm -f "$GOLB_RESULTS"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)
fail=0
step() {
    echo "== $*"
    "$@" || { echo "FAILED: $*"; fail=1; }
}
step make check-layers
step make -j"$jobs" MODE=release all
step make -j"$jobs" MODE=release build/release/libgolb.a $(ls tests/unit/*/test_*.c | sed 's#tests/unit/\(.*\)\.c#build/release/tests/\1#')
step make MODE=release unit
step make MODE=release e2e
step make MODE=release e2e-tls
step make MODE=release check-dist
step make check-deb
step make -j"$jobs" MODE=asan all
step make -j"$jobs" MODE=asan $(ls tests/unit/*/test_*.c | sed 's#tests/unit/\(.*\)\.c#build/asan/tests/\1#')
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 step make MODE=asan unit
GOLB_TEST_TIMEOUT_SCALE=${GOLB_TEST_TIMEOUT_SCALE:-3} ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 step make MODE=asan e2e
step make -j"$jobs" fuzz-build
FUZZ_REPLAY_SECONDS=${FUZZ_REPLAY_SECONDS:-15} step make fuzz-replay
read -r passed failed < <(awk '{p += $1; f += $2} END {print p+0, f+0}' "$GOLB_RESULTS")
[ $fail -eq 0 ] || failed=$((failed > 0 ? failed : 1))
echo
echo "$passed passed, $failed failed"
[ $fail -eq 0 ] && [ "$failed" -eq 0 ]
