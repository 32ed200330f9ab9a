# tests/guest/scenarios/density.sh: the guest side of bench/density. Waits
# (ms.wait= seconds, default 30) for the one image the benchmark gives the
# guest, mounts it read-only (/dev/pmem0 with dax=always, else /dev/vda as a
# plain read-only ext4) at /mnt/img, runs python3 FROM THE IMAGE (chroot:
# the image carries python3, its stdlib and the libraries ld.so needs)
# ms.runs= times (default 3; /dev and /proc of the guest mounted on the
# image's empty dev/ and proc/), and then leaves the guest alone: the python
# processes have exited, their memory is free, and free page reporting
# (virtio-balloon free-page-reporting=on) hands it back to the host. No
# drop_caches: what the guest keeps in its page cache is what a real guest
# keeps, and that is the cost DAX is meant to remove.
# ms.fpr_order=N lowers the reporting order at run time (Debian 12's 6.1
# kernel overwrites the boot parameter; docs/free-page-reporting.md).
# ms.nodisk=1: no image expected (the benchmark's baseline guest).
# ms.compact=1 compacts guest memory after the runs.
# ms.buddy_after=S prints the free lists again S seconds later (MS-BUDDY).
#   MS-FPR-ORDER N, MS-DENSITY-MOUNTED DEV dax|blk, MS-DENSITY-RUN i OUT,
#   MS-DENSITY-FAILED why, MS-DENSITY-DONE, MS-MEMINFO ...
o=$(ms_param ms.fpr_order '')
[ -n "$o" ] && echo "$o" > /sys/module/page_reporting/parameters/page_reporting_order
echo "MS-FPR-ORDER $(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null || echo none)"
# ms.pcp_fraction=N sets vm.percpu_pagelist_high_fraction: how much freed
# memory may wait on the per-CPU lists, where reporting never sees it.
f=$(ms_param ms.pcp_fraction '')
[ -n "$f" ] && echo "$f" > /proc/sys/vm/percpu_pagelist_high_fraction
echo "MS-PCP-FRACTION $(cat /proc/sys/vm/percpu_pagelist_high_fraction)"

print_buddy() {
    echo "MS-BUDDY $(awk '{printf "%s:", $4; for (i = 5; i <= NF; i++) printf " %s", $i; printf "; "}' /proc/buddyinfo)"
}
# The fields come in /proc/meminfo's order; bench/density's table relies on it.
print_meminfo() {
    echo "MS-MEMINFO $(grep -E '^(MemFree|Cached|Buffers|AnonPages|Slab|SUnreclaim|KernelStack|PageTables|VmallocUsed|Percpu|Shmem):' /proc/meminfo | awk '{printf "%s %s ", $1, $2}')"
}

density_run() {
    wait=$(ms_param ms.wait 30)
    runs=$(ms_param ms.runs 3)
    if [ "$(ms_param ms.nodisk 0)" = 1 ]; then
        echo "MS-DENSITY-MOUNTED none none"
        return 0
    fi
    dev="" t=0
    while [ "$t" -lt "$wait" ]; do
        for d in /dev/pmem0 /dev/vda; do
            [ -b "$d" ] && { dev=$d; break; }
        done
        [ -n "$dev" ] && break
        sleep 1; t=$((t + 1))
    done
    [ -n "$dev" ] || { echo "MS-DENSITY-FAILED no /dev/pmem0 or /dev/vda after ${wait} s"; return 1; }
    case "$dev" in
        /dev/pmem*) opts=ro,dax=always mode=dax ;;
        *) opts=ro mode=blk ;;
    esac
    mkdir -p /mnt/img
    if ! err=$(mount -t ext4 -o "$opts" "$dev" /mnt/img 2>&1); then
        echo "MS-DENSITY-FAILED mount $dev: $(echo "$err" | tr '\n' ' ')"
        return 1
    fi
    echo "MS-DENSITY-MOUNTED $dev $mode $(grep ' /mnt/img ' /proc/mounts | cut -d' ' -f4)"
    # python3 seeds its hash from getrandom(), which this early in a TCG
    # guest without an entropy source would block: it falls back to
    # /dev/urandom, so the chroot needs /dev (the image has the directory).
    [ -d /mnt/img/dev ] && mount -t devtmpfs dev /mnt/img/dev
    [ -d /mnt/img/proc ] && mount -t proc proc /mnt/img/proc
    # The workload: the stdlib modules a small service loads, plus enough
    # work that their code really runs (sqlite, decimal, json, email).
    prog='
import json, email, email.message, http.client, sqlite3, decimal, hashlib, re
db = sqlite3.connect(":memory:")
db.execute("create table t (k integer, v text)")
db.executemany("insert into t values (?, ?)", [(i, str(i * i)) for i in range(2000)])
s = db.execute("select sum(k), count(*) from t where v like \"%1%\"").fetchone()
decimal.getcontext().prec = 40
d = sum(decimal.Decimal(1) / decimal.Decimal(i) for i in range(1, 500))
m = email.message.EmailMessage(); m["Subject"] = "density"; m.set_content(json.dumps({"s": s}))
h = hashlib.sha256(m.as_bytes() + str(d).encode()).hexdigest()[:16]
print(s[1], str(d)[:12], h, len(http.client.responses), bool(re.match("d", "density")))
'
    i=1
    while [ "$i" -le "$runs" ]; do
        out=$(chroot /mnt/img /usr/bin/python3 -c "$prog" 2>&1 | tail -n 3 | tr '\n' ' ')
        echo "MS-DENSITY-RUN $i $out"
        i=$((i + 1))
    done
    return 0
}
density_run
# Compaction merges the free pages python left scattered into blocks of
# page_reporting_order; proactive compaction (vm.compaction_proactiveness)
# does the same in the background on a long-running guest.
if [ "$(ms_param ms.compact 0)" = 1 ]; then
    echo 1 > /proc/sys/vm/compact_memory
    echo "MS-COMPACTED"
fi
echo "MS-DENSITY-DONE"
print_buddy
print_meminfo
# Free pages on the per-CPU lists are not in MemFree (nor reported to the
# host until they drain to the buddy lists): print them beside it.
echo "MS-PCP $(awk '$1 == "count:" { s += $2 } END { print s * 4 }' /proc/zoneinfo) kB"
b=$(ms_param ms.buddy_after 0)
if [ "$b" -gt 0 ] 2>/dev/null; then
    sleep "$b"
    print_buddy
    print_meminfo
fi
