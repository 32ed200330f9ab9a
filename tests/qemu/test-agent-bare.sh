#!/bin/bash
# tests/qemu/test-agent-bare.sh: the agent against a bare QEMU (TCG) over a
# direct QMP socket: it attaches, reads the QEMU version and the balloon size
# over QMP, publishes its status, and exits cleanly, removing its runtime
# files, when QEMU goes away.
#   env: MS_AGENT, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/../lib/qemu.sh"

qemu_test_tmp ms-agent-bare
agent_pid=

uuid=5a0d1e6c-2f8b-4c59-9a43-0b7f7d1e2a11
export MEMSHARE_RUNTIME_DIR=$tmp/run
qemu_domain_xml bare1 "$uuid" 256 "" "<memshare:stats period='1s'/>" > "$tmp/domain.xml"

qemu_start bare1 uuid="$uuid" mem=256 guest="ms.scenario=idle" || bail "QEMU did not create its QMP socket"
qemu_pid=$QEMU_PID

"$MS_AGENT" --uuid "$uuid" --qmp-socket "$tmp/bare1.sock" --domain-xml "$tmp/domain.xml" \
    --qemu-pid "$qemu_pid" --verbose > "$tmp/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")

status=$MEMSHARE_RUNTIME_DIR/domains/$uuid/status
if wait_for 10 grep -q "attached: QEMU 7" "$tmp/agent.log"; then
    ok "agent attached and logged the QEMU version"
else
    cat "$tmp/agent.log" >&2; not_ok "agent attached and logged the QEMU version"
fi
ver=$(qemu-system-x86_64 --version | sed -n 's/QEMU emulator version \([0-9.]*\).*/\1/p')
check "status file names QEMU $ver" grep -q "^version=$ver" "$status"
check "balloon actual is 256 MiB" grep -q "^actual=268435456$" "$status"
check "agent logged the balloon size" grep -q "balloon actual 256 MiB" "$tmp/agent.log"
check "agent logged the memdev" grep -q "memdev 'pc.ram': 256 MiB" "$tmp/agent.log"
check "pid file holds the agent's pid" grep -qx "$agent_pid" "$MEMSHARE_RUNTIME_DIR/domains/$uuid/agent.pid"

# A second agent for the same domain steps aside (one agent per domain).
"$MS_AGENT" --uuid "$uuid" --qmp-socket "$tmp/bare1.sock" > "$tmp/agent2.log" 2>&1 || true
check "a second agent refuses to double-serve" grep -q "another agent already serves" "$tmp/agent2.log"
check "the first agent still runs" kill -0 "$agent_pid"

qemu_stop bare1
if wait_for 5 bash -c "! kill -0 $agent_pid 2>/dev/null"; then
    wait "$agent_pid"; rc=$?; agent_pid=
    check "agent exited with status 0 when QEMU died" test "$rc" = 0
else
    not_ok "agent exited when QEMU died"
fi
check "runtime directory removed" test ! -e "$MEMSHARE_RUNTIME_DIR/domains/$uuid"
done_testing
