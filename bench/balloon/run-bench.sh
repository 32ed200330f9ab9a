#!/bin/bash
# bench/balloon/run-bench.sh: the KSM + balloon study in miniature (issue 5).
# Does the memory KSM saves, handed back to the guests by memshare's
# balloons, make them faster? Three bare-QEMU TCG guests (<memory> 768 MiB,
# base 384 MiB) each fill 160 MiB with identical pages (merged by KSM across
# and within guests), then run bench/balloon/randread.c (4 KiB buffered reads
# at random offsets) over their own data file on a virtio-blk disk (cache=none
# on the host, so only the guest's page cache helps); the file is ~1.5x what a
# guest can cache at base. Two set-ups in the same run, one after the other
# (ROUNDS=2 runs them A B B A):
#   static:   no agent, no KSM, balloons held at base (QMP `balloon`)
#   memshare: memshare-agent per guest, policy balloon mode='ksm-share'
#             division='equal', KSM on (pages_to_scan 5000, sleep 20 ms)
# Measured over a window once the balloons settle: ops/s and p50/p99 per
# guest (from the guests' MS-RR histograms), ksmd CPU (utime+stime), balloon
# target/actual history (agents' status files, or query-balloon), guest OOMs,
# target direction changes after settling. Writes bench/balloon/RESULTS.part.md
# and keeps the raw data in the printed directory when MS_KEEP_TMP=1.
#   usage (root): bash bench/balloon/run-bench.sh [BUILDDIR]  (default build-bballoon)
#   env: ROUNDS (2: A B B A; 1: A B), DATA_MIB (data file per guest, 128), FILL_MIB (160), WARM_S (60),
#        MS_BALLOON_OUT (the Markdown section to write; RESULTS.part.md),
#        WINDOW_S (120), SETTLE_S (20), SETTLE_MAX_S (240), INTERVAL_S (5),
#        MEMSHARE_HIDE (linux-6.1: the agents run Debian 12's 6.1 fallbacks, KSM savings from
#        pages_sharing and contributions from ksm_merging_pages; the section's title says so,
#        and the run stops if an agent did not take that path)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(realpath "${1:-$top/build-bballoon}")
agent=$build/qmp-plugin/memshare-agent
kernel=$build/tests/guest/vmlinuz
initrd=$build/tests/guest/initramfs.img
qmpcmd=$top/tests/tracking/qmp-cmd.py
out_md=${MS_BALLOON_OUT:-$here/RESULTS.part.md}

ROUNDS=${ROUNDS:-2}
MEM_MIB=768 BASE_MIB=384 NG=3
FILL_MIB=${FILL_MIB:-160}
DATA_MIB=${DATA_MIB:-128}
WARM_S=${WARM_S:-60}
WINDOW_S=${WINDOW_S:-120}
SETTLE_S=${SETTLE_S:-20}
SETTLE_MAX_S=${SETTLE_MAX_S:-240}
INTERVAL_S=${INTERVAL_S:-5}
MiB=$((1 << 20))

die() { echo "run-bench: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
[ "$(id -u)" = 0 ] || die "needs root (KSM, QEMU)"
ksm=/sys/kernel/mm/ksm
[ -w $ksm/run ] || die "$ksm/run is not writable"
if [ -z "${MEMSHARE_HIDE:-}" ] && [ -e $ksm/general_profit ]; then saved_from=general_profit; else saved_from="pages_sharing x 4 KiB"; fi
# Always through ninja: a stale initramfs would run an old scenario.
[ -d "$build" ] || meson setup "$build" "$top" > /dev/null
ninja -C "$build" qmp-plugin/memshare-agent tests/guest/vmlinuz tests/guest/initramfs.img > /dev/null
for f in "$agent" "$kernel" "$initrd" "$qmpcmd"; do
    [ -e "$f" ] || die "$f missing (ninja -C $build && ninja -C $build tests/guest/vmlinuz tests/guest/initramfs.img)"
done

# Host KSM is shared by everyone on the machine: hold the lock for the whole
# run and put the previous settings back at exit.
exec 9>/tmp/memshare-ksm.lock
log "waiting for /tmp/memshare-ksm.lock"
flock 9
saved_ksm="$(cat $ksm/run) $(cat $ksm/pages_to_scan) $(cat $ksm/sleep_millisecs)"
# on the real disk: QEMU's cache=none needs O_DIRECT, which tmpfs refuses
tmp=$(mktemp -d /var/tmp/ms-balloon-bench.XXXXXX)
pids=() qpids=() qpid_of=() apid_of=() retries=()
stop_guests() {
    local p
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    pids=() qpids=()
}
cleanup() {
    stop_guests
    set -- $saved_ksm
    echo "$2" > $ksm/pages_to_scan; echo "$3" > $ksm/sleep_millisecs; echo "$1" > $ksm/run
    if [ "${MS_KEEP_TMP:-0}" = 1 ]; then echo "run-bench: raw data kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the workload and its disks: one image per guest, each with its own
# random data, so KSM cannot merge the guests' page caches either
gcc -static -O2 -std=gnu11 -Wall -Wextra -o "$tmp/randread" "$here/randread.c" || die "cannot build randread"
log "building $NG data images of $DATA_MIB MiB"
for g in $(seq 1 $NG); do
    mkdir -p "$tmp/tree"
    cp "$tmp/randread" "$tmp/tree/randread"
    head -c $((DATA_MIB * MiB)) /dev/urandom > "$tmp/tree/data"
    mke2fs -q -F -t ext4 -b 4096 -O ^has_journal -L rr$g -d "$tmp/tree" "$tmp/data$g.img" $((DATA_MIB + 48))M \
        > /dev/null || die "mke2fs failed"
    rm -rf "$tmp/tree"
done
sync

uuid() { printf '9c1db000-0000-4000-8000-%012d' "$1"; }
st() { grep -m1 "^$3=" "$1/run/domains/$(uuid "$2")/status" 2>/dev/null | cut -d= -f2; }
ksmd_ticks() { local p; p=$(pgrep -x ksmd | head -1); [ -n "$p" ] && awk '{print $14 + $15}' "/proc/$p/stat" || echo 0; }
last_rr() { tr -d '\r' < "$1" | grep -o 'MS-RR i=[0-9]*' | tail -1 | cut -d= -f2; }

# history: one line per sample: SECONDS-SINCE-PHASE-START GUEST TARGET ACTUAL (bytes)
sample() {   # sample DIR MODE T0
    local g t a now
    now=$(( $(date +%s) - $3 ))
    for g in $(seq 1 $NG); do
        if [ "$2" = memshare ]; then
            t=$(st "$1" $g target); a=$(st "$1" $g actual)
        else
            t=$((BASE_MIB * MiB))
            a=$(timeout 20 python3 "$qmpcmd" "$1/g$g.sock" query-balloon 2>/dev/null | grep -o '"actual": [0-9]*' | grep -o '[0-9]*$')
        fi
        echo "$now $g ${t:-0} ${a:-0}" >> "$1/history"
    done
}
# wait_until DIR MODE T0 TIMEOUT CMD...: samples every 2 s while waiting
wait_until() {
    local d=$1 m=$2 t0=$3 n=$4; shift 4
    local end=$(( $(date +%s) + n ))
    while :; do
        sample "$d" "$m" "$t0"
        "$@" && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 2
    done
}
all_filled() {   # all_filled DIR MODE: every guest runs the workload; a guest
    # that panicked at boot (TCG on a loaded host) is booted again, twice at most
    local g ok=0
    for g in $(seq 1 $NG); do
        grep -q "MS-RR-START" "$1/g$g.serial" && continue
        ok=1
        if grep -q -a "Kernel panic" "$1/g$g.serial"; then
            retries[$g]=$(( ${retries[$g]:-0} + 1 ))
            [ "${retries[$g]}" -le 2 ] || die "rr$g panicked ${retries[$g]} times: $(grep -a -m1 'Kernel panic' "$1/g$g.serial")"
            log "rr$g panicked at boot ($(grep -a -m1 'Kernel panic' "$1/g$g.serial" | tr -d '\r' | cut -c1-80)); booting it again"
            kill -9 "${qpid_of[$g]}" ${apid_of[$g]:+"${apid_of[$g]}"} 2>/dev/null
            wait "${qpid_of[$g]}" 2>/dev/null
            mv "$1/g$g.serial" "$1/g$g.serial.panic${retries[$g]}"
            rm -f "$1/g$g.sock"
            boot "$1" "$g" "$2"
        fi
    done
    return $ok
}
all_at_base() {   # the last sample of every guest within 2 MiB of base
    local g a
    for g in $(seq 1 $NG); do
        a=$(awk -v g=$g '$2 == g {a = $4} END {print a + 0}' "$1/history")
        [ "$a" -gt 0 ] && [ "$a" -le $(( (BASE_MIB + 2) * MiB )) ] || return 1
    done
}
all_grown() { local g t; for g in $(seq 1 $NG); do t=$(st "$1" $g target); [ "${t:-0}" -gt $((BASE_MIB * MiB)) ] || return 1; done; }
targets() { local g; for g in $(seq 1 $NG); do st "$1" $g target; done | tr '\n' ' '; }
stable_since=0 stable_last=""
settled() {   # targets unchanged for SETTLE_S
    local now cur
    now=$(date +%s); cur=$(targets "$1")
    if [ "$cur" != "$stable_last" ]; then stable_last=$cur; stable_since=$now; return 1; fi
    [ $((now - stable_since)) -ge "$SETTLE_S" ]
}

boot() {   # boot DIR G MODE
    local d=$1 g=$2 u; u=$(uuid "$2")
    cat > "$d/g$g.xml" <<XML
<domain type='qemu'><name>rr$g</name><uuid>$u</uuid>
<memory unit='MiB'>$MEM_MIB</memory><currentMemory unit='MiB'>$BASE_MIB</currentMemory>
<os><type arch='x86_64' machine='q35'>hvm</type></os>
<devices><memballoon model='virtio'><alias name='balloon0'/></memballoon></devices>
<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>
<memshare:balloon mode='ksm-share' division='equal' period='2s'/>
<memshare:stats period='2s'/></memshare:policy></metadata></domain>
XML
    qemu-system-x86_64 -name "rr$g" -uuid "$u" -M q35 -accel tcg -m $MEM_MIB -smp 1 \
        -object memory-backend-ram,id=pc.ram,size=${MEM_MIB}M -machine memory-backend=pc.ram \
        -nodefaults -display none -no-user-config -device virtio-balloon-pci,id=balloon0 \
        -drive "file=$tmp/data$g.img,format=raw,if=none,id=rr,cache=none,aio=native,readonly=on" \
        -device virtio-blk-pci,drive=rr \
        -qmp "unix:$d/g$g.sock,server=on,wait=off" -serial "file:$d/g$g.serial" \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 quiet no_timer_check ms.scenario=randread ms.fill=$FILL_MIB ms.secs=7200 ms.interval=$INTERVAL_S" \
        > "$d/g$g.qemu.log" 2>&1 9>&- &
    local q=$!; pids+=($q); qpids+=($q); qpid_of[$g]=$q; apid_of[$g]=""
    local i
    for i in $(seq 1 60); do [ -S "$d/g$g.sock" ] && break; sleep 0.5; done
    [ -S "$d/g$g.sock" ] || die "QEMU rr$g did not start: $(cat "$d/g$g.qemu.log")"
    if [ "$3" = memshare ]; then
        "$agent" --uuid "$u" --qmp-socket "$d/g$g.sock" --domain-xml "$d/g$g.xml" --qemu-pid "$q" \
            >> "$d/g$g.agent.log" 2>&1 9>&- &
        pids+=($!); apid_of[$g]=$!
    else
        python3 "$qmpcmd" "$d/g$g.sock" "balloon:{\"value\": $((BASE_MIB * MiB))}" > /dev/null \
            || die "QMP balloon on rr$g failed"
    fi
}

# summarise DIR G I0 I1: the guest's MS-RR intervals I0 < i <= I1 ->
#   "ops_s p50_us p99_us intervals cache_mib memtotal_mib"
summarise() {
    tr -d '\r' < "$1/g$2.serial" | awk -v a="$3" -v b="$4" '
    function mid(i,  e, s, lo) {
        if (i < 16) return i
        e = 4 + int((i - 16) / 8); s = (i - 16) % 8; lo = (8 + s) * 2 ^ (e - 3)
        return lo + 2 ^ (e - 3) / 2
    }
    function pct(p,  r, seen, i) {
        r = int(p * ops); if (r >= ops) r = ops - 1
        seen = 0
        for (i = 0; i <= maxi; i++) { seen += h[i]; if (seen > r) return mid(i) }
        return mid(maxi)
    }
    /^MS-RR i=/ {
        delete v
        for (k = 2; k <= NF; k++) { p = index($k, "="); v[substr($k, 1, p - 1)] = substr($k, p + 1) }
        i = v["i"] + 0
        if (i <= a || i > b) next
        ops += v["ops"]; dt += v["dt"]; n++
        cache = (v["cached_kib"] - v["shmem_kib"]) / 1024; mt = v["memtotal_kib"] / 1024
        m = split(v["h"], hs, ",")
        for (j = 1; j <= m; j++) { split(hs[j], q, ":"); h[q[1] + 0] += q[2]; if (q[1] + 0 > maxi) maxi = q[1] + 0 }
    }
    END {
        if (n == 0 || dt == 0) { print "0 0 0 0 0 0"; exit }
        printf "%.0f %d %d %d %.0f %.0f\n", ops / dt, pct(0.50), pct(0.99), n, cache, mt
    }'
}

# direction changes of each target in the history after second S
oscillation() {   # oscillation DIR G S
    awk -v g="$2" -v s="$3" '$2 == g && $1 >= s {
        if (have && $3 != last) { d = ($3 > last) ? 1 : -1; if (pd && d != pd) n++; pd = d }
        last = $3; have = 1 } END { print n + 0 }' "$1/history"
}

results=$tmp/results   # MODE ROUND G ops_s p50 p99 n cache memtotal target actual oom osc changes
phases=$tmp/phases     # MODE ROUND settle_s window_s ksmd_cpu_pct pages_sharing saved_mib foreign_sharing load pss_mib other_qemus
: > "$results"; : > "$phases"

run_phase() {   # run_phase MODE ROUND
    local mode=$1 r=$2 d=$tmp/$1-$2 g
    mkdir -p "$d/run"
    export MEMSHARE_RUNTIME_DIR=$d/run MEMSHARE_CONFIG=$d/memshare.conf
    # a fixed reserve: the host's MemAvailable must not decide the benchmark
    # one tenant's guests: they share (docs/security.md), as before groups existed
    printf '[balloon]\nhost-reserve=512MiB\n[sharing]\ndefault-group=host\n' > "$MEMSHARE_CONFIG"
    # Unmerge whatever is merged (others' guests too): the agents divide the
    # host-wide KSM saving, so pages merged before the phase would be handed
    # out as if our guests had saved them.
    local foreign; foreign=$(cat $ksm/pages_sharing)
    echo 2 > $ksm/run
    local i
    for i in $(seq 1 60); do [ "$(cat $ksm/pages_sharing)" = 0 ] && break; sleep 1; done
    echo 0 > $ksm/run
    local t0; t0=$(date +%s)
    : > "$d/history"
    log "$mode round $r: booting $NG guests"
    for g in $(seq 1 $NG); do boot "$d" $g "$mode"; done
    retries=()
    wait_until "$d" "$mode" "$t0" 400 all_filled "$d" "$mode" || die "$mode: the guests did not start the workload (see $d/*.serial)"
    wait_until "$d" "$mode" "$t0" 120 all_at_base "$d" || die "$mode: balloons did not reach base"
    log "$mode round $r: filled, balloons at base, workload running"
    local settle=0 osc_from=0
    if [ "$mode" = memshare ]; then
        echo 1000 > $ksm/sleep_millisecs; echo 5000 > $ksm/pages_to_scan; echo 20 > $ksm/sleep_millisecs
        echo 1 > $ksm/run
        local tk; tk=$(date +%s)
        wait_until "$d" "$mode" "$t0" "$SETTLE_MAX_S" all_grown "$d" || log "memshare: not every target grew above base"
        stable_since=0 stable_last=""
        wait_until "$d" "$mode" "$t0" "$SETTLE_MAX_S" settled "$d" || log "memshare: targets did not settle within ${SETTLE_MAX_S}s"
        # settled when the targets last changed, not when we noticed
        settle=$(( stable_since - tk )); osc_from=$(( stable_since - t0 ))
        log "memshare round $r: settled $settle s after KSM started: targets $(targets "$d")"
        # which kernel interfaces the agents used (ms-kcompat's start line)
        for g in $(seq 1 $NG); do
            kernel_line=$(grep -m1 -o "kernel $(uname -r): pagemap .*" "$d/g$g.agent.log" || true)
            [ -n "$kernel_line" ] || die "agent rr$g logged no kernel interfaces (see $d/g$g.agent.log)"
            if [ -n "${MEMSHARE_HIDE:-}" ]; then
                grep -q "hidden by MEMSHARE_HIDE" <<< "$kernel_line" \
                    || die "MEMSHARE_HIDE=$MEMSHARE_HIDE, but agent rr$g hid nothing: $kernel_line"
            fi
        done
    fi
    # warm-up: the guests' caches fill (and, with memshare, grow into the new RAM)
    local tw; tw=$(( $(date +%s) + WARM_S ))
    wait_until "$d" "$mode" "$t0" "$WARM_S" bash -c "[ \$(date +%s) -ge $tw ]"
    local ws=$(( $(date +%s) - t0 ))
    [ "$mode" = static ] && osc_from=$ws
    local others=$(( $(pgrep -c -f '^qemu-system') - NG ))
    local i0=() i1=() n0=() k0 k1 load
    for g in $(seq 1 $NG); do i0[$g]=$(last_rr "$d/g$g.serial"); n0[$g]=$(grep -c "balloon: target" "$d/g$g.agent.log" 2>/dev/null); done
    k0=$(ksmd_ticks)
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "$mode round $r: measuring ${WINDOW_S}s"
    local te; te=$(( $(date +%s) + WINDOW_S ))
    wait_until "$d" "$mode" "$t0" "$WINDOW_S" bash -c "[ \$(date +%s) -ge $te ]"
    k1=$(ksmd_ticks)
    load="$load-$(cut -d' ' -f1 /proc/loadavg)"
    local win=$(( $(date +%s) - t0 - ws ))
    for g in $(seq 1 $NG); do i1[$g]=$(last_rr "$d/g$g.serial"); done
    local hz; hz=$(getconf CLK_TCK)
    local cpu; cpu=$(awk -v a="$k0" -v b="$k1" -v hz="$hz" -v w="$win" 'BEGIN { printf "%.1f", (b - a) / hz / w * 100 }')
    # what the guests really cost the host: PSS divides KSM-merged pages
    # among the processes that share them
    local pss=0 q
    for q in "${qpids[@]}"; do pss=$(( pss + $(awk '/^Pss:/ {print $2}' "/proc/$q/smaps_rollup" 2>/dev/null || echo 0) )); done
    local sharing saved_mib
    sharing=$(cat $ksm/pages_sharing)
    # the saving as the agents read it: general_profit, or on 6.1 (and
    # under MEMSHARE_HIDE) pages_sharing's bytes
    if [ "$saved_from" = general_profit ]; then
        saved_mib=$(( $(cat $ksm/general_profit) / MiB ))
    else
        saved_mib=$(( sharing * 4096 / MiB ))
    fi
    echo "$mode $r $settle $win $cpu $sharing $saved_mib $foreign $load $((pss / 1024)) $others" >> "$phases"
    for g in $(seq 1 $NG); do
        local s t a oom osc ch
        s=$(summarise "$d" $g "${i0[$g]:-0}" "${i1[$g]:-0}")
        t=$(awk -v g=$g '$2 == g {t = $3} END {print int(t / 1048576)}' "$d/history")
        a=$(awk -v g=$g '$2 == g {a = $4} END {print int(a / 1048576)}' "$d/history")
        oom=$(tr -d '\r' < "$d/g$g.serial" | grep -c -E 'Out of memory|oom-kill|MS-RR-DONE rc=[1-9]')
        osc=$(oscillation "$d" $g "$osc_from")
        ch=0
        [ -f "$d/g$g.agent.log" ] && ch=$(( $(grep -c "balloon: target" "$d/g$g.agent.log") - ${n0[$g]:-0} ))
        echo "$mode $r $g $s $t $a $oom $osc $ch" >> "$results"
        log "$mode round $r rr$g: $s target ${t} actual ${a} oom $oom osc $osc"
    done
    stop_guests
    echo 0 > $ksm/run
    cp "$d/history" "$tmp/history-$mode-$r" 2>/dev/null
}

order=(static memshare)
[ "$ROUNDS" -ge 2 ] && order=(static memshare memshare static)
k=0
for m in "${order[@]}"; do
    k=$((k + 1))
    run_phase "$m" $(( (k + 1) / 2 ))
done

# --- the report
ratio=$(awk '$1 == "memshare" {m += $4; nm++} $1 == "static" {s += $4; ns++}
    END { if (s > 0 && ns > 0) printf "%.2f", (m / nm) / (s / ns); else print "n/a" }' "$results")
met=$(awk -v r="$ratio" 'BEGIN { print (r != "n/a" && r + 0 >= 1.20) ? "met" : "NOT met" }')
{
    echo "## KSM savings handed back by the balloon (bench/balloon/run-bench.sh, DATA_MIB=$DATA_MIB)${MEMSHARE_HIDE:+ (Debian 12 6.1 fallbacks)}"
    echo
    if [ -n "${MEMSHARE_HIDE:-}" ]; then
        echo "The agents ran with \`MEMSHARE_HIDE=$MEMSHARE_HIDE\`: the paths a Debian 12 host's own 6.1 kernel takes"
        echo "(savings from \`pages_sharing\`, no \`general_profit\`; contributions from \`ksm_merging_pages\`, no"
        echo "\`ksm_process_profit\`; pread instead of PAGEMAP_SCAN), on this $(uname -r) host."
        echo
    fi
    [ -n "${kernel_line:-}" ] && { echo "Agents' kernel interfaces: \`${kernel_line}\`."; echo; }
    echo "Three bare-QEMU TCG guests (1 vCPU, \`<memory>\` $MEM_MIB MiB, base $BASE_MIB MiB) each fill $FILL_MIB MiB"
    echo "of tmpfs with identical pages, then read 4 KiB at random offsets (buffered, POSIX_FADV_RANDOM) from"
    echo "their own $DATA_MIB MiB random-data file on a virtio-blk ext4 disk (host \`cache=none,aio=native\`)."
    echo "**static**: no agent, no KSM, balloons held at base. **memshare**: one memshare-agent per guest,"
    echo "\`<balloon mode='ksm-share' division='equal' period='2s'/>\`, KSM on (pages_to_scan 5000, sleep 20 ms)."
    echo "Phases ran one after another (order: ${order[*]}); each measured ${WINDOW_S}s after the balloons"
    echo "settled (targets unchanged ${SETTLE_S}s) plus ${WARM_S}s of cache warm-up; latency percentiles come"
    echo "from the guests' merged per-interval histograms (12.5% buckets), guest clock."
    echo
    echo "Machine: $(nproc) cores, $(uname -r), $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), run $(date -u +%Y-%m-%dT%H:%MZ)."
    echo "The machine is shared: other engineers' QEMU guests ran at the same time (count per phase below)."
    echo
    echo "| set-up | round | guest | ops/s | p50 µs | p99 µs | guest cache MiB | guest MemTotal MiB | balloon target / actual MiB | OOM | target direction changes after settling | agent target changes in window |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk '{ printf "| %s | %s | rr%s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $8, $9, $10, $11, $12, $13, $14 }' "$results"
    echo
    echo "| set-up | round | settled s after KSM on | window s | ksmd CPU % of one core | host PSS of the 3 QEMUs MiB | pages_sharing at end | KSM saving MiB (${saved_from}) | pages_sharing before (unmerged at phase start) | other QEMUs | load avg start-end |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $10, $6, $7, $8, $11, $9 }' "$phases"
    echo
    echo "Throughput memshare / static (mean per-guest ops/s): **${ratio}x**; goal >= 1.20x: **$met**."
    for g in $(seq 1 $NG); do
        awk -v g=$g '$3 == g && $1 == "memshare" {m += $4; nm++} $3 == g && $1 == "static" {s += $4; ns++}
            END { if (s > 0 && nm > 0) printf "rr%s %.2fx; ", g, (m / nm) / (s / ns) }' "$results"
    done
    echo
    echo
    awk -v d="$DATA_MIB" '$1 == "static" {c += $8; n++} END { if (n && c) printf "Data file per guest: %d MiB = %.2fx the page cache a static guest had (mean %.0f MiB).\n", d, d / (c / n), c / n }' "$results"
    echo
    echo "Read the ratio with that in mind: it measures what the memory KSM saved is worth to a"
    echo "cache-bound workload. When the data fits the page cache of a guest ballooned up but not of a"
    echo "static one, misses (disk reads through TCG) become hits and the ratio is large; data much"
    echo "larger than either cache, or small enough for both, takes it towards 1. The figures that do"
    echo "not depend on the workload are the balloon sizes (what was handed back), no OOM, and no"
    echo "target direction changes after settling (no oscillation)."
    echo
    echo "Balloon history (memshare; seconds since the phase began: target/actual MiB per guest, last sample of every 10 s):"
    echo
    echo '```'
    for h in "$tmp"/history-memshare-*; do
        [ -f "$h" ] || continue
        echo "# ${h##*/}"
        awk '{ key = $1 - $1 % 10; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
               row[key, $2] = sprintf("%d/%d", $3 / 1048576, $4 / 1048576); if ($2 > ng) ng = $2 }
             END { for (i = 1; i <= n; i++) { k = order[i]; printf "%4ds", k
                   for (g = 1; g <= ng; g++) printf "  rr%d %9s", g, row[k, g]; printf "\n" } }' "$h"
    done
    echo '```'
} > "$out_md.new"
mv "$out_md.new" "$out_md"
cat "$out_md"
