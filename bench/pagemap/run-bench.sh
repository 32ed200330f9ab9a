#!/bin/bash
# bench/pagemap/run-bench.sh: builds and runs bench-pagemap.
#   run-bench.sh BUILDDIR [RUNS]            self mappings only
#   run-bench.sh BUILDDIR RUNS QEMU_PID     also a live QEMU: its largest
#                                           rw mapping is taken as guest RAM
# Run as root (PFNs and /proc/kpageflags need CAP_SYS_ADMIN).
#   MEMSHARE_HIDE=linux-6.1: Debian 12's 6.1 path only (no PAGEMAP_SCAN)
set -euo pipefail
build=${1:?usage: run-bench.sh BUILDDIR [RUNS] [QEMU_PID]}
runs=${2:-15}
pid=${3:-}
ninja -C "$build" bench/pagemap/bench-pagemap >/dev/null
args=(--runs "$runs")
if [[ -n $pid ]]; then
    # Guest RAM is the largest rw-p/rw-s mapping of a QEMU process; the
    # agent finds it exactly (ms_guestmem_discover), this is for a quick look.
    range= best=0
    while read -r addr perms _; do
        [[ $perms == rw-p || $perms == rw-s ]] || continue
        s=$((16#${addr%-*})) e=$((16#${addr#*-}))
        if (( e - s > best )); then best=$((e - s)) range=$addr; fi
    done < "/proc/$pid/maps"
    args+=(--pid "$pid" --range "$range")
fi
echo "# $(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)${MEMSHARE_HIDE:+, MEMSHARE_HIDE=$MEMSHARE_HIDE}"
exec "$build/bench/pagemap/bench-pagemap" "${args[@]}"
