# tests/tracking/scenarios/track-read-zero.sh: reads ms.size= MiB (default
# 64) of a sparse tmpfs file: the guest kernel serves holes from its own
# zero page, so guest RAM is not touched (a control: 'used' must not rise by
# the size read). Sleeps ms.pre= seconds first (default 10).
#   MS-READING, MS-READ-ZERO N on the console
size=$(ms_param ms.size 64)
sleep "$(ms_param ms.pre 10)"
echo "MS-READING"
truncate -s "${size}M" /dev/shm/sparse
cat /dev/shm/sparse > /dev/null
echo "MS-READ-ZERO $size"
