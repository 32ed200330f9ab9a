#!/bin/bash
# bench/refactor/run-bench.sh: "no behaviour change" as a figure. Builds the
# hook and bench-pagemap of an older revision (a git worktree in the run
# directory) beside BUILDDIR's, then alternates the two on the same inputs
# in one run: the hook's exec cost (bench/hook/bench-hook-exec.sh, as a
# ratio to /bin/true measured in the same loop) and the used-page
# classification of one live 2 GiB TCG guest (bench-pagemap, both the
# PAGEMAP_SCAN path and Debian 12's 6.1 read path). Prints a markdown table
# of old, new and new/old. Written for issue 16 (code moved: formats/,
# ms-pagemap split), usable for any refactor touching these paths.
#   usage: run-bench.sh BUILDDIR OLD-REV [ROUNDS]   (ROUNDS alternations, 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run-bench.sh BUILDDIR OLD-REV [ROUNDS]}" && pwd)
old=$(git -C "$top" rev-parse --verify "${2:?usage: run-bench.sh BUILDDIR OLD-REV [ROUNDS]}^{commit}")
new=$(git -C "$top" rev-parse HEAD)
rounds=${3:-3}
source "$top/tests/lib/bench.sh"
bench_setup refactor "$build" git python3 qemu-system-x86_64 -- \
    hooks/memshare-hook hooks/memshare-hook-full bench/pagemap/bench-pagemap \
    tests/guest/vmlinuz tests/guest/initramfs.img
source "$top/tests/lib/qemu.sh"
trap 'qemu_stop_all; git -C "$top" worktree remove --force "$tmp/src" 2>/dev/null; _bench_cleanup' EXIT

log "building $old in $tmp/src"
git -C "$top" worktree add --detach "$tmp/src" "$old" > /dev/null 2>&1
meson setup "$tmp/src/b" "$tmp/src" > "$tmp/old-setup.log" 2>&1 ||
    meson setup --wipe "$tmp/src/b" "$tmp/src" > "$tmp/old-setup.log" 2>&1
ninja -C "$tmp/src/b" hooks/memshare-hook hooks/memshare-hook-full bench/pagemap/bench-pagemap > /dev/null

qemu_start g mem=2048 balloon=none noqmp kernel="$build/tests/guest/vmlinuz" \
    initrd="$build/tests/guest/initramfs.img" guest="ms.scenario=idle"
pid=$QEMU_PID
qemu_wait_console g MS-GUEST-READY 120 >&2 || exit 1
out=$tmp/raw
for r in $(seq "$rounds"); do
    for v in old new; do
        if [ $v = old ]; then b=$tmp/src/b; else b=$build; fi
        log "round $r: $v"
        bash "$top/bench/hook/bench-hook-exec.sh" "$b/hooks/memshare-hook" | sed "s/^/$v hook /" >> "$out"
        for hide in none linux-6.1; do
            # bench/pagemap/run-bench.sh finds the guest RAM mapping and runs
            # BUILD's bench-pagemap (the old build has the same layout)
            MEMSHARE_HIDE=${hide#none} bash "$top/bench/pagemap/run-bench.sh" "$b" 15 "$pid" |
                sed "s/^/$v pagemap-$hide /" >> "$out"
        done
    done
done

echo "Revisions: old $old, new $new (BUILDDIR $build); $rounds alternations;"
echo "each cell is the median over the rounds. $(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)."
echo
python3 - "$out" <<'PY'
import re, statistics, sys
vals = {}
def add(key, v, x):
    vals.setdefault(key, {}).setdefault(v, []).append(x)
sect = None
for line in open(sys.argv[1]):
    v, kind, rest = line.rstrip("\n").split(" ", 2)
    if kind == "hook":
        m = re.match(r"\| (hook[^|]*) \| [\d.]+ \| [\d.]+ \| ([\d.]+)x \|", rest)
        if m:
            add(f"{m.group(1)}: x /bin/true", v, float(m.group(2)))
        continue
    path = "PAGEMAP_SCAN kernel" if kind == "pagemap-none" else "6.1 fallback"
    if rest.startswith("== "):
        sect = "live 2 GiB guest" if "QEMU pid" in rest else ",".join(rest[3:].split(",")[:2])
        continue
    m = re.match(r"\s+(scan|read)\s+([\d.]+)\s", rest)
    if m and sect:
        add(f"classify, {sect}, {m.group(1)} ({path}): ms", v, float(m.group(2)))
print("| figure | old (min-max) | new (min-max) | new / old |")
print("|---|---|---|---|")
for k, d in vals.items():
    if "old" not in d or "new" not in d:
        continue
    o, n = statistics.median(d["old"]), statistics.median(d["new"])
    span = lambda x: f"{min(x):.3f}-{max(x):.3f}"
    print(f"| {k} | {o:.3f} ({span(d['old'])}) | {n:.3f} ({span(d['new'])}) | {n / o:.2f} |")
PY
