# tests/guest/scenarios/touch-free.sh: touches ms.size= MiB (default 64) of
# guest RAM with data the kernel cannot dedupe or skip (urandom into a
# tmpfs file: every page really allocated), holds it ms.hold= seconds
# (default 20), frees it, then returns (init idles).
#   MS-TOUCHED N / MS-FREED N on the console
size=$(ms_param ms.size 64)
hold=$(ms_param ms.hold 20)
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
