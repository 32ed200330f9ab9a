#!/bin/bash
# tools/fuzz.sh: builds every libFuzzer target tests/fuzz/fuzz-NAME.c with
# clang, AddressSanitizer and UndefinedBehaviorSanitizer (all project code
# instrumented for coverage), and runs each for SECONDS (default 60) from its
# seed corpus tests/fuzz/corpus/NAME/. Exits non-zero on any crash, leak,
# UB report or GLib critical; reproducers land in
# build-fuzz/fuzz-artifacts/NAME/ (copy one into the corpus to keep it as a
# regression test: the unit suite replays the corpora).
#   usage: tools/fuzz.sh [SECONDS]     env: MS_FUZZ_BUILD (default build-fuzz)
set -uo pipefail
secs=${1:-60}
case $secs in ''|*[!0-9]*) echo "usage: $0 [SECONDS per target]" >&2; exit 2 ;; esac
src=$(cd "$(dirname "$0")/.." && pwd)
build=${MS_FUZZ_BUILD:-$src/build-fuzz}

if ! command -v clang >/dev/null; then
    echo "fuzz.sh: installing clang" >&2
    apt-get install -y -qq clang >/dev/null || { echo "fuzz.sh: cannot install clang" >&2; exit 1; }
fi

if [ ! -f "$build/build.ninja" ]; then
    setup_log=$(mktemp /tmp/ms-fuzz-setup.XXXXXX)
    # b_lundef=false: the sanitizer runtimes resolve symbols at link time of
    # the executable, not of the static libraries.
    CC=clang meson setup "$build" "$src" \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized \
        -Dc_args='-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer' \
        >"$setup_log" 2>&1 || { cat "$setup_log" >&2; rm -f "$setup_log"; exit 1; }
    rm -f "$setup_log"
fi

targets=()
for f in "$src"/tests/fuzz/fuzz-*.c; do
    name=$(basename "$f" .c)
    case $name in fuzz-replay|fuzz-glib) continue ;; esac   # helpers, not targets
    targets+=("${name#fuzz-}")
done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no targets in tests/fuzz" >&2; exit 1; }

ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz-}" >"$build/fuzz-build.log" 2>&1 || {
    tail -30 "$build/fuzz-build.log" >&2
    echo "fuzz.sh: build failed (is every target listed in tests/fuzz/meson.build?)" >&2
    exit 1
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=${LSAN_OPTIONS:-}
# GLib criticals abort (tests/fuzz/fuzz-glib.c), so libFuzzer keeps them.
export G_SLICE=always-malloc

failed=0
for t in "${targets[@]}"; do
    seeds=$src/tests/fuzz/corpus/$t
    work=$build/fuzz-corpus/$t
    art=$build/fuzz-artifacts/$t
    mkdir -p "$work" "$art"
    [ -d "$seeds" ] || { echo "fuzz.sh: $t: no seed corpus $seeds" >&2; mkdir -p "$seeds"; }
    log=$build/fuzz-$t.log
    echo "fuzz.sh: $t: ${secs}s from $(ls "$seeds" | wc -l) seeds"
    # New inputs go to the work corpus, never into the source tree.
    "$build/tests/fuzz/fuzz-$t" -max_total_time="$secs" -detect_leaks=1 \
        -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 | grep -o 'cov: [0-9]*')
    if [ $rc -ne 0 ]; then
        failed=1
        echo "fuzz.sh: $t: FAILED (exit $rc) after ${execs:-?} runs; log $log; artifacts:"
        ls "$art" | sed 's/^/    /'
        grep -E 'ERROR: |runtime error|CRITICAL|SUMMARY' "$log" | head -3 | sed 's/^/    /'
    else
        echo "fuzz.sh: $t: ok, ${execs:-?} runs, ${cov:-cov: ?}, work corpus $(ls "$work" | wc -l) files"
    fi
done
exit $failed
