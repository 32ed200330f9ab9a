#!/bin/bash
# tests/bench/test-density-host-smoke.sh: the machinery of the density
# benchmark (bench/density-host), not its figures: the load generator
# counts replies and errors (against local HTTP servers), then a short run
# of the benchmark itself (configuration MS_DH_SMOKE_CONFIGS, default
# static; 2 Debian guests) shows that the budget is applied and read back,
# every QEMU is charged to it, a guest under load answers every request,
# and an OOM kill in the budget (MS_DH_TEST_OOM_AT=2: the second guest
# boots into the usage plus 64 MiB) is detected and reported as the reason
# the count stopped. No timing is asserted. About 4-6 minutes under TCG.
#   env: MS_BUILD_ROOT (the built tree: Debian guest, hook, agent)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
source "$top/tests/lib/tap.sh"
py=/usr/bin/python3
build=${MS_BUILD_ROOT:?MS_BUILD_ROOT: the meson build root}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
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
lg() { "$py" -c "import json, sys; r = json.load(open('$tmp/lg.json'))['targets']; sys.exit(0 if ($1) else 1)"; }
check "loadgen: 20 requests sent to each target (10/s for 2 s)" lg "all(t['sent'] == 20 for t in r.values())"
check "loadgen: the good server answered all 20, no errors, p50 <= p99" lg "r['good']['ok'] == 20 and r['good']['errors'] == 0 and r['good']['p50_ms'] <= r['good']['p99_ms']"
check "loadgen: a short body is an error (20 'short body')" lg "r['short']['errors'] == 20 and r['short']['error_kinds'] == {'short body': 20} and r['short']['p99_ms'] is None"
check "loadgen: a refused connection is an error (20 refused)" lg "r['closed']['errors'] == 20 and r['closed']['error_kinds'] == {'ConnectionRefusedError': 20}"

# --- the benchmark, short
cfgs=${MS_DH_SMOKE_CONFIGS:-static}
MS_DH_BUILT=1 MS_DH_CONFIGS=$cfgs MS_DH_MAX_GUESTS=2 MS_DH_TEST_OOM_AT=2 MS_DH_BUDGET_MIB=2048 \
MS_DH_LOAD_S=10 MS_DH_SETTLE_S=5 MS_DH_RATE=4 MS_DH_PORT_BASE=$((20000 + RANDOM % 20000)) \
MS_DH_OUT=$tmp/out.md MS_DH_PLOT=$tmp/plot.png \
    bash "$top/bench/density-host/run-bench.sh" "$build" > "$tmp/stdout" 2> "$tmp/stderr"
rc=$?
sed 's/^/# /' "$tmp/stderr"
check "the benchmark exited 0" [ $rc = 0 ]
for c in $cfgs; do
    check "$c: budget applied and read back (2147483648 bytes)" \
        grep -Eq "^# budget: .*-$c \((v1|v2)\) limit read back 2147483648 bytes" "$tmp/stderr"
    step() { "$py" -c "
import json, sys
st = [json.loads(l) for l in open('$tmp/out.json') if json.loads(l)['config'] == '$c']
s = {x['guests']: x for x in st}
sys.exit(0 if ($1) else 1)"; }
    check "$c: step 1 held: 40 requests to g1, 40 replies, no errors" \
        step "s[1]['held'] and s[1]['targets']['g1']['sent'] == 40 and s[1]['targets']['g1']['ok'] == 40 and s[1]['targets']['g1']['errors'] == 0"
    check "$c: step 1 read the budget's usage (> 0) and the guest's counters over HTTP" \
        step "s[1]['budget_usage_mib'] > 0 and s[1]['targets']['g1']['steal_pct'] is not None and s[1]['targets']['g1']['guest_oom_kills'] == 0"
    check "$c: step 2 failed with an OOM kill in the budget" \
        step "not s[2]['held'] and 'OOM kill in the budget' in s[2]['why']"
    check "$c: the report says 1 guest held, stopped by the OOM" \
        grep -Eq "^\| $c \| \*\*1\*\* \| OOM kill in the budget" "$tmp/out.md"
done
check "the report names the knobs" grep -q 'MS_DH_TEST_OOM_AT=2' "$tmp/out.md"
check "the plot was written" [ -s "$tmp/plot.png" ]
check "no budget cgroup left" bash -c "! ls -d /sys/fs/cgroup/memory/ms-density-host-* /sys/fs/cgroup/ms-density-host-* /sys/fs/cgroup/unified/ms-density-host-* 2> /dev/null | grep -q ."
# [q]: the pattern must not match this check's own command line
check "no QEMU of the run left" bash -c "! pgrep -f '[q]emu-system.*ms-density-host' > /dev/null"
done_testing
