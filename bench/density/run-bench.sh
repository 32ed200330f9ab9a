#!/bin/bash
# bench/density/run-bench.sh: what DAX sharing of a read-only image saves in
# host memory. One image (python3, its stdlib and the libraries it loads,
# copied from the host, built with `memsharectl image build`) is given to
# guests four ways, one way after another in the same run:
#   none     the baseline: same guest, no disk, no python
#   private  each guest its own copy of the image (cp), virtio-blk, cache=writeback
#   blk      all guests the same blob, virtio-blk readonly=on
#   dax      all guests the same blob, virtio-pmem on memory-backend-file
#            share=on,readonly=on (the agent's form, ms-images.c), mount -o dax
# Per way the guests (1 GiB, TCG, bare QEMU, the test guest with
# ms.scenario=density) are started one after another; each runs python3
# from the image, its freed memory goes back to the host by free page
# reporting, and once host memory has settled the total is measured with
# 1, 2, ... N guests running. Then they are torn down.
# Host memory = sum over QEMUs of PSS without the image mapping (smaps) +
# the host page cache of the image file(s) (fincore). Counting the blob's
# mapped pages once, in the page cache, keeps DAX from being counted twice.
# TCG's translated-code buffer (100+ MiB per QEMU once python has run) is
# shown but not counted: a KVM host has no such thing.
# Guest RAM is not KSM-mergeable here (mem-merge=off), so the host's KSM,
# shared with other users of this machine, cannot blur the numbers.
#   usage: bash bench/density/run-bench.sh [BUILDDIR]   (default build-density)
#   env: MS_DENSITY_GUESTS (4), MS_DENSITY_MODES ("none private blk dax"),
#        MS_DENSITY_RUNS (python runs per guest, 3), MS_DENSITY_FPR_ORDER
#        (guest page_reporting_order, 0: scattered frees leave too, as
#        docs/free-page-reporting.md advises; empty: the kernel's 9),
#        MS_DENSITY_PCP_FRACTION (guest vm.percpu_pagelist_high_fraction,
#        100000; empty: the kernel's default), MS_KEEP_TMP=1 keeps the temp dir
#   results: printed, and written to bench/density/RESULTS.part.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build-density}
case "$build" in /*) ;; *) build=$top/$build ;; esac
guests=${MS_DENSITY_GUESTS:-4}
modes=${MS_DENSITY_MODES:-none private blk dax}
runs=${MS_DENSITY_RUNS:-3}
order=${MS_DENSITY_FPR_ORDER-0}
# Freed pages wait on the guest's per-CPU lists, where free page reporting
# never sees them: 13-15 MiB per guest after the python runs (6.1 guest,
# default lists), the whole of what dax seemed to cost. 100000 shrinks the
# lists to their floor (4 batches per CPU); docs/free-page-reporting.md.
pcpf=${MS_DENSITY_PCP_FRACTION-100000}
mem_mib=1024
source "$top/tests/lib/bench.sh"
bench_setup ms-density "$build" qemu-system-x86_64 fincore python3 \
    -- tools/memsharectl tests/guest/vmlinuz tests/guest/initramfs.img
ctl=$build/tools/memsharectl
kernel=$build/tests/guest/vmlinuz
initrd=$build/tests/guest/initramfs.img

# 1. The tree: python3 + stdlib + every library python3 and its extension
# modules load (ldd), the dynamic loader, /usr-merged like Debian 12.
tree=$tmp/tree
mkdir -p "$tree/usr/bin" "$tree/usr/lib/x86_64-linux-gnu" "$tree/usr/lib64" "$tree/tmp" "$tree/dev" "$tree/proc"
ln -s usr/lib "$tree/lib"
ln -s usr/lib64 "$tree/lib64"
cp -a /usr/bin/python3 /usr/bin/python3.11 "$tree/usr/bin/"
cp -a /usr/lib/python3.11 "$tree/usr/lib/"
for f in /usr/bin/python3.11 /usr/lib/python3.11/lib-dynload/*.so; do
    ldd "$f" 2> /dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u | while read -r so; do
    real=$(readlink -f "$so")
    case "$so" in
        /lib64/*|/usr/lib64/*) dst=$tree/usr/lib64 ;;
        *) dst=$tree/usr/lib/x86_64-linux-gnu ;;
    esac
    cp -L "$real" "$dst/$(basename "$so")"
done
tree_mib=$(du -sm "$tree" | cut -f1)
export MEMSHARE_IMAGE_STORE=$tmp/store MEMSHARE_CONFIG=$tmp/none.conf
"$ctl" image build --from "$tree" --name density > "$tmp/build.log" 2>&1 || {
    cat "$tmp/build.log" >&2; echo "run-bench: image build failed" >&2; exit 1; }
blob=$(ls "$tmp"/store/blobs/sha256-*.img)
blob_size=$(stat -c %s "$blob")
log "image: $tree_mib MiB tree -> $((blob_size >> 20)) MiB blob $blob"

# boot MODE I: starts guest I of MODE, echoes its pid
boot() {
    local mode=$1 i=$2 dev=() append
    append="console=ttyS0 quiet ms.scenario=density ms.runs=$runs${order:+ ms.fpr_order=$order}${pcpf:+ ms.pcp_fraction=$pcpf}"
    case "$mode" in
        none) append="$append ms.nodisk=1" ;;
        private) dev=(-drive "file=$tmp/private-$i.img,if=none,id=d0,format=raw,cache=writeback"
                      -device virtio-blk-pci,drive=d0) ;;
        blk) dev=(-drive "file=$blob,if=none,id=d0,format=raw,readonly=on"
                  -device virtio-blk-pci,drive=d0) ;;
        dax) dev=(-object "memory-backend-file,id=img0,mem-path=$blob,size=$blob_size,share=on,readonly=on"
                  -device virtio-pmem-pci,memdev=img0,id=pmem0) ;;
    esac
    qemu-system-x86_64 -name "density-$mode-$i" -M q35,mem-merge=off -accel tcg -smp 1 \
        -m "${mem_mib}M,slots=2,maxmem=$((mem_mib * 4))M" \
        -nodefaults -no-user-config -display none \
        -kernel "$kernel" -initrd "$initrd" -append "$append" \
        -serial "file:$tmp/$mode-$i.console" \
        -device virtio-balloon-pci,id=balloon0,free-page-reporting=on \
        "${dev[@]}" > "$tmp/$mode-$i.qemu.log" 2>&1 &
    echo $!
}

# Host memory is counted by bench/lib/hostmem.sh (shared with
# bench/debian-usr): guest RAM, TCG code, QEMU other, image mappings (PSS),
# and the image files' page cache.
source "$top/bench/lib/hostmem.sh"
HOSTMEM_IMAGE_DIR=$tmp HOSTMEM_RAM_MIB=$mem_mib
measure() { hostmem_measure "$@"; }
cache_mib() { hostmem_cache_mib "$@"; }
settle() { hostmem_settle "$@"; }
drop_file_cache() { hostmem_drop_file_cache "$@"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A total anonm imgcache tcgm otherm guestmem
rows=""
for mode in $modes; do
    files=()
    case "$mode" in
        private)
            for i in $(seq "$guests"); do
                cp "$blob" "$tmp/private-$i.img"; chmod 0644 "$tmp/private-$i.img"
                files+=("$tmp/private-$i.img")
            done ;;
        blk|dax) files=("$blob") ;;
    esac
    [ "${#files[@]}" -gt 0 ] && drop_file_cache "${files[@]}"
    for i in $(seq "$guests"); do
        pids+=("$(boot "$mode" "$i")")
        con=$tmp/$mode-$i.console
        for _ in $(seq 600); do
            grep -q "MS-DENSITY-DONE" "$con" 2> /dev/null && break
            kill -0 "${pids[-1]}" 2> /dev/null || break
            sleep 1
        done
        if ! grep -q "MS-DENSITY-DONE" "$con" 2> /dev/null; then
            sed 's/^/# /' "$tmp/$mode-$i.qemu.log" "$con" >&2 || true
            echo "run-bench: guest $mode-$i did not finish" >&2; exit 1
        fi
        if grep -q "MS-DENSITY-FAILED" "$con"; then
            grep "MS-DENSITY-FAILED" "$con" >&2
            echo "run-bench: guest $mode-$i failed" >&2; exit 1
        fi
        waited=$(settle "${pids[@]}")
        read -r anon tcg other image <<< "$(measure "${pids[@]}")"
        cache=0.0
        [ "${#files[@]}" -gt 0 ] && cache=$(cache_mib "${files[@]}")
        tot=$(awk -v a="$anon" -v o="$other" -v c="$cache" 'BEGIN { printf "%.1f", a + o + c }')
        total[$mode,$i]=$tot anonm[$mode,$i]=$anon imgcache[$mode,$i]=$cache tcgm[$mode,$i]=$tcg otherm[$mode,$i]=$other
        runout=$(grep -m1 "MS-DENSITY-RUN" "$con" | tr -d '\r' | cut -c1-80 || true)
        meminfo=$(grep -m1 "MS-MEMINFO" "$con" | tr -d '\r' | cut -d' ' -f2- || true)
        log "$mode n=$i settled after ${waited}s: guest RAM PSS $anon MiB, TCG code $tcg MiB (not counted), QEMU other PSS $other, image mapped PSS $image, image page cache $cache MiB, total $tot MiB; load $(cut -d' ' -f1 /proc/loadavg)"
        log "  $mode-$i: ${runout:-no run line}; guest $meminfo"
        guestmem[$mode]=$(awk '{ for (i = 1; i < NF; i += 2) printf "%s %.1f | ", "", $(i + 1) / 1024 }' <<< "$meminfo" | sed 's/^ *//')
    done
    bench_stop_guests
    rm -f "$tmp"/private-*.img
done

# The table. marginal = (X(N) - X(1)) / (N - 1): what one more guest costs.
# "files" = marginal of guest RAM + image page cache minus the baseline's
# marginal guest RAM: what reading and running the image costs per extra
# guest. QEMU's own memory is left out of "files": under TCG its heap grows
# with the code translated (TB hash tables, per-thread arenas), which
# python does and the baseline does not, an emulation artifact KVM lacks;
# it stays in the totals.
n=$guests
calc() { awk "BEGIN { printf \"%.1f\", $* }"; }
calc2() { awk "BEGIN { printf \"%.2f\", $* }"; }
# both arguments may be sums: parenthesise them
marg() { calc "(($1) - ($2)) / ($n - 1)"; }
base_marg=""
if [[ " $modes " == *" none "* ]] && [ "$n" -gt 1 ]; then
    base_marg=$(marg "${anonm[none,$n]}" "${anonm[none,1]}")
fi
table="| mode | host memory, $n guests (MiB) | per guest | marginal per extra guest | marginal guest RAM + image cache | **files** (that - baseline RAM) | guest RAM PSS, $n guests | image page cache | QEMU other PSS | TCG code (not counted) |
|---|---|---|---|---|---|---|---|---|---|"
declare -A filesm
for mode in $modes; do
    t=${total[$mode,$n]}
    per=$(calc "$t / $n")
    marg_t=n/a marg_f=n/a fm=n/a
    if [ "$n" -gt 1 ]; then
        marg_t=$(marg "$t" "${total[$mode,1]}")
        marg_f=$(marg "${anonm[$mode,$n]} + ${imgcache[$mode,$n]}" "${anonm[$mode,1]} + ${imgcache[$mode,1]}")
    fi
    if [ -n "$base_marg" ] && [ "$mode" != none ]; then fm=$(calc "$marg_f - $base_marg"); filesm[$mode]=$fm; fi
    table+="
| $mode | $t | $per | $marg_t | $marg_f | **$fm** | ${anonm[$mode,$n]} | ${imgcache[$mode,$n]} | ${otherm[$mode,$n]} | ${tcgm[$mode,$n]} |"
done
steps="| mode | 1 | 2 | 3 | 4 |
|---|---|---|---|---|"
[ "$n" = 4 ] || steps="| mode |$(seq -s ' |' 1 "$n") |
|$(printf -- '---|%.0s' $(seq 0 "$n"))"
for mode in $modes; do
    row="| $mode |"
    for i in $(seq "$n"); do row+=" ${total[$mode,$i]} |"; done
    steps+="
$row"
done
verdict="not computed (needs the private and dax modes, the baseline and >= 2 guests)"
ratios=""
if [ -n "${filesm[private]:-}" ] && [ -n "${filesm[dax]:-}" ]; then
    rd=$(calc2 "${filesm[dax]} / ${filesm[private]}")
    ratios="dax/private = **$rd**"
    if [ -n "${filesm[blk]:-}" ]; then ratios+=", blk/private = **$(calc2 "${filesm[blk]} / ${filesm[private]}")**"; fi
    saved=$(calc "(1 - $rd) * 100")
    if awk -v r="$rd" 'BEGIN { exit !(r <= 0.10) }'; then
        verdict="**met**: the shared files cost $saved % less per extra guest with dax than as private copies"
    else
        verdict="**not met**: the shared files cost $saved % less per extra guest with dax than as private copies"
    fi
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
report=$(cat <<EOT
## Shared images: host memory per guest (bench/density/run-bench.sh)

Method: one image ($tree_mib MiB tree: python3, /usr/lib/python3.11 and the libraries ldd lists; $((blob_size >> 20)) MiB blob from \`memsharectl image build\`) and $n TCG guests of $mem_mib MiB (bare QEMU 7.2, q35, mem-merge=off so host KSM plays no part, virtio-balloon free-page-reporting=on, guest page_reporting_order=${order:-9 (default)}, vm.percpu_pagelist_high_fraction=${pcpf:-0 (default)}), started one after another, one mode after another in this run.
Each guest mounts the image read-only (dax: virtio-pmem on memory-backend-file share=on,readonly=on, \`mount -o ro,dax=always\`; blk: virtio-blk readonly=on on the one blob; private: virtio-blk on its own \`cp\` of the blob, cache=writeback) and runs python3 from it $runs times (json, email, http.client, sqlite3, decimal, hashlib; a small computation); no drop_caches, freed memory goes back by free page reporting. "none" is the baseline guest without a disk.
After each guest has finished and host memory has settled: host memory = sum over QEMUs of PSS (smaps) without the image mapping and without TCG's code buffer (KVM has none) + host page cache of the image file(s) (fincore); the blob's DAX-mapped pages are counted once, in the page cache.
Marginal = (value with $n guests - value with 1) / $((n - 1)). **files** = marginal (guest RAM PSS + image page cache) - the baseline's marginal guest RAM: what reading and running the image costs per extra guest. QEMU's own PSS is in the totals but not in "files": under TCG it grows with the code translated (python runs, the baseline does not), which KVM does not have.

$table

Inside guest $n of each mode after its runs (MiB, from its /proc/meminfo):

| mode | MemFree | Buffers | Cached | AnonPages | Shmem | Slab | SUnreclaim | KernelStack | PageTables | VmallocUsed | Percpu |
|---|---|---|---|---|---|---|---|---|---|---|---|
$(for m in $modes; do echo "| $m | ${guestmem[$m]:-}"; done)

Total host memory (MiB) with 1..$n guests running:

$steps

Ratio of the files' marginal cost per extra guest: $ratios.
Goal (dax files cost >= 90 % less per extra guest than private copies): $verdict.

Run $(date -u '+%Y-%m-%d %H:%M UTC'); host kernel $(uname -r), $(nproc) CPUs, $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'); load average before $load_before, after $load_after (other engineers' guests share this machine).
EOT
)
echo "$report"
echo "$report" > "$here/RESULTS.part.md"
echo "run-bench: wrote $here/RESULTS.part.md" >&2
