#!/bin/bash
# bench/migration/run-bench.sh: what free page reporting and virtio-balloon
# free-page-hint do to a live migration, side by side in one run, between
# the two test hosts of tests/lib/vmenv.sh (vmenv_pair_*: two isolated
# libvirtds in their own network namespaces, a veth between them, TCG):
#   (a) plain precopy, balloon without free page reporting
#   (b) free page reporting (freePageReporting='on')
#   (c) free page reporting + free-page-hint (libvirt 9.0: <qemu:override>
#       of the balloon device, with the iothread the hint needs)
# Each variant boots the same guest fresh on host a, lets it run the same
# workload (default: touch-free, 1200 MiB of random data written then
# freed, so the guest ends with its baseline in use and the rest freed),
# waits for memshare's tracking to settle, records memshare's estimate
# (tracking.used/zero/unpopulated from the status file: what QEMU must
# send in full vs as zero-page markers) and then migrates a -> b, reading
# QEMU's own figures from `virsh domjobinfo --completed` (memory
# processed, normal vs constant pages, time, downtime). Prints one markdown
# table (the figures libvirt 9.0's domjobinfo prints, as printed).
#   usage: bash bench/migration/run-bench.sh [BUILDDIR] [--smoke]   (BUILDDIR: default build)
#   --smoke: 384 MiB guest, 128 MiB touched: checks the script, no figures
#   env: MS_BENCH_MEM_MIB (2048), MS_BENCH_TOUCH_MIB (1200), MS_BENCH_KEEP_MIB
#   (200: kept in use after the burst, the issue's "200 MiB in use"),
#   MS_BENCH_SETTLE (30 s), MS_BENCH_LINKS ("0 112": each variant on each
#   link, MiB/s given to `virsh migrate --bandwidth`; 0 = libvirt's default,
#   unlimited, here a veth; 112 = what a 1 GbE link carries, the link a
#   migration network often is)
# Not part of the tests; needs an idle machine (the lead runs benchmarks).
set -uo pipefail
cd "$(dirname "$0")/../.."
# either order: `run-bench.sh --smoke` alone used to take "--smoke" for the
# build directory and stop at "missing --smoke/tests/guest/vmlinuz"
build=build mode=
for arg in "$@"; do
    case $arg in
        --smoke) mode=$arg ;;
        -*) echo "usage: $0 [BUILDDIR] [--smoke]" >&2; exit 2 ;;
        *) build=$arg ;;
    esac
done
source tests/lib/libvirt-test.sh
mem=${MS_BENCH_MEM_MIB:-2048}
touch=${MS_BENCH_TOUCH_MIB:-1200}
keep=${MS_BENCH_KEEP_MIB:-200}
settle=${MS_BENCH_SETTLE:-30}
links=${MS_BENCH_LINKS:-0 112}
if [ "$mode" = --smoke ]; then mem=384; touch=128; keep=32; settle=10; links=${MS_BENCH_LINKS:-0}; fi
export MS_GUEST_KERNEL=$PWD/$build/tests/guest/vmlinuz MS_GUEST_INITRD=$PWD/$build/tests/guest/initramfs.img
hook=$PWD/$build/hooks/memshare-hook agent=$PWD/$build/qmp-plugin/memshare-agent ctl=$PWD/$build/tools/memsharectl
for f in "$MS_GUEST_KERNEL" "$MS_GUEST_INITRD" "$hook" "$agent" "$ctl"; do
    [ -e "$f" ] || { echo "missing $f (ninja -C $build first)" >&2; exit 1; }
done

MS_HOOK=$hook MS_AGENT=$agent lvt_pair_setup ms-bench-mig
top=$dir
policy="<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='2s'/><memshare:stats period='2s'/></memshare:policy>"
export MS_GUEST_CMDLINE="ms.size=$touch ms.hold=5 ms.keep=$keep"
# the marker of the workload's end
done_marker=MS-FREED; [ "$keep" -gt 0 ] && done_marker=MS-KEPT

# domain VARIANT UUID: the XML of one variant
domain() {
    local v=$1 u=$2
    case $v in
        a) MS_DOMAIN_BALLOON=nofpr domain_xml "mig-$v" "$u" "$mem" "$mem" touch-free \
               "/var/log/libvirt/qemu/mig-$v.serial" "$policy" ;;
        b) domain_xml "mig-$v" "$u" "$mem" "$mem" touch-free "/var/log/libvirt/qemu/mig-$v.serial" "$policy" ;;
        c) # free-page-hint: memsharectl policy set --config writes it (the
           # <qemu:override> of the balloon and the iothread QEMU needs),
           # as a user gets it from <memshare:migration free-page-hint='on'/>
           domain_xml "mig-$v" "$u" "$mem" "$mem" touch-free "/var/log/libvirt/qemu/mig-$v.serial" "$policy" ;;
    esac
}
status_val() { sed -n "s/^$2=//p" "$top/a/run-memshare/domains/$1/status" 2>/dev/null | head -n1; }
job_val() { # FIELD: from domjobinfo --completed on b (the incoming side)
    sed -n "s/^$1: *//p" <<< "$job" | head -n1; }
mib() { awk -v b="${1:-0}" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# "206.807 MiB" (virsh's units) -> MiB
to_mib() { awk '{ f = $2 == "GiB" ? 1024 : $2 == "KiB" ? 1 / 1024 : $2 == "B" ? 1 / 1048576 : 1; printf "%.1f", $1 * f }' <<< "$1"; }
declare -A used_mib sent_mib time_ms rows
link_name() { [ "$1" = 0 ] && echo "unlimited (veth)" || echo "$1 MiB/s"; }

for link in $links; do
for v in a b c; do
    u=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5fa$v
    bw=(); [ "$link" = 0 ] || bw=(--bandwidth "$link")
    domain "$v" "$u" > "$top/mig-$v.xml"
    V a define "$top/mig-$v.xml" >/dev/null || { echo "define mig-$v failed" >&2; exit 1; }
    if [ "$v" = c ]; then
        sed "s|</memshare:policy>|<memshare:migration free-page-hint='on'/></memshare:policy>|" <<< "$policy" > "$top/fph.xml"
        vmenv_on a vmenv_exec "$ctl" -c qemu:///system policy set "mig-$v" "$top/fph.xml" --config >&2 ||
            { echo "memsharectl policy set mig-$v (free-page-hint) failed" >&2; exit 1; }
    fi
    V a start "mig-$v" >/dev/null || { echo "start mig-$v failed" >&2; exit 1; }
    ser=$top/a/log-libvirt/qemu/mig-$v.serial
    for i in $(seq 600); do grep -q "^$done_marker" "$ser" 2>/dev/null && break; sleep 1; done
    grep -q "^$done_marker" "$ser" || { echo "mig-$v: the guest did not finish its workload ($done_marker)" >&2; exit 1; }
    sleep "$settle"   # free page reporting hands freed blocks back after a delay
    est_used=$(status_val "$u" used) est_zero=$(status_val "$u" zero) est_unpop=$(status_val "$u" unpopulated)
    t0=$(date +%s%N)
    V a migrate --live --p2p --persistent "${bw[@]}" "mig-$v" "$VMENV_URI_b" --migrateuri "tcp://$VMENV_ADDR_b" ||
        { echo "migrate mig-$v failed" >&2; exit 1; }
    t1=$(date +%s%N)
    job=$(V b domjobinfo --completed "mig-$v" 2>/dev/null || V a domjobinfo --completed "mig-$v" 2>/dev/null)
    rows[$link]+="| ($v) | $(mib "$est_used") | $(mib "$est_zero") | $(mib "$est_unpop") | $(job_val 'Memory processed') | $(job_val 'Normal pages') | $(job_val 'Constant pages') | $(job_val 'Time elapsed') | $(( (t1 - t0) / 1000000 )) ms | $(job_val 'Total downtime') |
"
    used_mib[$link.$v]=$(mib "$est_used") sent_mib[$link.$v]=$(to_mib "$(job_val 'Memory processed')")
    time_ms[$link.$v]=$(job_val 'Time elapsed' | awk '{ print $1 }')
    V b destroy "mig-$v" >/dev/null 2>&1; V b undefine "mig-$v" >/dev/null 2>&1; V a undefine "mig-$v" >/dev/null 2>&1
done
done

echo "guest: $mem MiB, touched $touch MiB then freed, then $keep MiB kept in use (touch-free); $(qemu-system-x86_64 --version | head -1)"
echo
for link in $links; do
echo "Link: $(link_name "$link")"
echo
echo "| variant | memshare estimate: used MiB | zero MiB | unpopulated MiB | QEMU: memory processed | normal pages | constant (zero) pages | time elapsed | virsh migrate wall | downtime |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s' "${rows[$link]}"
echo
# the issue's goals, as ratios of this run's own figures
awk -v sc="${sent_mib[$link.c]:-0}" -v uc="${used_mib[$link.c]:-0}" -v tc="${time_ms[$link.c]:-0}" \
    -v ta="${time_ms[$link.a]:-0}" -v sa="${sent_mib[$link.a]:-0}" 'BEGIN {
    printf "(c) memory processed / memshare'"'"'s used estimate: %.2f (goal <= 1.2); ", (uc > 0 ? sc / uc : 0)
    printf "(c) time / (a) time: %.2f (goal <= 0.30); (c) / (a) memory processed: %.2f\n", (ta > 0 ? tc / ta : 0), (sa > 0 ? sc / sa : 0) }'
echo
done
echo "(a) plain precopy, no free page reporting; (b) free page reporting; (c) (b) + free-page-hint"
