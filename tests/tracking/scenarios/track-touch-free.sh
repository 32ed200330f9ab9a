# tests/tracking/scenarios/track-touch-free.sh: touch-free with a quiet
# phase first, so the host can read a baseline: sleeps ms.pre= seconds
# (default 10), prints MS-TOUCHING, then runs touch-free (ms.size, ms.hold).
# With ms.compact=1 it then compacts guest memory (drains the per-CPU free
# lists and merges free pages into 2 MiB blocks that free page reporting at
# its default order 9 can report; docs/free-page-reporting.md).
#   MS-FPR-ORDER N, MS-TOUCHING, MS-TOUCHED N, MS-FREED N, MS-COMPACTED
# ms.fpr_order=N sets the reporting order at run time: Debian 12's 6.1
# kernel overwrites page_reporting.page_reporting_order= from the command
# line when virtio_balloon registers (upstream respects it since 6.4ish).
o=$(ms_param ms.fpr_order '')
[ -n "$o" ] && echo "$o" > /sys/module/page_reporting/parameters/page_reporting_order
echo "MS-FPR-ORDER $(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null || echo none)"
sleep "$(ms_param ms.pre 10)"
echo "MS-TOUCHING"
. /scenarios/touch-free.sh
if [ "$(ms_param ms.compact 0)" = 1 ]; then
    echo 1 > /proc/sys/vm/compact_memory
    echo "MS-COMPACTED"
fi
