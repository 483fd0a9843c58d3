#!/usr/bin/env bash
# scripts/fuzz.sh replay BIN...  replays each target's corpus, then fuzzes for FUZZ_REPLAY_SECONDS (default 15)
# scripts/fuzz.sh run BIN...     fuzzes each target for FUZZ_SECONDS (default 300); a finding fails the run
# Corpus: tests/fuzz/corpus/<name without fuzz_>/ (kept in git). New inputs go to build/fuzz/corpus-<name>
# so a bounded run in `make test` never dirties the tree; crash inputs land in build/fuzz/.
set -u
mode=$1; shift
status=0 passed=0 failed=0
for bin in "$@"; do
    name=$(basename "$bin"); name=${name#fuzz_}
    seeds=tests/fuzz/corpus/$name
    work=build/fuzz/corpus-$name
    mkdir -p "$work" "$seeds"
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
    if [ "$mode" = replay ]; then secs=${FUZZ_REPLAY_SECONDS:-15}; else secs=${FUZZ_SECONDS:-300}; fi
    echo "fuzz $name: replaying $(ls "$seeds" | wc -l) seeds, then fuzzing ${secs}s"
    if "$bin" -runs=0 "${dict[@]}" "$seeds" >build/fuzz/$name.replay.log 2>&1 &&
       "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
              -artifact_prefix=build/fuzz/"$name"- "${dict[@]}" "$work" "$seeds" >build/fuzz/$name.log 2>&1; then
        passed=$((passed + 1))
        tail -n1 build/fuzz/$name.log
    else
        failed=$((failed + 1)); status=1
        echo "fuzz $name: FINDING (see build/fuzz/$name.log and build/fuzz/$name-*)"
        tail -n 40 build/fuzz/$name.replay.log build/fuzz/$name.log
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ -n "${GOLB_RESULTS:-}" ] && echo "$passed $failed" >>"$GOLB_RESULTS"
exit $status
