#!/bin/bash
# tests/faults/test-many-domains.sh: 16 domains with a memshare policy
# started at once (16 background `virsh start`) in one isolated libvirtd on
# a 2-core machine: every start succeeds, every domain gets exactly one
# agent that publishes a status file with used-page figures; then all are
# destroyed at once and every agent and runtime directory is gone. The
# domains have no kernel and no boot device (64 MiB q35, they sit in the
# firmware): the hook and the agents are what is under test, not guests.
# Prints, as diagnostics only (never asserted), how long each `virsh start`
# took (the hook's prepare/start/started run inside it) and how long each
# agent took to publish its first status.
#   env: MS_HOOK, MS_AGENT
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

N=${MS_MANY_DOMAINS:-16}
LVT_HOOK=none lvt_setup ms-many
# The hook under a thin timing wrapper: how long libvirtd waits for each
# hook call (prepare, start, started, ...) is a diagnostic of this test.
cat > "$dir/hook-timed" <<HOOK
#!/bin/bash
s=\$(date +%s%N); "$MS_HOOK" "\$@"; rc=\$?; e=\$(date +%s%N)
echo "\$1 \$2 \$rc \$(( (e - s) / 1000000 ))" >> "$dir/hook-times"
exit \$rc
HOOK
chmod 755 "$dir/hook-timed"
LVT_HOOK=$dir/hook-timed lvt_install "$LVT_CONF_ONE_TENANT" || bail "cannot install the hook"
lvt_start
rt=$dir/run-memshare/domains
logs=$dir/log-memshare
uuid() { printf '9d3e1f72-5b2a-4e77-8f8b-4c2f2e6a%04x' "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

for i in $(seq "$N"); do
    cat > "$dir/m$i.xml" <<XML
<domain type='qemu'>
  <name>m$i</name>
  <uuid>$(uuid "$i")</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='virtio'/>
  </devices>
  <metadata><memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='2s'/></memshare:policy></metadata>
</domain>
XML
    V define "$dir/m$i.xml" >/dev/null || bail "define m$i"
done

# All at once: each virsh start in the background records its time and status.
# (wait for these pids only: a bare `wait` would wait for vmenv's holder too)
t0=$(now_ms)
jobs_=()
for i in $(seq "$N"); do
    ( s=$(now_ms); V start "m$i" > "$dir/m$i.start" 2>&1; rc=$?
      echo "$rc $s $(now_ms)" > "$dir/m$i.timing" ) &
    jobs_+=($!)
done
wait "${jobs_[@]}"
echo "# $N virsh start in parallel took $(( $(now_ms) - t0 )) ms in all; load: $(cut -d' ' -f1-3 /proc/loadavg)"

failed=0
for i in $(seq "$N"); do
    read -r rc s e < "$dir/m$i.timing"
    [ "$rc" = 0 ] || { failed=$((failed + 1)); sed "s/^/# m$i: /" "$dir/m$i.start"; }
    echo "# m$i: virsh start ${rc/#0/ok} in $((e - s)) ms"
done
check "all $N virsh start succeeded ($failed failed)" test "$failed" = 0
running=$(V list --name | grep -c .)
check "$N domains running ($running)" test "$running" = "$N"

# every agent attached: alive, exactly one per domain, status with figures
all_alive() { local i; for i in $(seq "$N"); do lvt_agent_alive "$(uuid "$i")" || return 1; done; }
all_status() { local i; for i in $(seq "$N"); do grep -q '^ticks=' "$rt/$(uuid "$i")/status" 2>/dev/null || return 1; done; }
all_used() { local i; for i in $(seq "$N"); do grep -Eq '^used=[0-9]+' "$rt/$(uuid "$i")/status" 2>/dev/null || return 1; done; }
check "all $N agents running" wait_for 60 all_alive
check "all $N status files published" wait_for 120 all_status
check "all $N report used-page figures" wait_for 120 all_used
# exactly one agent per domain: every process with the domain's UUID on its
# command line is the agent in agent.pid or its --respawn supervisor
one_agent() {
    local u=$1 a m pp
    a=$(lvt_agent_pid "$u") && [ -n "$a" ] && kill -0 "$a" 2>/dev/null || return 1
    pp=$(ps -o ppid= -p "$a" | tr -d ' ')
    for m in $(pgrep -f -- "memshare-agent.*--uuid $u"); do
        [ "$m" = "$a" ] || [ "$m" = "$pp" ] || return 1
    done
}
nagents=0
for i in $(seq "$N"); do
    u=$(uuid "$i")
    one_agent "$u" && nagents=$((nagents + 1))
    read -r _ s _ < "$dir/m$i.timing"
    att=$(grep -m1 -o "attached: QEMU [^ ]*" "$logs/$u.log" 2>/dev/null)
    echo "# m$i: agent $(lvt_agent_pid "$u") ${att:-not attached}"
done
check "every domain has exactly one agent ($nagents of $N)" test "$nagents" = "$N"
check "every agent log says attached" \
    bash -c "for f in '$logs'/*.log; do grep -q 'attached: QEMU' \"\$f\" || exit 1; done; [ \$(ls '$logs'/*.log | wc -l) = $N ]"
pids=()
for i in $(seq "$N"); do pids+=("$(lvt_agent_pid "$(uuid "$i")")"); done
crit=$(grep -l "CRITICAL\|assertion" "$logs"/*.log 2>/dev/null | wc -l)
check "no agent logged a critical warning or assertion ($crit)" test "$crit" = 0

# how long libvirtd waited for the hook, per operation (diagnostic)
hook_stats() {
    local op
    for op in "$@"; do
        awk -v op="$op" '$2 == op { print $4, $3 }' "$dir/hook-times" 2>/dev/null | sort -n |
            awk -v op="$op" '{ t[NR] = $1; if ($2 != 0) bad++ } END { if (NR)
                printf "# hook %-8s x%d: min %d ms, median %d ms, max %d ms, %d non-zero exits\n",
                       op, NR, t[1], t[int((NR + 1) / 2)], t[NR], bad }'
    done
}
hook_stats prepare start started

# destroy all at once
t0=$(now_ms)
jobs_=()
for i in $(seq "$N"); do V destroy "m$i" >/dev/null 2>&1 & jobs_+=($!); done
wait "${jobs_[@]}"
echo "# $N virsh destroy in parallel took $(( $(now_ms) - t0 )) ms"
check "no domain running" wait_for 30 bash -c "[ -z \"\$(nsenter -t $VMENV_PID -m -- virsh -q -c qemu:///system list --name)\" ]"
all_gone() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
check "every agent process gone" wait_for 20 all_gone
hook_stats stopped release
check "every runtime directory gone" wait_for 20 bash -c "[ -z \"\$(ls -A '$rt' 2>/dev/null)\" ]"
left=$(pgrep -fc -- "memshare-agent.*--uuid 9d3e1f72-5b2a-4e77-8f8b-4c2f2e6a" 2>/dev/null || true)
check "no memshare-agent of this test left ($left)" test "${left:-0}" = 0
done_testing
