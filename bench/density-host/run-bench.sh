#!/bin/bash
# bench/density-host/run-bench.sh: the headline benchmark (issue 13): how
# many Debian 12 guests serving the same load one host memory budget holds,
# without and with memshare. For each configuration, in one run:
#   static    static memory, host KSM off, a plain virtio balloon: what an
#             operator does today
#   ksmtuned  Debian's ksmtuned package with its defaults, started the way
#             its units do (ksm.service: `ksmctl start` with /etc/default/ksm;
#             ksmtuned.service: /usr/sbin/ksmtuned, forking); stopped by
#             killing it and `ksmctl stop` (ksm.service's ExecStop)
#   ksm-max   host KSM always on at ksmtuned's highest rate (pages_to_scan
#             KSM_NPAGES_MAX=1250, sleep_millisecs as ksmtuned computes it):
#             the KSM baseline at its best, where ksmtuned never switches
#             KSM on (README.md)
#   memshare  memshare with all its features through `virsh start` and the
#             hook: /usr on the shared DAX image, KSM balloon rebalancing
#             (ksm-share), free page reporting (required by the policy),
#             used-page tracking; host KSM switched on by memshare itself
#             (memshare.conf [ksm] tune=always)
# Guests are added one at a time to an isolated libvirtd
# (tests/lib/libvirt-test.sh, vmenv.sh) whose QEMUs are all charged to one
# memory cgroup with the budget as its limit and no swap (libvirtd is moved
# into it before the first guest: a QEMU it forks is charged there from its
# first page). Each guest is the Debian 12 test guest (tests/guest/debian)
# booted with ms.bench=density: nginx-light serving a working set of files
# made at boot (unique to each guest); QEMU user networking forwards a
# 127.0.0.1 port to its port 80. After each added guest has finished
# booting and settled, loadgen.py drives every running guest at the same
# fixed request rate (open loop) for a fixed time. A step holds when every
# guest answered every request, its p99 is within the bound, no guest
# reported an OOM kill, the budget's cgroup saw none and every domain still
# runs. The largest count held is the configuration's result.
#   usage: bash bench/density-host/run-bench.sh [BUILDDIR]  (default build-density-host)
#   env (every knob is printed in the report; README.md says how to choose):
#     MS_DH_CONFIGS      ("static ksmtuned ksm-max memshare")
#     MS_DH_BUDGET_MIB   (3072) the memory cgroup's limit, swap off in it
#     MS_DH_GUEST_MIB    (512)  each guest's <memory>
#     MS_DH_BASE_MIB     (= GUEST_MIB) the memshare guests' <currentMemory>
#                        (the balloon's base; ksm-share gives them up to GUEST)
#     MS_DH_WS_MIB       (48)   each guest's working set of served files
#     MS_DH_RATE         (4)    requests per second per guest
#     MS_DH_LOAD_S       (30)   seconds of load per step
#     MS_DH_P99_MS       (1000) the service level: p99 at most this
#     MS_DH_TIMEOUT_MS   (3000) a request not answered by then is an error
#     MS_DH_MAX_GUESTS   (6)    stop adding at this count (the result is then ">= N")
#     MS_DH_SETTLE_S     (20)   wait after a guest is ready before the load
#     MS_DH_BOOT_WAIT_S  (600)  a guest not ready by then fails the step
#     MS_DH_PORT_BASE    (18480) guest i listens on 127.0.0.1:PORT_BASE+i
#     MS_DH_EST_BOOT_S   (90)   the duration estimate's boot time per guest
#     MS_DH_OUT          (bench/density-host/RESULTS.part.md)
#     MS_DH_JSON         (OUT with .json) every step's figures
#     MS_DH_PLOT         (bench/density-host/density-host.png)
#     MS_DH_TEST_OOM_AT  (unset) test hook (the smoke test): CONFIG:N, before
#                        guest N of CONFIG is added the budget is lowered to
#                        the usage then plus 64 MiB, less than a booting
#                        guest touches: that step must fail with an OOM kill
#                        in the budget
#     MS_DH_ESTIMATE_ONLY=1  print the duration estimate and exit
#     MS_DH_BUILT=1      do not run ninja (BUILDDIR is built)
#     MS_KEEP_TMP=1      keep the run directory
# Takes /tmp/memshare-ksm.lock (lvt_ksm_lock: it changes host KSM) for the
# whole run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build-density-host}
case "$build" in /*) ;; *) build=$top/$build ;; esac
configs=${MS_DH_CONFIGS:-static ksmtuned ksm-max memshare}
budget=${MS_DH_BUDGET_MIB:-3072}
gmem=${MS_DH_GUEST_MIB:-512}
base=${MS_DH_BASE_MIB:-$gmem}
ws=${MS_DH_WS_MIB:-48}
rate=${MS_DH_RATE:-4}
load_s=${MS_DH_LOAD_S:-30}
p99_ms=${MS_DH_P99_MS:-1000}
timeout_ms=${MS_DH_TIMEOUT_MS:-3000}
max_guests=${MS_DH_MAX_GUESTS:-6}
settle=${MS_DH_SETTLE_S:-20}
boot_wait=${MS_DH_BOOT_WAIT_S:-600}
port_base=${MS_DH_PORT_BASE:-18480}
est_boot=${MS_DH_EST_BOOT_S:-90}
outfile=${MS_DH_OUT:-$here/RESULTS.part.md}
jsonfile=${MS_DH_JSON:-${outfile%.md}.json}
plotfile=${MS_DH_PLOT:-$here/density-host.png}
oom_at=${MS_DH_TEST_OOM_AT:-}
py=/usr/bin/python3   # Debian's (tools/install-deps.sh), not a pyenv one
die() { echo "density-host: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }
for v in BUDGET_MIB:budget GUEST_MIB:gmem BASE_MIB:base WS_MIB:ws LOAD_S:load_s P99_MS:p99_ms \
         TIMEOUT_MS:timeout_ms MAX_GUESTS:max_guests SETTLE_S:settle BOOT_WAIT_S:boot_wait \
         PORT_BASE:port_base EST_BOOT_S:est_boot; do
    n=${v#*:}
    [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -gt 0 ] || die "MS_DH_${v%%:*}='${!n}': not a positive integer"
done
[[ $rate =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "MS_DH_RATE='$rate': not a number"
[ "$base" -le "$gmem" ] || die "MS_DH_BASE_MIB=$base: larger than MS_DH_GUEST_MIB=$gmem"
[ "$max_guests" -le 64 ] || die "MS_DH_MAX_GUESTS=$max_guests: at most 64"
[ $((port_base + max_guests)) -le 65535 ] || die "MS_DH_PORT_BASE=$port_base: ports past 65535"
for c in $configs; do
    case $c in static|ksmtuned|ksm-max|memshare) ;; *) die "MS_DH_CONFIGS: unknown '$c' (static ksmtuned ksm-max memshare)" ;; esac
done
[ -n "$configs" ] || die "MS_DH_CONFIGS is empty"
if [ -n "$oom_at" ]; then
    [[ $oom_at =~ ^([a-z-]+):([0-9]+)$ ]] && [[ " $configs " == *" ${BASH_REMATCH[1]} "* ]] ||
        die "MS_DH_TEST_OOM_AT='$oom_at': expected CONFIG:N with CONFIG one of MS_DH_CONFIGS ($configs)"
fi

# ---- how long: every configuration may run up to MAX_GUESTS steps; a step
# is one more guest's boot under TCG (MS_DH_EST_BOOT_S, from the smoke
# test's boots on an idle 2-core machine; it grows as more guests run) plus
# the settle time, the load and about 15 s of measuring and starting
nconf=$(wc -w <<< "$configs")
step_est=$((est_boot + settle + load_s + 15))
log "estimate: $nconf configurations x at most $max_guests steps x ~${step_est} s" \
    "(boot ${est_boot} + settle $settle + load $load_s + 15) = at most ~$((nconf * max_guests * step_est / 60)) min," \
    "less when a configuration stops early (each stops at the first step that fails)"
[ "${MS_DH_ESTIMATE_ONLY:-0}" = 1 ] && exit 0

[ "$(id -u)" = 0 ] || die "must run as root"
for t in qemu-system-x86_64 qemu-img virsh libvirtd gnuplot flock nsenter "$py"; do
    command -v "$t" > /dev/null || die "$t not found (tools/install-deps.sh)"
done
case " $configs " in *" ksmtuned "*)
    [ -x /usr/sbin/ksmtuned ] && [ -x /usr/sbin/ksmctl ] || die "/usr/sbin/ksmtuned or ksmctl not found (Debian's ksmtuned package: tools/install-deps.sh)" ;;
esac
[ -w /sys/kernel/mm/ksm/run ] || die "/sys/kernel/mm/ksm/run: not writable (host KSM is needed)"
# a host ksmtuned (apt starts ksmtuned.service on a systemd host) would
# change KSM under every configuration
kt=$(pgrep -f '^/bin/bash /usr/sbin/ksmtuned' | tr '\n' ' ' || true)
[ -z "$kt" ] || die "a ksmtuned is running on the host (pid $kt): it would change KSM during the run (systemctl stop ksmtuned ksm)"
# MS_DH_BUILT=1: BUILDDIR is built already (the smoke test, run by meson
# test, which must not run ninja in its own build tree)
if [ "${MS_DH_BUILT:-0}" != 1 ]; then
    [ -d "$build" ] || meson setup "$build" "$top" > /dev/null
    ninja -C "$build" hooks/memshare-hook hooks/memshare-hook-full qmp-plugin/memshare-agent tools/memsharectl tests/guest/debian/stamp > /dev/null ||
        die "build failed (ninja -C $build tests/guest/debian/stamp)"
fi
[ -f "$build/tests/guest/debian/stamp" ] || die "no Debian guest in $build (ninja -C $build tests/guest/debian/stamp)"
export MS_HOOK=$build/hooks/memshare-hook MS_AGENT=$build/qmp-plugin/memshare-agent MS_CTL=$build/tools/memsharectl
export MS_DEBIAN_DIR=$build/tests/guest/debian
deb=$MS_DEBIAN_DIR

# tap.sh, vmenv.sh, domain.sh and the lvt_* helpers: the same isolated
# libvirtd, hook install and KSM lock as the libvirt tests
source "$top/tests/lib/libvirt-test.sh"
source "$top/tests/guest/debian/lib-debian.sh"
source "$top/bench/lib/hostmem.sh"

# ---- the budget: cgroup v2 memory.max where the memory controller is on v2,
# else the v1 memory controller (a hybrid layout: v1 memory, an empty
# unified hierarchy, as on this project's machines). On v1 the budget is a
# child of this script's own memory cgroup (use_hierarchy: its limit, if
# any, still applies above ours); on v2 a child of the root (a v2 cgroup
# with processes cannot hand the controller to a child).
cg=
cg_kind=
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2> /dev/null; then
    cg_kind=v2 cg_root=/sys/fs/cgroup
elif grep -qw memory /sys/fs/cgroup/unified/cgroup.controllers 2> /dev/null; then
    cg_kind=v2 cg_root=/sys/fs/cgroup/unified
elif [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
    cg_kind=v1 cg_root=/sys/fs/cgroup/memory
    own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
    [ -d "$cg_root$own" ] && cg_root=$cg_root${own%/}
else
    die "no memory cgroup controller (neither v2 memory.max nor v1 memory.limit_in_bytes)"
fi
# cg_set_budget MIB: applies the limit and no swap, reads both back
cg_set_budget() {
    local b=$(($1 << 20)) got swap
    if [ $cg_kind = v2 ]; then
        echo "$b" > "$cg/memory.max"
        swap=none
        if [ -f "$cg/memory.swap.max" ]; then
            echo 0 > "$cg/memory.swap.max"; swap="memory.swap.max $(cat "$cg/memory.swap.max")"
        fi
        got=$(cat "$cg/memory.max")
    else
        # memsw >= mem at all times: lower mem first, then memsw to equal it
        # (no swap), raising memsw first when growing
        if [ -f "$cg/memory.memsw.limit_in_bytes" ]; then
            echo "$b" > "$cg/memory.limit_in_bytes" 2> /dev/null || true
            echo "$b" > "$cg/memory.memsw.limit_in_bytes"
        fi
        echo "$b" > "$cg/memory.limit_in_bytes"
        echo 0 > "$cg/memory.swappiness"
        got=$(cat "$cg/memory.limit_in_bytes")
        swap="swappiness $(cat "$cg/memory.swappiness"), memsw.limit_in_bytes $(cat "$cg/memory.memsw.limit_in_bytes" 2> /dev/null || echo absent)"
    fi
    [ "$got" = "$b" ] || die "budget not applied: asked $b bytes, $cg says $got"
    log "budget: $cg ($cg_kind) limit read back $got bytes; swap: $swap; host swap: $(($(awk '/^SwapTotal:/ {print $2}' /proc/meminfo) >> 10)) MiB"
}
cg_usage() {   # bytes charged now
    if [ $cg_kind = v2 ]; then cat "$cg/memory.current"; else cat "$cg/memory.usage_in_bytes"; fi
}
cg_peak() {
    if [ $cg_kind = v2 ]; then cat "$cg/memory.peak" 2> /dev/null || echo 0; else cat "$cg/memory.max_usage_in_bytes"; fi
}
cg_ooms() {    # OOM kills in the budget so far
    if [ $cg_kind = v2 ]; then
        awk '$1 == "oom_kill" { print $2 }' "$cg/memory.events"
    else
        awk '$1 == "oom_kill" { k = $2 } END { print k + 0 }' "$cg/memory.oom_control"
    fi
}
cg_stat() {    # "anon file" MiB charged now
    if [ $cg_kind = v2 ]; then
        awk '$1 == "anon" { a = $2 } $1 == "file" { f = $2 } END { printf "%.1f %.1f", a / 1048576, f / 1048576 }' "$cg/memory.stat"
    else
        awk '$1 == "total_rss" { a = $2 } $1 == "total_cache" { f = $2 } END { printf "%.1f %.1f", a / 1048576, f / 1048576 }' "$cg/memory.stat"
    fi
}
cg_remove() {
    [ -n "$cg" ] && [ -d "$cg" ] || return 0
    local p
    for _ in $(seq 50); do
        [ -s "$cg/cgroup.procs" ] || break
        sleep 0.2
    done
    # anything left (a straggler) goes back to the parent before rmdir
    for p in $(cat "$cg/cgroup.procs" 2> /dev/null); do echo "$p" > "$cg_root/cgroup.procs" 2> /dev/null || true; done
    rmdir "$cg" 2> /dev/null || log "could not remove $cg"
    cg=
}

# ---- host KSM: lvt_ksm_lock takes /tmp/memshare-ksm.lock and restores
# run, pages_to_scan and sleep_millisecs at exit; advisor_mode (which
# memshare's KSM tuner switches on where the kernel has it) is ours to restore
lvt_ksm_lock
ksm_p0=$(cat $ksm/pages_to_scan) ksm_s0=$(cat $ksm/sleep_millisecs)
ksm_adv0=$(sed -n 's/.*\[\(.*\)\].*/\1/p' $ksm/advisor_mode 2> /dev/null || true)   # none before 6.8
ksmtuned_pid=
# what ksmtuned computes from /etc/ksmtuned.conf's defaults (its own code)
total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
kt_sleep=$((10 * 16 * 1024 * 1024 / total_kb)); [ $kt_sleep -le 10 ] && kt_sleep=10
kt_thres=$((total_kb * 20 / 100)); [ $kt_thres -lt 2048 ] && kt_thres=2048
ksmtuned_stop() {
    [ -n "$ksmtuned_pid" ] || return 0
    # its loop first (it would start another sleep), then the sleep it waits on
    local kids
    kids=$(pgrep -P "$ksmtuned_pid" || true)
    kill "$ksmtuned_pid" 2> /dev/null || true
    [ -z "$kids" ] || kill $kids 2> /dev/null || true
    ksmtuned_pid=
    /usr/sbin/ksmctl stop || true   # ksm.service's ExecStop
}
# ksm_reset: host KSM as this run found it, not running, between configurations
ksm_reset() {
    ksmtuned_stop
    echo 0 > $ksm/run
    # the advisor first: while it runs the kernel refuses pages_to_scan (EINVAL)
    [ -z "$ksm_adv0" ] || echo "$ksm_adv0" > $ksm/advisor_mode
    echo "$ksm_p0" > $ksm/pages_to_scan; echo "$ksm_s0" > $ksm/sleep_millisecs
}
ksm_set() {    # ksm_set CONFIG (from ksm_reset's state)
    case $1 in
        static|memshare) ;;   # memshare: its agents' [ksm] tune=always
        ksmtuned)
            # ksm.service, then ksmtuned.service (Type=forking) as Debian
            # ships them; no systemd here, so the same commands by hand. The
            # pidfile is ours (a host ksmtuned, if any, keeps its own); fd 9
            # (the KSM lock) is not inherited; setsid: its own session
            ( set -a; [ ! -f /etc/default/ksm ] || . /etc/default/ksm; exec /usr/sbin/ksmctl start ) 9>&- ||
                die "ksmctl start failed"
            PIDFILE=$tmp/ksmtuned.pid setsid /usr/sbin/ksmtuned < /dev/null > /dev/null 2>&1 9>&-
            for _ in $(seq 50); do [ -s "$tmp/ksmtuned.pid" ] && break; sleep 0.1; done
            ksmtuned_pid=$(cat "$tmp/ksmtuned.pid" 2> /dev/null) && kill -0 "$ksmtuned_pid" 2> /dev/null ||
                die "ksmtuned did not start (no live pid in $tmp/ksmtuned.pid)"
            log "ksmtuned: pid $ksmtuned_pid, KSM run=$(cat $ksm/run) after ksmctl start" ;;
        ksm-max)
            echo 1250 > $ksm/pages_to_scan; echo $kt_sleep > $ksm/sleep_millisecs; echo 1 > $ksm/run ;;
    esac
}
ksmd_ticks() { local p; p=$(pgrep -x ksmd | head -1); [ -n "$p" ] && awk '{print $14 + $15}' "/proc/$p/stat" || echo 0; }
agent_ticks() {
    local p t=0
    for p in $(pgrep -x memshare-agent); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2> /dev/null || echo 0))); done
    echo $t
}
hz=$(getconf CLK_TCK)

# ---- the run directory, on disk (the overlays grow while guests boot);
# each configuration's isolated libvirtd lives in $tmp/CONFIG
tmp=$(mktemp -d /var/tmp/ms-density-host.XXXXXX)
dh_cleanup() {
    set +e
    vmenv_stop
    cg_remove
    ksm_reset
    if [ "${MS_KEEP_TMP:-0}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
# libvirt-test.sh's own EXIT trap (KSM restored, agent logs) runs last
trap 'dh_cleanup; _lvt_on_exit' EXIT
trap 'exit 130' INT TERM

image=debian12-usr
POLICY_MS=$(debian_policy "$image" dax \
    "<memshare:tracking used-pages='on' period='5s' free-page-reporting='required'/><memshare:balloon mode='ksm-share' division='equal' period='5s'/>")
nfiles=$((ws * 64))
stepsjson=$tmp/steps.jsonl
: > "$stepsjson"
serial() { tr -d '\r' < "$1" 2> /dev/null || true; }
uuid_of() { printf '7d1e5a90-3c4b-4f6e-9a2d-%012d' "$1"; }

# domain XML for guest I of CONFIG: the Debian guest of lib-debian.sh, plus
# a virtio NIC on QEMU's user network with one host port forwarded (libvirt
# 9.0's <interface type='user'> has no port forwarding with slirp: passed to
# QEMU directly with <qemu:commandline>). Without memshare the balloon is
# libvirt's default one (no free page reporting): what a domain has today.
guest_xml() {
    local c=$1 i=$2 n=g$2 disk initrd policy="" cur=$gmem balloon=nofpr
    if [ "$c" = memshare ]; then
        disk=root-dax.img initrd=initrd.img policy=$POLICY_MS cur=$base balloon=
    else
        # the guest as it is without memshare: /usr on its own disk,
        # debootstrap's initramfs
        disk=root-full.img initrd=initrd-stock.img
    fi
    qemu-img create -q -f qcow2 -b "$deb/$disk" -F raw "$tmp/$c-$n.qcow2"
    MS_DOMAIN_BALLOON=$balloon debian_domain_xml "$n" "$(uuid_of "$i")" "$gmem" "$cur" \
        "$tmp/$c-$n.serial" "$tmp/$c-$n.qcow2" "$initrd" "$policy" |
    sed "s|^<domain type='qemu'>|<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>|
         s|root=LABEL=ms-root ro|root=LABEL=ms-root ro ms.bench=density ms.ws=$ws|
         s|^</domain>|<qemu:commandline><qemu:arg value='-netdev'/><qemu:arg value='user,id=msnet0,hostfwd=tcp:127.0.0.1:$((port_base + i))-:80'/><qemu:arg value='-device'/><qemu:arg value='virtio-net-pci,netdev=msnet0,bus=pcie.0,addr=0x1e'/></qemu:commandline></domain>|"
}

run_config() {   # run_config CONFIG: sets held[CONFIG], fail[CONFIG]
    local c=$1 i n targets=() pid ready t0 why qpid oom_before boot_s fpr
    log "== $c"
    vmenv_setup "$tmp/$c" || die "$c: cannot set up the isolated libvirtd"
    LVT_RT=$tmp/$c/run-memshare/domains LVT_LOGS=$tmp/$c/log-memshare
    if [ "$c" = memshare ]; then
        # the guests are one tenant's (docs/security.md); memshare's KSM
        # tuner switches host KSM on (the advisor where the kernel has it)
        lvt_install "$LVT_CONF_ONE_TENANT
[ksm]
tune=always" || die "$c: cannot install the memshare hook and memshare.conf"
    fi
    lvt_start >&2
    if [ "$c" = memshare ]; then
        lvt_image_build "$image" --usr --from "$deb/usr" >&2
    fi
    # what earlier configurations or the build left in the host page cache
    # is charged to no budget: each configuration starts from cold files
    hostmem_drop_file_cache "$deb"/root-full.img "$deb"/root-dax.img "$deb"/vmlinuz "$deb"/initrd*.img \
        $(ls "$tmp/$c"/lib-memshare/images/blobs/*.img 2> /dev/null)
    cg=$cg_root/ms-density-host-$$-$c
    mkdir "$cg"
    cg_set_budget "$budget"
    pid=$(cat "$tmp/$c/run-libvirt/libvirtd.pid")
    echo "$pid" > "$cg/cgroup.procs"
    grep -qx "$pid" "$cg/cgroup.procs" || die "$c: libvirtd $pid is not in $cg"
    ksm_set "$c"
    held[$c]=0 fail[$c]="reached MS_DH_MAX_GUESTS=$max_guests"
    for i in $(seq "$max_guests"); do
        n=g$i
        if [ "$oom_at" = "$c:$i" ]; then
            local tight=$(( ($(cg_usage) >> 20) + 64 ))
            log "$c: MS_DH_TEST_OOM_AT=$oom_at: budget lowered to $tight MiB before $n"
            cg_set_budget "$tight"
        fi
        oom_before=$(cg_ooms)
        guest_xml "$c" "$i" > "$tmp/$c-$n.xml"
        V define "$tmp/$c-$n.xml" > /dev/null || die "$c: define $n failed"
        t0=$(date +%s)
        if ! V start "$n" > "$tmp/$c-$n.start" 2>&1; then
            why="virsh start $n failed: $(tr '\n' ' ' < "$tmp/$c-$n.start")"
            [ "$(cg_ooms)" -gt "$oom_before" ] && why="OOM kill in the budget ($(($(cg_ooms) - oom_before))); $why"
            fail[$c]=$why; log "$c: $why"; record_fail "$c" "$i" "$why"; break
        fi
        # every QEMU must be charged to the budget
        qpid=$(cat "$tmp/$c/run-libvirt/qemu/$n.pid")
        grep -qx "$qpid" "$cg/cgroup.procs" || die "$c: QEMU $qpid of $n is not in the budget $cg"
        # libvirt 9.0 passes -device as JSON to QEMU 7.2
        fpr=off
        tr '\0' '\n' < "/proc/$qpid/cmdline" | grep -E 'virtio-balloon' |
            grep -Eq '"free-page-reporting": ?true|free-page-reporting=on' && fpr=on
        log "$c: $n QEMU $qpid in the budget; balloon: free-page-reporting=$fpr"
        targets+=("$n=127.0.0.1:$((port_base + i))")
        ready=0
        for _ in $(seq "$boot_wait"); do
            # ready: nginx's files are made (density.sh) and systemd has
            # finished the boot (report.sh: MS-USR, MS-FAILED-UNITS printed)
            serial "$tmp/$c-$n.serial" | grep -q '^MS-DENSITY-READY' &&
                serial "$tmp/$c-$n.serial" | grep -q '^MS-DEBIAN-DONE' && { ready=1; break; }
            serial "$tmp/$c-$n.serial" | grep -q '^MS-DENSITY-FAILED' && break
            [ $((SECONDS % 10)) != 0 ] || [ "$(V domstate "$n" 2> /dev/null)" = running ] || break
            sleep 1
        done
        boot_s=$(($(date +%s) - t0))
        if [ $ready = 0 ]; then
            why="$n not ready after ${boot_s} s (state $(V domstate "$n" 2> /dev/null || echo gone)): $(serial "$tmp/$c-$n.serial" | tail -2 | tr '\n' ' ')"
            [ "$(cg_ooms)" -gt "$oom_before" ] && why="OOM kill in the budget ($(($(cg_ooms) - oom_before))); $why"
            fail[$c]=$why; log "$c: $why"; record_fail "$c" "$i" "$why"; break
        fi
        log "$c: $n ready after ${boot_s} s: $(serial "$tmp/$c-$n.serial" | grep -E '^MS-(USR |FAILED-UNITS)' | tr '\n' ' ')"
        sleep "$settle"
        step "$c" "$i" "$boot_s" "$oom_before" "${targets[@]}" || break
        held[$c]=$i
    done
    vmenv_stop
    cg_remove
    ksm_reset
}

# record_fail CONFIG N WHY: a step that failed before its load (boot)
record_fail() {
    "$py" -c 'import json,sys; print(json.dumps({"config": sys.argv[1], "guests": int(sys.argv[2]), "boot_s": None, "budget_usage_mib": round(int(sys.argv[4]) / 1048576, 1), "budget_peak_mib": None, "anon_mib": None, "file_mib": None, "budget_oom_kills": None, "ksmd_cpu_pct": None, "agent_cpu_pct": None, "ksm_run": None, "ksm_pages_sharing": None, "host_idle_pct": None, "p99_ms_worst": None, "p50_ms_median": None, "steal_pct_max": None, "held": False, "why": sys.argv[3], "targets": {}}))' \
        "$1" "$2" "$3" "$(cg_usage)" >> "$stepsjson"
}

# step CONFIG N BOOT_S OOM_BEFORE TARGET...: loads the running guests,
# records the step, returns 1 (with fail[CONFIG] set) when the service level
# was not held; OOM kills in the budget since OOM_BEFORE (the count before
# guest N was added: its boot counts) fail it
step() {
    local c=$1 i=$2 boot_s=$3 oom0=$4; shift 4
    local ksm0 ag0 u anon file peak n st t
    ksm0=$(ksmd_ticks) ag0=$(agent_ticks)
    "$py" "$here/loadgen.py" --rate "$rate" --seconds "$load_s" --timeout "$timeout_ms" \
        --files "$nfiles" "$@" > "$tmp/loadgen.json" || die "$c: loadgen failed"
    u=$(cg_usage) peak=$(cg_peak); read -r anon file <<< "$(cg_stat)"
    local dead=""
    for t in "$@"; do
        n=${t%%=*}
        st=$(V domstate "$n" 2> /dev/null || echo gone)
        [ "$st" = running ] || dead+="$n:$st "
    done
    local rec
    rec=$("$py" - "$c" "$i" "$boot_s" "$u" "$peak" "$anon" "$file" "$oom0" "$(cg_ooms)" \
          "$ksm0" "$(ksmd_ticks)" "$ag0" "$(agent_ticks)" "$hz" "$load_s" "$p99_ms" "$dead" \
          "$(cat $ksm/pages_sharing)" "$(cat $ksm/run)" "$tmp/loadgen.json" "$LVT_RT" \
          "$(pgrep -c -f '^qemu-system.*-enable-kvm' || true)" <<'PY'
import configparser, json, os, sys
(c, i, boot, u, peak, anon, file, oom0, oom1, k0, k1, a0, a1, hz, secs, bound, dead,
 sharing, run, lgf, rt, kt_qemus) = sys.argv[1:]
r = json.load(open(lgf))
hz, secs = int(hz), float(secs)
why = []
if int(oom1) > int(oom0):
    why.append(f"OOM kill in the budget ({int(oom1) - int(oom0)})")
if dead.strip():
    why.append(f"domain not running: {dead.strip()}")
p99s, steal = [], []
for n, t in r["targets"].items():
    if t["errors"]:
        why.append(f"{n}: {t['errors']} of {t['sent']} requests failed {t['error_kinds']}")
    if t["p99_ms"] is not None and t["p99_ms"] > float(bound):
        why.append(f"{n}: p99 {t['p99_ms']} ms > {bound} ms")
    if t["guest_oom_kills"]:
        why.append(f"{n}: {t['guest_oom_kills']} OOM kills in the guest")
    if t["p99_ms"] is not None:
        p99s.append(t["p99_ms"])
    if t["steal_pct"] is not None:
        steal.append(t["steal_pct"])
    # memshare's own view of each guest (its agent's status file): what
    # shows that every feature ran, not only that the policy was accepted
    st = os.path.join(rt, "7d1e5a90-3c4b-4f6e-9a2d-%012d" % int(n[1:]), "status")
    if os.path.exists(st):
        kf = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            kf.read(st)
            g = lambda s, k: kf.get(s, k, fallback=None)
            t["memshare"] = {"images_attached": g("images", "attached"),
                             "tracking_used": g("tracking", "used"), "tracking_freed": g("tracking", "freed"),
                             "balloon_target": g("balloon", "target"), "balloon_actual": g("balloon", "actual"),
                             "balloon_host_saved": g("balloon", "host-saved"), "balloon_reason": g("balloon", "reason"),
                             "ksmtune_leader": g("ksmtune", "leader"), "ksmtune_run": g("ksmtune", "run"),
                             "ksm_merging_pages": g("ksm", "merging-pages")}
        except configparser.Error as e:
            t["memshare"] = {"error": f"{st}: {e}"}
rec = {"config": c, "guests": int(i), "boot_s": int(boot),
       "budget_usage_mib": round(int(u) / 1048576, 1), "budget_peak_mib": round(int(peak) / 1048576, 1),
       "anon_mib": float(anon), "file_mib": float(file),
       "budget_oom_kills": int(oom1) - int(oom0),
       "ksmd_cpu_pct": round(100 * (int(k1) - int(k0)) / hz / secs, 1),
       "agent_cpu_pct": round(100 * (int(a1) - int(a0)) / hz / secs, 1),
       "ksm_run": int(run), "ksm_pages_sharing": int(sharing), "ksmtuned_qemus": int(kt_qemus or 0),
       "host_idle_pct": r["host_idle_pct"], "loadgen_cpu_pct": r["loadgen_cpu_pct"],
       "send_lag_ms_max": r["send_lag_ms_max"],
       "achieved_rate_min": min((t["achieved_rate"] for t in r["targets"].values()), default=None),
       "p99_ms_worst": max(p99s) if p99s else None,
       "p50_ms_median": sorted(t["p50_ms"] for t in r["targets"].values() if t["p50_ms"] is not None)[len(p99s) // 2] if p99s else None,
       "steal_pct_max": max(steal) if steal else None,
       "held": not why, "why": "; ".join(why), "targets": r["targets"]}
print(json.dumps(rec))
PY
)
    echo "$rec" >> "$stepsjson"
    "$py" -c 'import json,sys; r=json.loads(sys.argv[1]); print("# %s n=%d: %s; usage %s MiB (anon %s, file %s), p99 worst %s ms, host idle %s %%, loadgen CPU %s %% (rate achieved %s/s, send lag max %s ms), steal max %s %%, ksmd %s %%, agents %s %%, KSM run=%d sharing=%d%s" % (r["config"], r["guests"], "held" if r["held"] else "FAILED", r["budget_usage_mib"], r["anon_mib"], r["file_mib"], r["p99_ms_worst"], r["host_idle_pct"], r["loadgen_cpu_pct"], r["achieved_rate_min"], r["send_lag_ms_max"], r["steal_pct_max"], r["ksmd_cpu_pct"], r["agent_cpu_pct"], r["ksm_run"], r["ksm_pages_sharing"], "" if r["held"] else ": " + r["why"]))' "$rec" >&2
    if ! "$py" -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["held"] else 1)' "$rec"; then
        fail[$c]=$("$py" -c 'import json,sys; print(json.loads(sys.argv[1])["why"])' "$rec")
        return 1
    fi
}

declare -A held fail
run_t0=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for c in $configs; do run_config "$c"; done
elapsed=$(($(date +%s) - run_t0))

# ---- the report: RESULTS.part.md, the steps as JSON, the plot
knobs="MS_DH_CONFIGS=\"$configs\" MS_DH_BUDGET_MIB=$budget MS_DH_GUEST_MIB=$gmem MS_DH_BASE_MIB=$base MS_DH_WS_MIB=$ws MS_DH_RATE=$rate MS_DH_LOAD_S=$load_s MS_DH_P99_MS=$p99_ms MS_DH_TIMEOUT_MS=$timeout_ms MS_DH_MAX_GUESTS=$max_guests MS_DH_SETTLE_S=$settle MS_DH_BOOT_WAIT_S=$boot_wait${oom_at:+ MS_DH_TEST_OOM_AT=$oom_at}"
heldargs=()
for c in $configs; do heldargs+=("$c=${held[$c]}" "$c.why=${fail[$c]}"); done
cp "$stepsjson" "$jsonfile"
MS_DH_BENCH_DIR=$top/bench "$py" - "$stepsjson" "$outfile" "$plotfile" "$tmp" "$cg_kind" "$cg_root" "$knobs" "$elapsed" \
    "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$kt_thres" "$total_kb" "$kt_sleep" "$max_guests" \
    "${heldargs[@]}" <<'PY'
import json, os, subprocess, sys, time
(steps_f, out_f, plot_f, tmp, cg_kind, cg_root, knobs, elapsed, load0, load1, kt_thres,
 total_kb, kt_sleep, max_guests) = sys.argv[1:15]
kv = dict(a.split("=", 1) for a in sys.argv[15:])
steps = [json.loads(l) for l in open(steps_f) if l.strip()]
configs = [k for k in kv if "." not in k]
held = {c: int(kv[c]) for c in configs}
why = {c: kv[c + ".why"] for c in configs}
def at(c, n):
    for s in steps:
        if s["config"] == c and s["guests"] == n and s["held"]:
            return s
def fmt(v, suf=""):
    return "n/a" if v is None else f"{v}{suf}"
L = []
L.append("## Guests per host at the same service level (bench/density-host/run-bench.sh)")
L.append("")
L.append("Debian 12 guests (tests/guest/debian, systemd, nginx-light serving a working set of 16 KiB files made at boot, unique per guest) "
         "are added one at a time to an isolated libvirtd whose QEMUs are all charged to one memory cgroup "
         f"({'cgroup v2 memory.max' if cg_kind == 'v2' else 'cgroup v1 memory controller: memory.limit_in_bytes, memsw limit, swappiness 0; OOM kills from memory.oom_control'}, {cg_root}; host swap: "
         f"{'none' if not open('/proc/swaps').read().splitlines()[1:] else 'present'}). "
         "After each guest is ready, every running guest gets the same fixed request rate (open loop: latency from the scheduled send time) from bench/density-host/loadgen.py over QEMU user networking. "
         "A step holds when no request failed, every guest's p99 is within the bound, and there was no OOM kill in a guest or in the budget.")
L.append("")
L.append(f"Knobs: `{knobs}`.")
L.append("")
L.append("| configuration | guests held | stopped because | host memory per guest (MiB) | p99 at that count (worst guest, ms) | ksmd CPU | agents' CPU | host CPU idle | max guest steal | loadgen CPU / rate achieved (min) |")
L.append("|---|---|---|---|---|---|---|---|---|---|")
for c in configs:
    s = at(c, held[c])
    h = held[c]
    hs = f"{'>= ' if h == int(max_guests) and 'MAX_GUESTS' in why[c] else ''}{h}"
    if s:
        L.append(f"| {c} | **{hs}** | {why[c]} | {round(s['budget_usage_mib'] / h, 1)} | {fmt(s['p99_ms_worst'])} | {s['ksmd_cpu_pct']} % | {s['agent_cpu_pct']} % | {s['host_idle_pct']} % | {fmt(s['steal_pct_max'], ' %')} | {s['loadgen_cpu_pct']} % / {fmt(s['achieved_rate_min'], '/s')} |")
    else:
        L.append(f"| {c} | **0** | {why[c]} | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
L.append("")
if "static" in held and held["static"]:
    for c in configs:
        if c != "static":
            L.append(f"- {c} / static: **{held[c] / held['static']:.2f}x** guests")
    L.append("")
L.append(f"ksmtuned (its defaults) switches KSM on only when the committed memory (RSS) of processes matching `^qemu-system.*-enable-kvm` plus {int(kt_thres) >> 10} MiB exceeds MemTotal ({int(total_kb) >> 10} MiB), "
         f"or MemFree+Buffers+Cached falls below {int(kt_thres) >> 10} MiB: it looks at the whole host, not at a budget; ksm.service's `ksmctl start` has KSM on at the kernel's default rate until ksmtuned's first check, 60 s later. "
         f"ksm-max runs KSM at ksmtuned's top rate all along (pages_to_scan 1250, sleep_millisecs {kt_sleep}); memshare switches it on itself (`[ksm] tune=always`: the kernel's scan-time advisor where it has one).")
ks = [s for s in steps if s["config"] == "ksmtuned" and s["ksm_run"] is not None]
if ks:
    L.append(f"In this run KSM was {'on' if any(s['ksm_run'] for s in ks) else 'off'} at the end of the ksmtuned steps' load, "
             f"and ksmtuned's QEMU pattern matched {max(s.get('ksmtuned_qemus') or 0 for s in ks)} of the running QEMUs (libvirt starts them without -enable-kvm).")
L.append("")
ms = [s for s in steps if s["config"] == "memshare" and s["targets"]]
if ms:
    last = ms[-1]
    L.append(f"memshare's agents at its last loaded step ({last['guests']} guests), per guest: "
             + "; ".join(f"{n}: image attached {t.get('memshare', {}).get('images_attached')}, used pages tracked {t.get('memshare', {}).get('tracking_used')}, "
                         f"balloon target/actual {t.get('memshare', {}).get('balloon_target')}/{t.get('memshare', {}).get('balloon_actual')} ({t.get('memshare', {}).get('balloon_reason')}), "
                         f"KSM tuner leader {t.get('memshare', {}).get('ksmtune_leader')}"
                         for n, t in last["targets"].items()) + ".")
    L.append("")
L.append("CPU is not the limit of a step when host CPU idle stays well above 0, guest steal stays low, and the load generator kept its rate (rate achieved = MS_DH_RATE, send lag small against the p99 bound).")
L.append("")
L.append("Every step (budget usage = what the cgroup charged: guest RAM, QEMU, page cache of disks and image):")
L.append("")
L.append("| configuration | guests | boot (s) | budget usage (MiB) | anon / file (MiB) | p50 median / p99 worst (ms) | host idle | steal max | loadgen CPU, send lag max | KSM sharing pages | held |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|")
for s in steps:
    L.append(f"| {s['config']} | {s['guests']} | {fmt(s['boot_s'])} | {s['budget_usage_mib']} | {fmt(s['anon_mib'])} / {fmt(s['file_mib'])} | {fmt(s['p50_ms_median'])} / {fmt(s['p99_ms_worst'])} | {fmt(s['host_idle_pct'], ' %')} | {fmt(s['steal_pct_max'], ' %')} | {fmt(s.get('loadgen_cpu_pct'), ' %')}, {fmt(s.get('send_lag_ms_max'), ' ms')} | {fmt(s['ksm_pages_sharing'])} | {'yes' if s['held'] else 'no: ' + s['why']} |")
L.append("")
# the plot: guests on x, p99 (left) and budget usage (right), a line per configuration
dat = os.path.join(tmp, "plot.dat")
with open(dat, "w") as f:
    for c in configs:
        f.write(f"# {c}\n")
        for s in steps:
            if s["config"] == c:
                if s["held"]:
                    f.write(f"{s['guests']} {s['p99_ms_worst'] if s['p99_ms_worst'] is not None else 'NaN'} {s['budget_usage_mib']}\n")
        f.write("\n\n")
gp = ["set terminal png size 900,500 noenhanced",
      f"set output '{plot_f}'", "set xlabel 'guests'", "set ylabel 'p99 latency, worst guest (ms)'",
      "set y2label 'budget usage (MiB)'", "set y2tics", "set ytics nomirror", "set key outside right",
      "set grid", "set xtics 1", "set logscale y"]
plots = []
for k, c in enumerate(configs):
    plots.append(f"'{dat}' index {k} using 1:2 with linespoints lw 2 lc {k + 1} title '{c} p99'")
    plots.append(f"'{dat}' index {k} using 1:3 axes x1y2 with linespoints dt 2 lc {k + 1} title '{c} memory'")
gp.append("plot " + ", ".join(plots))
r = subprocess.run(["gnuplot"], input="\n".join(gp), text=True, capture_output=True)
if r.returncode == 0:
    # relative to bench/, where bench/RESULTS.md (run-all.sh) has this section
    L.append(f"![guests vs p99 and budget usage]({os.path.relpath(plot_f, os.environ['MS_DH_BENCH_DIR'])})")
else:
    L.append(f"(plot not written: gnuplot: {r.stderr.strip()[:200]})")
L.append("")
L.append(f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {int(elapsed) // 60} min; host kernel {os.uname().release}, {os.cpu_count()} CPUs; "
         f"load average before {load0}, after {load1}.")
open(out_f, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
log "report: $outfile, steps: $jsonfile, plot: $plotfile"
