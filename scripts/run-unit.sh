#!/usr/bin/env bash
# Runs each Criterion unit-test binary given, prints its synthesis, and sums the counts.
# Appends "passed failed" to $GOLB_RESULTS when set (scripts/test.sh totals them).
set -u
passed=0 failed=0 status=0
for bin in "$@"; do
    out=$("$bin" --jobs 2 2>&1); rc=$?
    synth=$(printf '%s\n' "$out" | grep -E 'Synthesis:' | tail -n1)
    # Criterion counts a test as passed even when LeakSanitizer or UBSan reported in it.
    if printf '%s\n' "$out" | grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'; then
        printf '%s\n' "$out" | grep -E -A 30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' | head -n 80
        echo "$(basename "$bin"): sanitizer report"
        failed=$((failed + 1)); status=1
    fi
    if [ $rc -ne 0 ] || [ -z "$synth" ]; then
        printf '%s\n' "$out" | grep -vE '^\[----\] +$' | tail -n 60
        status=1
    fi
    echo "$(basename "$bin"): ${synth#*Synthesis: }"
    t=$(sed -nE 's/.*Tested: ([0-9]+).*/\1/p' <<<"$synth"); p=$(sed -nE 's/.*Passing: ([0-9]+).*/\1/p' <<<"$synth")
    t=${t:-0}; p=${p:-0}
    passed=$((passed + p)); failed=$((failed + t - p))
    [ -n "$synth" ] || failed=$((failed + 1))
done
echo "unit: $passed passed, $failed failed"
[ -n "${GOLB_RESULTS:-}" ] && echo "$passed $failed" >>"$GOLB_RESULTS"
[ $failed -eq 0 ] || status=1
exit $status
