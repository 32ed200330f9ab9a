# tests/guest/scenarios/randread.sh: the guest side of the balloon benchmark
# (bench/balloon/run-bench.sh). Fills ms.fill= MiB (default 160) of tmpfs with
# identical pages (all 'A', as ksm-fill: KSM merges them across guests, which
# is the saving memshare hands back), then mounts the ext4 disk ms.dev=
# (default /dev/vda) read-only and runs its randread program over its data
# file: 4 KiB buffered reads at random offsets for ms.secs= s (default 600),
# one MS-RR line per ms.interval= s (default 5). The data file is larger than
# what the guest can cache at its base size, so throughput follows guest RAM.
#   MS-FILLED N, MS-MOUNTED DEV blk, MS-RR ..., MS-RR-DONE rc=N
#   (or MS-MOUNT-FAILED DEV why / MS-ERROR ...)
fill=$(ms_param ms.fill 160)
secs=$(ms_param ms.secs 600)
ival=$(ms_param ms.interval 5)
dev=$(ms_param ms.dev /dev/vda)
if [ "$fill" -gt 0 ]; then
    if dd if=/dev/zero bs=1M count="$fill" 2>/dev/null | tr '\0' 'A' > /dev/shm/fill; then
        echo "MS-FILLED $fill"
    else
        echo "MS-ERROR randread: could not fill $fill MiB"
    fi
fi
# the disk's driver may still be probing when the scenario starts
t=0
while [ ! -b "$dev" ] && [ "$t" -lt 30 ]; do sleep 1; t=$((t + 1)); done
mkdir -p /mnt/rr
# noload: a read-only mount must not depend on the journal's state
if mount -t ext4 -o ro,noload "$dev" /mnt/rr 2>/tmp/err; then
    echo "MS-MOUNTED $dev blk"
    echo "MS-MEMINFO $(grep -E '^(MemTotal|MemFree|Cached|Shmem):' /proc/meminfo | awk '{printf "%s %s ", $1, $2}')"
    if [ -x /mnt/rr/randread ] && [ -f /mnt/rr/data ]; then
        /mnt/rr/randread /mnt/rr/data "$secs" "$ival"
        echo "MS-RR-DONE rc=$?"
    else
        echo "MS-ERROR randread: $dev has no randread or data"
    fi
else
    echo "MS-MOUNT-FAILED $dev $(cat /tmp/err)"
fi
