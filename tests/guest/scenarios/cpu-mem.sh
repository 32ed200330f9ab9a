# cpu-mem: a CPU + memory loop for the slowdown benchmark: ms.rounds times
# (default 5) write ms.size MiB (default 64) into tmpfs and checksum it;
# prints the elapsed guest time of each round in ms.
n=$(ms_param ms.size 64)
r=$(ms_param ms.rounds 5)
i=0
while [ "$i" -lt "$r" ]; do
    t0=$(cut -d' ' -f1 /proc/uptime)
    dd if=/dev/zero of=/dev/shm/x bs=1M count="$n" 2>/dev/null
    md5sum /dev/shm/x >/dev/null
    rm -f /dev/shm/x
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo "MS-ROUND $i $(echo "$t0 $t1" | awk '{printf "%d", ($2 - $1) * 1000}')"
    i=$((i + 1))
done
