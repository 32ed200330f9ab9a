#!/bin/bash
# bench/debian-usr/run-bench.sh: what one shared /usr image saves for real
# Debian 12 guests (systemd, tests/guest/debian), side by side in one run:
#   dax      N guests, each its own small root disk (a copy of root-dax.img,
#            /usr an empty mount point), /usr from ONE image built with
#            `memsharectl image build` from the guest's /usr, on
#            virtio-pmem over memory-backend-file share=on,readonly=on (the
#            agent's form, qmp-plugin/ms-images.c), mounted by the guest's
#            initramfs with dax=always (the guest was prepared with
#            `memsharectl image prepare-guest`)
#   private  the baseline, what a user has without memshare: N guests, each
#            its own copy of a normal root disk with /usr inside
#            (root-full.img), virtio-blk, QEMU's default cache (writeback)
# Guests (1 GiB, TCG, bare QEMU: libvirt cannot express the read-only
# shared backend, docs/images.md; the benchmark measures memory, not the
# attach) are started one after another; each boots to multi-user and runs
# the test guest's report (python3, jq, findmnt; report.sh), its freed
# memory goes back by free page reporting, and once host memory has
# settled the totals are taken with 1, 2, ... N guests. Measuring is
# bench/lib/hostmem.sh, shared with bench/density:
#   host memory = PSS of every QEMU without the image mapping and without
#   TCG's code buffer (KVM has none) + host page cache of the image and of
#   every disk file (fincore): the image's pages are counted once.
#   /usr+/lib per guest = the guest's page cache of /usr files (fincore in
#   the guest, MS-USR-CACHE) + the host page cache holding /usr: the blob
#   (dax) or the private disk (private, less the root disk's share, taken
#   as the dax guests' root-disk cache; /usr and /lib are one tree on
#   bookworm).
# Do not run for figures on a busy machine: the totals move with load.
#   usage: bash bench/debian-usr/run-bench.sh [BUILDDIR]   (default build-debian-usr)
#   env: MS_DEBIAN_BENCH_GUESTS (3), MS_DEBIAN_BENCH_MODES ("dax private"),
#        MS_DEBIAN_BENCH_SETTLE_MIN (15 s), MS_DEBIAN_BENCH_SETTLE_MAX (120 s),
#        MS_DEBIAN_BENCH_BOOT_WAIT (900 s per guest), MS_KEEP_TMP=1,
#        MS_DEBIAN_BENCH_OUT (default bench/debian-usr/RESULTS.part.md)
#   results: printed, and written to MS_DEBIAN_BENCH_OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build-debian-usr}
case "$build" in /*) ;; *) build=$top/$build ;; esac
guests=${MS_DEBIAN_BENCH_GUESTS:-3}
modes=${MS_DEBIAN_BENCH_MODES:-dax private}
boot_wait=${MS_DEBIAN_BENCH_BOOT_WAIT:-900}
outfile=${MS_DEBIAN_BENCH_OUT:-$here/RESULTS.part.md}
mem_mib=1024
source "$top/tests/lib/bench.sh"
bench_setup ms-debian-bench "$build" qemu-system-x86_64 fincore python3 -- tools/memsharectl tests/guest/debian/stamp
ctl=$build/tools/memsharectl
deb=$build/tests/guest/debian
source "$top/bench/lib/hostmem.sh"
HOSTMEM_IMAGE_DIR=$tmp HOSTMEM_RAM_MIB=$mem_mib
HOSTMEM_SETTLE_MIN=${MS_DEBIAN_BENCH_SETTLE_MIN:-15} HOSTMEM_SETTLE_MAX=${MS_DEBIAN_BENCH_SETTLE_MAX:-120}

export MEMSHARE_IMAGE_STORE=$tmp/store MEMSHARE_CONFIG=$tmp/none.conf
"$ctl" image build --usr --from "$deb/usr" --name debian12-usr > "$tmp/build.log" 2>&1 || {
    cat "$tmp/build.log" >&2; echo "run-bench: image build failed" >&2; exit 1; }
blob=$(ls "$tmp"/store/blobs/sha256-*.img)
blob_size=$(stat -c %s "$blob")
usr_mib=$(du -sm "$deb/usr" | cut -f1)
log "image: $usr_mib MiB /usr -> $((blob_size >> 20)) MiB blob"

# boot MODE I: starts guest I of MODE, echoes its pid. The guest hands
# freed pages back at order 0 and keeps its per-CPU lists short
# (docs/free-page-reporting.md), as bench/density's guests do.
boot() {
    local mode=$1 i=$2 dev=() append
    append="console=ttyS0 quiet root=LABEL=ms-root ro page_reporting.page_reporting_order=0 sysctl.vm.percpu_pagelist_high_fraction=100000"
    dev=(-drive "file=$tmp/$mode-root-$i.img,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0)
    if [ "$mode" = dax ]; then
        dev+=(-object "memory-backend-file,id=img0,mem-path=$blob,size=$blob_size,share=on,readonly=on"
              -device virtio-pmem-pci,memdev=img0,id=pmem0)
    fi
    # private: the guest without memshare, so debootstrap's own initramfs
    local initrd=$deb/initrd-stock.img
    [ "$mode" = dax ] && initrd=$deb/initrd.img
    qemu-system-x86_64 -name "debian-$mode-$i" -M q35,mem-merge=off -accel tcg -smp 1 \
        -m "${mem_mib}M,slots=2,maxmem=$((mem_mib * 4))M" \
        -nodefaults -no-user-config -display none \
        -kernel "$deb/vmlinuz" -initrd "$initrd" -append "$append" \
        -serial "file:$tmp/$mode-$i.console" \
        -device virtio-balloon-pci,id=balloon0,free-page-reporting=on \
        "${dev[@]}" > "$tmp/$mode-$i.qemu.log" 2>&1 &
    echo $!
}
console() { tr -d '\r' 2> /dev/null < "$tmp/$1.console"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A total ram other tcg cache_img cache_disk usr_guest imgmap
for mode in $modes; do
    case "$mode" in
        dax) src=$deb/root-dax.img ;;
        private) src=$deb/root-full.img ;;
        *) echo "run-bench: unknown mode '$mode' (dax, private)" >&2; exit 1 ;;
    esac
    disks=()
    for i in $(seq "$guests"); do
        cp --sparse=always "$src" "$tmp/$mode-root-$i.img"
        disks+=("$tmp/$mode-root-$i.img")
    done
    hostmem_drop_file_cache "${disks[@]}" "$blob"
    for i in $(seq "$guests"); do
        pids+=("$(boot "$mode" "$i")")
        for _ in $(seq "$boot_wait"); do
            console "$mode-$i" | grep -q "^MS-DEBIAN-DONE" && break
            kill -0 "${pids[-1]}" 2> /dev/null || break
            sleep 1
        done
        if ! console "$mode-$i" | grep -q "^MS-DEBIAN-DONE"; then
            console "$mode-$i" | tail -20 | sed 's/^/# /' >&2
            sed 's/^/# /' "$tmp/$mode-$i.qemu.log" >&2 || true
            echo "run-bench: guest $mode-$i did not finish its boot report" >&2; exit 1
        fi
        usrline=$(console "$mode-$i" | grep -m1 "^MS-USR " || true)
        if [ "$mode" = dax ] && ! grep -q "dax=always" <<< "$usrline"; then
            echo "run-bench: guest $mode-$i has no DAX /usr: $usrline" >&2; exit 1
        fi
        usr_guest[$mode,$i]=$(console "$mode-$i" | awk '/^MS-USR-CACHE/ {printf "%.1f", $2 / 1024; exit}')
        waited=$(hostmem_settle "${pids[@]}")
        read -r r t o img <<< "$(hostmem_measure "${pids[@]}")"
        cd_=$(hostmem_cache_mib "${disks[@]:0:$i}")
        ci=0.0
        [ "$mode" = dax ] && ci=$(hostmem_cache_mib "$blob")
        imgmap[$mode,$i]=$img ram[$mode,$i]=$r tcg[$mode,$i]=$t other[$mode,$i]=$o cache_disk[$mode,$i]=$cd_ cache_img[$mode,$i]=$ci
        total[$mode,$i]=$(awk -v a="$r" -v b="$o" -v c="$cd_" -v d="$ci" 'BEGIN { printf "%.1f", a + b + c + d }')
        log "$mode n=$i settled after ${waited}s: guest RAM PSS $r, QEMU other $o, TCG code $t (not counted), image mapped PSS $img, disk cache $cd_, image cache $ci, total ${total[$mode,$i]} MiB; guest /usr page cache ${usr_guest[$mode,$i]} MiB; ${usrline:-no MS-USR line}; load $(cut -d' ' -f1 /proc/loadavg)"
    done
    bench_stop_guests
    rm -f "${disks[@]}"
done

n=$guests
calc() { awk "BEGIN { printf \"%.1f\", $* }"; }
marg() { if [ "$n" -gt 1 ]; then calc "(($1) - ($2)) / ($n - 1)"; else echo "n/a"; fi; }
sum_usr() {  # sum_usr MODE K: guests 1..K's in-guest /usr page cache
    local s=0 j
    for j in $(seq "$2"); do s=$(calc "$s + ${usr_guest[$1,$j]:-0}"); done
    echo "$s"
}
# the root disk's own share of a private disk's host page cache: what a
# dax guest's root disk holds (same files but /usr)
root_share_n=0 root_share_1=0
if [[ " $modes " == *" dax "* ]]; then root_share_n=${cache_disk[dax,$n]} root_share_1=${cache_disk[dax,1]}; fi
declare -A usr_cost marg_total
table="| mode | host memory, $n guests (MiB) | per guest | **per extra guest** | **/usr+/lib per extra guest** | guest RAM PSS | QEMU other PSS | host page cache: disks | host page cache: image | image mapped by the QEMUs (PSS, not counted) | guest page cache of /usr (sum) | TCG code (not counted) |
|---|---|---|---|---|---|---|---|---|---|---|---|"
for mode in $modes; do
    u_n=$(sum_usr "$mode" "$n") u_1=$(sum_usr "$mode" 1)
    if [ "$mode" = dax ]; then
        usr_n="$u_n + ${cache_img[dax,$n]}" usr_1="$u_1 + ${cache_img[dax,1]}"
    else
        usr_n="$u_n + ${cache_disk[$mode,$n]} - $root_share_n" usr_1="$u_1 + ${cache_disk[$mode,1]} - $root_share_1"
    fi
    usr_cost[$mode]=$(marg "$usr_n" "$usr_1")
    marg_total[$mode]=$(marg "${total[$mode,$n]}" "${total[$mode,1]}")
    table+="
| $mode | ${total[$mode,$n]} | $(calc "${total[$mode,$n]} / $n") | **${marg_total[$mode]}** | **${usr_cost[$mode]}** | ${ram[$mode,$n]} | ${other[$mode,$n]} | ${cache_disk[$mode,$n]} | ${cache_img[$mode,$n]} | ${imgmap[$mode,$n]} | $u_n | ${tcg[$mode,$n]} |"
done
steps="| mode |$(for i in $(seq "$n"); do printf ' %s |' "$i"; done)
|---|$(for i in $(seq "$n"); do printf -- '---|'; done)"
for mode in $modes; do
    row="| $mode |"
    for i in $(seq "$n"); do row+=" ${total[$mode,$i]} |"; done
    steps+="
$row"
done
verdict="not computed (needs both modes and >= 2 guests)"
if [ "$n" -gt 1 ] && [ -n "${usr_cost[dax]:-}" ] && [ -n "${usr_cost[private]:-}" ]; then
    su=$(calc "(1 - ${usr_cost[dax]} / ${usr_cost[private]}) * 100")
    sw=$(calc "(1 - ${marg_total[dax]} / ${marg_total[private]}) * 100")
    mu=not; awk -v s="$su" 'BEGIN { exit !(s >= 90) }' && mu=""
    mw=not; awk -v s="$sw" 'BEGIN { exit !(s >= 20) }' && mw=""
    verdict="/usr+/lib cost **$su %** less host memory per extra guest with dax than as private copies (goal >= 90 %: **${mu:+$mu }met**); the whole guest **$sw %** less (goal >= 20 %, DCSS's -22.5 %: **${mw:+$mw }met**)"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
report=$(cat <<EOT
## Debian 12 guests with /usr on DAX: host memory per guest (bench/debian-usr/run-bench.sh)

Method: the Debian 12 test guest (tests/guest/debian: debootstrap bookworm minbase, systemd, python3, jq; kernel $(ls "$deb/usr/lib/modules" | head -1)), $n guests per mode, 1 GiB each, TCG, bare QEMU 7.2 (q35, mem-merge=off so host KSM plays no part, virtio-balloon free-page-reporting=on, guest page_reporting_order=0 and vm.percpu_pagelist_high_fraction=100000), started one after another, one mode after the other in this run.
**dax**: each guest its own root disk (/usr an empty mount point, $(($(stat -c %s "$deb/root-dax.img") >> 20)) MiB raw), /usr from one $((blob_size >> 20)) MiB image (\`memsharectl image build\` of the guest's $usr_mib MiB /usr) on virtio-pmem over memory-backend-file share=on,readonly=on, mounted by the initramfs with ro,dax=always (\`memsharectl image prepare-guest\`). **private**: the baseline without memshare, each guest its own copy of a normal root disk with /usr inside, virtio-blk, QEMU's default cache.
Each guest boots to multi-user and runs python3 (json, hashlib, sqlite3, email, http.client, decimal), jq and findmnt (tests/guest/debian/report.sh), then idles. After each guest, once host memory has settled: host memory = sum over QEMUs of PSS (smaps) without the image mapping and without TCG's code buffer + host page cache (fincore) of the disk files and the image, so the image's pages are counted once (the image's page cache is larger than what the guests map: the host reads around each fault on QEMU's mapping of the blob; it is clean, reclaimable cache, counted in full all the same). Per extra guest = (value with $n guests - value with 1) / $((n - 1)).
/usr+/lib = the guests' page cache of /usr files (fincore inside each guest) + the host page cache holding /usr: the image (dax), or the private disks less their root part (taken as the dax guests' root-disk cache). bookworm is merged-/usr: /lib is /usr/lib.

$table

Total host memory (MiB) with 1..$n guests running:

$steps

Goal: $verdict.

Run $(date -u '+%Y-%m-%d %H:%M UTC'); host kernel $(uname -r), $(nproc) CPUs, $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'); load average before $load_before, after $load_after.
EOT
)
echo "$report"
echo "$report" > "$outfile"
echo "run-bench: wrote $outfile" >&2
