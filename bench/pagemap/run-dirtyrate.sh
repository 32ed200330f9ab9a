#!/bin/bash
# bench/pagemap/run-dirtyrate.sh: one full classification of a live guest's
# RAM (PAGEMAP_SCAN vs pread, bench-pagemap) next to QEMU's own
# calc-dirty-rate (mode page-sampling: the only mode that works under TCG;
# dirty-ring and dirty-bitmap need KVM), same guest, same run.
# The guest: TCG q35, SIZE MiB (default 2048), holding 64 MiB of urandom in
# tmpfs (touch-free with a long hold). calc-dirty-rate is timed from the
# command to query-dirty-rate saying "measured", with calc-time=1 (its
# minimum: it hashes sampled pages, waits calc-time, hashes them again), so
# its cost is wall time minus 1 s; it estimates a rate from 512 sampled
# pages per GiB and classifies nothing.
#   usage: run-dirtyrate.sh BUILDDIR [SIZE_MIB] [RUNS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run-dirtyrate.sh BUILDDIR [SIZE_MIB] [RUNS]}" && pwd)
size=${2:-2048}
runs=${3:-15}
ninja -C "$build" bench/pagemap/bench-pagemap tests/guest/vmlinuz tests/guest/initramfs.img > /dev/null
tmp=$(mktemp -d)
source "$here/../../tests/lib/qemu.sh"
trap 'qemu_stop_all; rm -rf "$tmp"' EXIT
qemu_start g mem="$size" balloon=none kernel="$build/tests/guest/vmlinuz" initrd="$build/tests/guest/initramfs.img" \
    guest="ms.scenario=touch-free ms.size=64 ms.hold=3600" || exit 1
qemu=$QEMU_PID
qemu_wait_console g MS-TOUCHED 120 >&2 || { echo "guest did not touch its 64 MiB" >&2; exit 1; }
sleep 2
echo "# $(uname -r), $(nproc) CPUs, $(qemu-system-x86_64 --version | head -1), TCG q35 ${size} MiB guest holding 64 MiB"
# (bash arithmetic, not awk: Debian's default awk, mawk, has no strtonum)
range=
while read -r addrs perms _; do
    [[ $perms == rw-* ]] || continue
    if (( 16#${addrs#*-} - 16#${addrs%-*} == size * 1048576 )); then range=$addrs; break; fi
done < "/proc/$qemu/maps"
[ -n "$range" ] || { echo "no ${size} MiB mapping in QEMU" >&2; exit 1; }
"$build/bench/pagemap/bench-pagemap" --runs "$runs" --pid "$qemu" --range "$range"
python3 - "$tmp/g.sock" "$size" 5 <<'PY'
import json, socket, statistics, sys, time
sock, size_mib, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rw")
def cmd(name, args=None):
    req = {"execute": name}
    if args: req["arguments"] = args
    f.write(json.dumps(req) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "event" in m: continue
        if "error" in m: sys.exit("%s: %s" % (name, m["error"]))
        return m.get("return")
json.loads(f.readline()); cmd("qmp_capabilities")
walls, rates = [], []
for _ in range(runs):
    t0 = time.monotonic()
    cmd("calc-dirty-rate", {"calc-time": 1, "sample-pages": 512, "mode": "page-sampling"})
    while True:
        r = cmd("query-dirty-rate")
        if r.get("status") == "measured": break
        time.sleep(0.005)
    walls.append((time.monotonic() - t0) * 1000); rates.append(r.get("dirty-rate"))
w = statistics.median(walls)
print("calc-dirty-rate page-sampling calc-time=1 s, 512 pages/GiB: median wall %.1f ms over %d runs"
      " (%.1f ms above calc-time, %.2f ms/GiB); dirty-rate MB/s %s" % (w, runs, w - 1000, (w - 1000) / (size_mib / 1024), rates))
PY
