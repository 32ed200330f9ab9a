# mount-shared: waits (ms.wait seconds, default 90) for the shared images
# the agent hot-plugs: /dev/pmemN are mounted ro with DAX, /dev/vdX read-only
# (blk). For each it prints MS-MOUNTED DEV MODE, runs bin/ms-hello from the
# image if present (MS-HELLO ...), then tries to write through the raw
# device, which must not reach the host's file (MS-RAW-WRITE DEV rc=N).
want=$(ms_param ms.expect 1)
wait=$(ms_param ms.wait 90)
t=0
while [ "$t" -lt "$wait" ]; do
    n=$(ls /dev/pmem* /dev/vd* 2>/dev/null | grep -c .)
    [ "$n" -ge "$want" ] && break
    sleep 1; t=$((t + 1))
done
for dev in /dev/pmem[0-9] /dev/vd[a-z]; do
    [ -b "$dev" ] || continue
    mnt=/mnt/${dev##*/}
    mkdir -p "$mnt"
    case "$dev" in
        /dev/pmem*) opts=ro,dax=always; mode=dax ;;
        *) opts=ro; mode=blk ;;
    esac
    if mount -t ext4 -o "$opts" "$dev" "$mnt" 2>/tmp/err; then
        echo "MS-MOUNTED $dev $mode $(grep " $mnt " /proc/mounts | cut -d' ' -f4)"
    else
        echo "MS-MOUNT-FAILED $dev $(cat /tmp/err)"
        continue
    fi
    [ -x "$mnt/bin/ms-hello" ] && echo "MS-HELLO $dev $("$mnt/bin/ms-hello")"
    if [ -f "$mnt/data/blob" ]; then
        echo "MS-READ $dev $(md5sum < "$mnt/data/blob" | cut -d' ' -f1)"
    fi
    if [ "$(ms_param ms.rawwrite 0)" = 1 ]; then
        dd if=/dev/urandom of="$dev" bs=4096 seek=64 count=16 conv=notrunc,fsync 2>/dev/null
        echo "MS-RAW-WRITE $dev rc=$?"
    fi
done
echo "MS-MEMINFO $(grep -E '^(MemFree|Cached):' /proc/meminfo | awk '{printf "%s %s ", $1, $2}')"
