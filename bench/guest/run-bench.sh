#!/bin/bash
# bench/guest/run-bench.sh: guest slowdown with used-page tracking on vs off.
# Boots the test guest (TCG, q35, 1 GiB, scenario cpu-mem: ROUNDS x write
# 64 MiB into tmpfs + md5sum, timed by the guest from /proc/uptime) REPS
# times per configuration, alternating the configurations so drift hits
# all of them alike:
#   off       no agent
#   on-1s     the agent, <tracking used-pages='on' period='1s'/>
#   on-100ms  the agent, period='100ms' (ten times the default rate)
# Boot time = wall clock from QEMU start to MS-GUEST-READY on the serial
# console (the agent attaches as soon as QMP is up, i.e. it scans during
# boot). Loop time = sum of the guest's MS-ROUND times. Prints medians and
# the ratio to 'off' as markdown. Not a test: timings depend on the machine.
#   usage: run-bench.sh BUILDDIR [REPS (5)] [ROUNDS (5)]
set -euo pipefail
build=$(cd "${1:?usage: run-bench.sh BUILDDIR [REPS] [ROUNDS]}" && pwd)
reps=${2:-5}
rounds=${3:-5}
ninja -C "$build" qmp-plugin/memshare-agent tests/guest/vmlinuz tests/guest/initramfs.img > /dev/null
agent_bin=$build/qmp-plugin/memshare-agent
tmp=$(mktemp -d /tmp/ms-bench-guest.XXXXXX)
qemu_pid= agent_pid=
cleanup() {
    [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null || true
    [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
source "$(dirname "$0")/../../tests/lib/qemu.sh"
uuid=0b7e8c21-6d3f-4e5a-8b9c-1d2e3f4a5b6c
export MEMSHARE_RUNTIME_DIR=$tmp/run

domain_xml() { # PERIOD
    cat <<XML
<domain type='qemu'><name>benchg</name><uuid>$uuid</uuid>
  <memory unit='MiB'>1024</memory><currentMemory unit='MiB'>1024</currentMemory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><memballoon model='virtio' freePageReporting='on'/></devices>
  <metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>
    <memshare:tracking used-pages='on' period='$1'/>
  </memshare:policy></metadata></domain>
XML
}

# run CONFIG: one boot; appends "CONFIG boot_ms loop_ms scans" to results
run() {
    local cfg=$1 d=$tmp/$1
    rm -rf "$d" "$MEMSHARE_RUNTIME_DIR"; mkdir -p "$d"
    local t0; t0=$(date +%s%N)
    QEMU_DIR=$d qemu_start g mem=1024 balloon=fpr kernel="$build/tests/guest/vmlinuz" \
        initrd="$build/tests/guest/initramfs.img" guest="ms.scenario=cpu-mem ms.size=64 ms.rounds=$rounds" \
        || { echo "QEMU did not start ($cfg)" >&2; exit 1; }
    qemu_pid=$QEMU_PID
    if [ "$cfg" != off ]; then
        domain_xml "${cfg#on-}" > "$d/domain.xml"
        "$agent_bin" --uuid "$uuid" --qmp-socket "$d/g.sock" --domain-xml "$d/domain.xml" \
            --qemu-pid "$qemu_pid" --verbose > "$d/agent.log" 2>&1 &
        agent_pid=$!
    fi
    local ready=
    for _ in $(seq 6000); do
        if grep -q MS-GUEST-READY "$d/g.console" 2>/dev/null; then ready=$(date +%s%N); break; fi
        sleep 0.01
    done
    [ -n "$ready" ] || { echo "guest did not boot ($cfg)" >&2; exit 1; }
    for _ in $(seq 600); do grep -q MS-SCENARIO-DONE "$d/g.console" && break; sleep 0.5; done
    grep -q MS-SCENARIO-DONE "$d/g.console" || { echo "cpu-mem did not finish ($cfg)" >&2; exit 1; }
    local loop; loop=$(awk '/^MS-ROUND/ { s += $3 } END { print s }' "$d/g.console")
    local scans=0 agent_cpu=0
    if [ -n "$agent_pid" ]; then
        grep -q "tracking: memdev 'pc.ram'" "$d/agent.log" || { echo "agent did not track ($cfg)" >&2; cat "$d/agent.log" >&2; exit 1; }
        scans=$(sed -n 's/^scan-us=//p' "$MEMSHARE_RUNTIME_DIR/domains/$uuid/status" 2>/dev/null | head -1)
        # the agent's own CPU time (utime + stime, clock ticks -> ms)
        agent_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$agent_pid/stat")
        kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=
    fi
    kill -9 "$qemu_pid"; wait "$qemu_pid" 2>/dev/null || true; qemu_pid=
    local wall=$(( ($(date +%s%N) - t0) / 1000000 ))
    echo "$cfg $(( (ready - t0) / 1000000 )) $loop ${scans:-0} $agent_cpu $wall" >> "$tmp/results"
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
configs=(off on-1s on-100ms)
for ((r = 0; r < reps; r++)); do
    # rotate the order each repetition
    for ((i = 0; i < ${#configs[@]}; i++)); do run "${configs[(i + r) % ${#configs[@]}]}"; done
done

echo "### Guest slowdown, tracking on vs off"
echo
echo "$(uname -r), $(nproc) CPUs, $(qemu-system-x86_64 --version | head -1), TCG, 1 GiB q35 guest,"
echo "$reps boots per configuration (alternated), cpu-mem: $rounds x 64 MiB dd + md5sum in tmpfs."
echo "Host load average at start: $load0, at end: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine)."
echo
python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for cfg, boot, loop, scan, cpu, wall in rows:
    by.setdefault(cfg, []).append((int(boot), int(loop), int(scan), int(cpu), int(wall)))
ob = statistics.median(x[0] for x in by["off"])
ol = statistics.median(x[1] for x in by["off"])
print("| config | boot to MS-GUEST-READY, ms (median) | ratio | loop, ms (median) | ratio | last scan, us | agent CPU, % of run | all boot ms | all loop ms |")
print("|---|---|---|---|---|---|---|---|---|")
for cfg in ("off", "on-1s", "on-100ms"):
    v = by[cfg]
    b = statistics.median(x[0] for x in v)
    l = statistics.median(x[1] for x in v)
    print("| %s | %d | %.3f | %d | %.3f | %s | %.2f | %s | %s |" % (cfg, b, b / ob, l, l / ol,
          "-" if cfg == "off" else statistics.median(x[2] for x in v),
          statistics.median(100.0 * x[3] / x[4] for x in v),
          " ".join(str(x[0]) for x in v), " ".join(str(x[1]) for x in v)))
PY
