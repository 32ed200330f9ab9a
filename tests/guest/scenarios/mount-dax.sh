# tests/guest/scenarios/mount-dax.sh: mounts every shared image the guest
# sees read-only: /dev/pmem* with dax=always at /mnt/pmemN, /dev/vd* (the
# read-only virtio-blk fallback) at /mnt/vdX. Then runs
# /mnt/*/bin/ms-hello if an image carries one. Retries for ms.wait=
# seconds (default 10) because a hot-plugged device can appear late.
#   MS-MOUNTED DEV dax|blk, MS-MOUNT-FAILED DEV REASON, MS-HELLO OUTPUT
wait=$(ms_param ms.wait 10)
mounted=" "
i=0
while :; do
    for dev in /dev/pmem* /dev/vd*; do
        [ -b "$dev" ] || continue
        case "$mounted" in *" $dev "*) continue ;; esac
        name=${dev#/dev/}
        mkdir -p "/mnt/$name"
        case "$name" in
            pmem*) opts=ro,dax=always kind=dax ;;
            *) opts=ro kind=blk ;;
        esac
        if err=$(mount -t ext4 -o "$opts" "$dev" "/mnt/$name" 2>&1); then
            echo "MS-MOUNTED $dev $kind"
            for h in "/mnt/$name/bin/ms-hello" "/mnt/$name/ms-hello"; do
                [ -x "$h" ] && echo "MS-HELLO $("$h" 2>&1 | head -c 200 | tr '\n' ' ')"
            done
        else
            echo "MS-MOUNT-FAILED $dev $(echo "$err" | tr '\n' ' ')"
        fi
        mounted="$mounted$dev "
    done
    [ "$mounted" != " " ] && break
    i=$((i + 1))
    [ "$i" -ge "$wait" ] && { echo "MS-MOUNT-FAILED none no /dev/pmem* or /dev/vd* after ${wait} s"; break; }
    sleep 1
done
