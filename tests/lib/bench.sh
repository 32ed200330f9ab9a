# tests/lib/bench.sh: the prelude of the benches that boot guests on this
# host (bench/density, bench/debian-usr, ...): root and tools checked, the
# build brought up to date, a run directory on disk, the guests stopped and
# the directory removed at exit. Sourced after `set -euo pipefail` (the bench
# regime, tests/lib/README.md). Defines:
#   bench_setup NAME BUILD TOOL... -- TARGET...
#       exits 1 naming what is missing (root, a TOOL); meson setup BUILD if
#       new, ninja BUILD TARGET...; tmp=$(mktemp -d /var/tmp/NAME.XXXXXX)
#       (on disk, not tmpfs: the images' page cache must be ordinary,
#       droppable file cache, as on a real host); EXIT/INT/TERM traps
#   pids=()          guests to stop: bench_stop_guests (TERM, 5 s, then KILL)
#   log MSG          "# MSG" on stderr
#   MS_KEEP_TMP=1    keeps $tmp

bench_stop_guests() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
        kill -9 "$p" 2> /dev/null || true
    done
    pids=()
}

_bench_cleanup() {
    bench_stop_guests
    if [ "${MS_KEEP_TMP:-0}" = 1 ]; then echo "run-bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
}

log() { echo "# $*" >&2; }

bench_setup() {
    local name=$1 build=$2 t; shift 2
    [ "$(id -u)" = 0 ] || { echo "run-bench: must run as root" >&2; exit 1; }
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        command -v "$1" > /dev/null || { echo "run-bench: $1 not found" >&2; exit 1; }
        shift
    done
    [ "${1:-}" = -- ] && shift
    local top; top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    [ -d "$build" ] || meson setup "$build" "$top" > /dev/null
    # always through ninja: a stale initramfs would run an old scenario
    [ $# -eq 0 ] || ninja -C "$build" "$@" > /dev/null
    tmp=$(mktemp -d "/var/tmp/$name.XXXXXX")
    pids=()
    trap _bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
