# tests/guest/scenarios/touch-free.sh: touches ms.size= MiB (default 64) of
# guest RAM with data the kernel cannot dedupe or skip (urandom into a
# tmpfs file: every page really allocated), holds it ms.hold= seconds
# (default 20), frees it, then touches ms.keep= MiB (default 0) the same way
# and keeps it (a guest with that much in use after a burst: what
# bench/migration migrates), then returns (init idles).
#   MS-TOUCHED N / MS-FREED N [/ MS-KEPT K] on the console
size=$(ms_param ms.size 64)
hold=$(ms_param ms.hold 20)
keep=$(ms_param ms.keep 0)
if dd if=/dev/urandom of=/dev/shm/blob bs=1M count="$size" 2>/dev/null; then
    echo "MS-TOUCHED $size"
else
    echo "MS-ERROR touch-free: could not allocate $size MiB"
fi
sleep "$hold"
rm -f /dev/shm/blob
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
echo "MS-FREED $size"
if [ "$keep" -gt 0 ]; then
    if dd if=/dev/urandom of=/dev/shm/kept bs=1M count="$keep" 2>/dev/null; then
        echo "MS-KEPT $keep"
    else
        echo "MS-ERROR touch-free: could not keep $keep MiB"
    fi
fi
