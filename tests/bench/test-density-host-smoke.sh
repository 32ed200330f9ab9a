#!/bin/bash
# tests/bench/test-density-host-smoke.sh: the machinery of the density
# benchmark (bench/density-host), not its figures: the load generator
# counts replies and errors (against local HTTP servers), then a short run
# of the benchmark itself with every configuration (static, ksmtuned,
# ksm-max, memshare; 2 Debian guests each) shows that the budget is applied
# and read back with swap off, every QEMU is charged to it, nginx in every
# guest answers every request of the load, ksmtuned runs as its package
# starts it, memshare's features all run (DAX /usr, free page reporting on
# the balloon, the agents' tracking, balloon and KSM tuner), and an OOM
# kill in the budget (MS_DH_TEST_OOM_AT=static:2: the second static guest
# boots into the usage plus 64 MiB) is detected and reported as the reason
# the count stopped. Afterwards nothing is left: no budget cgroup, no QEMU,
# no ksmtuned, host KSM as before. No timing is asserted. About 10-25
# minutes under TCG on 2 cores (7 Debian boots).
#   env: MS_BUILD_ROOT (the built tree: Debian guest, hook, agent)
#        MS_DH_SMOKE_CONFIGS (default: all four)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# tap.sh only: the benchmark takes the KSM lock itself (lvt_ksm_lock), and
# a lock held here too would make it wait for us
source "$top/tests/lib/tap.sh"
py=/usr/bin/python3
build=${MS_BUILD_ROOT:?MS_BUILD_ROOT: the meson build root}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
[ -w /sys/kernel/mm/ksm/run ] || { echo "1..0 # SKIP no writable /sys/kernel/mm/ksm"; exit 0; }
[ -f "$build/tests/guest/debian/stamp" ] || bail "no Debian guest in $build"
tmp=$(mktemp -d /var/tmp/ms-density-smoke.XXXXXX)
srv=()
cleanup() {
    local p
    for p in "${srv[@]}"; do kill "$p" 2> /dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- the load generator on its own: one server with the right 16 KiB file,
# one with a short one, one port with nobody listening
mkdir -p "$tmp/good/ws" "$tmp/good/ms" "$tmp/short/ws"
head -c 16384 /dev/urandom > "$tmp/good/ws/f0.bin"
head -c 100 /dev/urandom > "$tmp/short/ws/f0.bin"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg=$(free_port); ps_=$(free_port); pc=$(free_port)
(cd "$tmp/good" && exec "$py" -m http.server "$pg" --bind 127.0.0.1 > /dev/null 2>&1) & srv+=($!)
(cd "$tmp/short" && exec "$py" -m http.server "$ps_" --bind 127.0.0.1 > /dev/null 2>&1) & srv+=($!)
wait_for 20 "$py" -c "import socket; socket.create_connection(('127.0.0.1', $pg)).close(); socket.create_connection(('127.0.0.1', $ps_)).close()" ||
    bail "local HTTP servers did not start"
"$py" "$top/bench/density-host/loadgen.py" --rate 10 --seconds 2 --files 1 \
    "good=127.0.0.1:$pg" "short=127.0.0.1:$ps_" "closed=127.0.0.1:$pc" > "$tmp/lg.json"
check "loadgen printed JSON" "$py" -c "import json; json.load(open('$tmp/lg.json'))"
lg() { "$py" -c "import json, sys; a = json.load(open('$tmp/lg.json')); r = a['targets']; sys.exit(0 if ($1) else 1)"; }
check "loadgen: 20 requests sent to each target (10/s for 2 s)" lg "all(t['sent'] == 20 for t in r.values())"
check "loadgen: the good server answered all 20, no errors, p50 <= p99" lg "r['good']['ok'] == 20 and r['good']['errors'] == 0 and r['good']['p50_ms'] <= r['good']['p99_ms']"
check "loadgen: a short body is an error (20 'short body')" lg "r['short']['errors'] == 20 and r['short']['error_kinds'] == {'short body': 20} and r['short']['p99_ms'] is None"
check "loadgen: a refused connection is an error (20 refused)" lg "r['closed']['errors'] == 20 and r['closed']['error_kinds'] == {'ConnectionRefusedError': 20}"
check "loadgen: reports its own CPU, send lag and achieved rate" lg "a['loadgen_cpu_pct'] >= 0 and a['send_lag_ms_max'] >= 0 and r['good']['achieved_rate'] > 0"

# --- bad knobs are refused with the knob named, before anything starts
out=$(MS_DH_BUDGET_MIB=lots bash "$top/bench/density-host/run-bench.sh" "$build" 2>&1)
check "a bad knob is refused, naming it: $out" grep -q "MS_DH_BUDGET_MIB='lots': not a positive integer" <<< "$out"
out=$(MS_DH_TEST_OOM_AT=nosuch:2 bash "$top/bench/density-host/run-bench.sh" "$build" 2>&1)
check "MS_DH_TEST_OOM_AT of a configuration not run is refused: $out" grep -q "MS_DH_TEST_OOM_AT='nosuch:2'" <<< "$out"
out=$(MS_DH_ESTIMATE_ONLY=1 bash "$top/bench/density-host/run-bench.sh" "$build" 2>&1)
check "the defaults print a duration estimate: $out" grep -Eq '^# estimate: 4 configurations x at most [0-9]+ steps' <<< "$out"

# --- the benchmark, short
cfgs=${MS_DH_SMOKE_CONFIGS:-static ksmtuned ksm-max memshare}
ksm=/sys/kernel/mm/ksm
# read under the KSM lock: whoever holds it may have KSM changed until it
# restores it at its exit
ksmv() {
    flock -w 1800 /tmp/memshare-ksm.lock bash -c \
        'echo $(cat '$ksm'/run '$ksm'/pages_to_scan '$ksm'/sleep_millisecs) $(sed -n "s/.*\[\(.*\)\].*/\1/p" '$ksm'/advisor_mode 2> /dev/null)'
}
ksm_before=$(ksmv)
# a base below <memory>: the memshare guests' balloons have room to move
MS_DH_BUILT=1 MS_DH_CONFIGS=$cfgs MS_DH_MAX_GUESTS=2 MS_DH_TEST_OOM_AT=static:2 MS_DH_BUDGET_MIB=2560 \
MS_DH_BASE_MIB=448 MS_DH_LOAD_S=10 MS_DH_SETTLE_S=5 MS_DH_RATE=4 MS_DH_PORT_BASE=$((20000 + RANDOM % 20000)) \
MS_DH_OUT=$tmp/out.md MS_DH_PLOT=$tmp/plot.png \
    bash "$top/bench/density-host/run-bench.sh" "$build" > "$tmp/stdout" 2> "$tmp/stderr"
rc=$?
sed 's/^/# /' "$tmp/stderr"
check "the benchmark exited 0" [ $rc = 0 ]
check "it printed its duration estimate" grep -q "^# estimate: $(wc -w <<< "$cfgs") configurations x at most 2 steps" "$tmp/stderr"
st() { "$py" -c "
import json, sys
st = [json.loads(l) for l in open('$tmp/out.json') if json.loads(l)['config'] == '$1']
s = {x['guests']: x for x in st}
sys.exit(0 if ($2) else 1)"; }
for c in $cfgs; do
    check "$c: budget applied and read back (2684354560 bytes), swap off in it" \
        grep -Eq "^# budget: .*-$c \((v1\) limit read back 2684354560 bytes; swap: swappiness 0, memsw.limit_in_bytes (2684354560|absent)|v2\) limit read back 2684354560 bytes; swap: (memory.swap.max 0|none));" "$tmp/stderr"
    check "$c: step 1 held: 40 requests to g1, 40 replies from nginx, no errors" \
        st "$c" "s[1]['held'] and s[1]['targets']['g1']['sent'] == 40 and s[1]['targets']['g1']['ok'] == 40 and s[1]['targets']['g1']['errors'] == 0"
    check "$c: step 1 read the budget's usage (> 0) and the guest's counters over HTTP" \
        st "$c" "s[1]['budget_usage_mib'] > 0 and s[1]['targets']['g1']['steal_pct'] is not None and s[1]['targets']['g1']['guest_oom_kills'] == 0"
    check "$c: step 1 recorded the host's CPU idle and the load generator's own CPU and rate" \
        st "$c" "s[1]['host_idle_pct'] is not None and s[1]['loadgen_cpu_pct'] is not None and s[1]['achieved_rate_min'] > 0"
    check "$c: every QEMU was charged to the budget (its pid in cgroup.procs)" \
        bash -c "[ \$(grep -Ec '^# $c: g[12] QEMU [0-9]+ in the budget' '$tmp/stderr') -ge 1 ]"
    [ "$c" = memshare ] || check "$c: the balloon is libvirt's default (no free page reporting), as without memshare" \
        grep -Eq "^# $c: g1 QEMU [0-9]+ in the budget; balloon: free-page-reporting=off" "$tmp/stderr"
    [ "$c" = static ] && continue
    check "$c: step 2: 40 replies from each of g1 and g2" \
        st "$c" "all(s[2]['targets'][g]['ok'] == 40 for g in ('g1', 'g2'))"
done
case " $cfgs " in *" static "*)
    check "static: step 2 failed with an OOM kill in the budget" \
        st static "not s[2]['held'] and 'OOM kill in the budget' in s[2]['why']"
    check "static: the report says 1 guest held, stopped by the OOM" \
        grep -Eq "^\| static \| \*\*1\*\* \| OOM kill in the budget" "$tmp/out.md" ;;
esac
case " $cfgs " in *" ksmtuned "*)
    check "ksmtuned: started from its package (ksmctl start, then the daemon with a live pid)" \
        grep -Eq "^# ksmtuned: pid [0-9]+, KSM run=1 after ksmctl start" "$tmp/stderr" ;;
esac
case " $cfgs " in *" ksm-max "*)
    check "ksm-max: KSM was running during its steps" st ksm-max "all(x['ksm_run'] == 1 for x in s.values())" ;;
esac
case " $cfgs " in *" memshare "*)
    check "memshare: both guests booted with /usr from the image on pmem, dax" \
        bash -c "[ \$(grep -Ec '^# memshare: g[12] ready after .*MS-USR /dev/pmem0 ext4 [^ ]*ro[^ ]*dax=always' '$tmp/stderr') = 2 ]"
    check "memshare: the balloon has free page reporting on (QEMU's command line)" \
        bash -c "[ \$(grep -Ec '^# memshare: g[12] QEMU [0-9]+ in the budget; balloon: free-page-reporting=on' '$tmp/stderr') = 2 ]"
    check "memshare: the agents attached the image, tracked used pages and ran the balloon" \
        st memshare "all(t['memshare']['images_attached'] == '1' and int(t['memshare']['tracking_used']) > 0 and t['memshare']['balloon_target'] is not None for t in s[2]['targets'].values())"
    check "memshare: one agent leads the KSM tuner and KSM ran" \
        st memshare "sum(t['memshare']['ksmtune_leader'] == 'true' for t in s[2]['targets'].values()) == 1 and s[2]['ksm_run'] == 1" ;;
esac
check "the report names the knobs" grep -q 'MS_DH_TEST_OOM_AT=static:2' "$tmp/out.md"
check "the plot was written" [ -s "$tmp/plot.png" ]
check "no budget cgroup left" bash -c "! find /sys/fs/cgroup -maxdepth 4 -name 'ms-density-host-*' 2> /dev/null | grep -q ."
# [q]: the pattern must not match this check's own command line
check "no QEMU of the run left" bash -c "! pgrep -f '[q]emu-system.*ms-density-host' > /dev/null"
check "no ksmtuned left" bash -c "! pgrep -f '^/bin/bash /usr/sbin/[k]smtuned' > /dev/null"
check "host KSM as before (run pages_to_scan sleep_millisecs advisor_mode: $ksm_before)" \
    [ "$(ksmv)" = "$ksm_before" ]
done_testing
