#!/bin/bash
# tests/faults/test-agent-respawn.sh: an agent killed with SIGKILL comes
# back (--respawn, what the hook uses without systemd) and resumes: a new
# agent holds the domain's lock and publishes status again, the guest keeps
# running; SIGTERM ends agent and supervisor for good; when QEMU goes away
# the supervisor does not restart anything.
#   env: MS_AGENT (QEMU without a guest kernel is enough: the agent needs QMP)
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d /tmp/ms-respawn.XXXXXX)
qemu_pid=
sup=
cleanup() {
    [ -n "$sup" ] && kill -9 "$sup" 2>/dev/null
    pkill -9 -f "memshare-agent --uuid $uuid" 2>/dev/null
    [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
uuid=5a0d1e6c-2f8b-4c59-9a43-0b7f7d1e2a77
export MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/none.conf
cat > "$tmp/domain.xml" <<XML
<domain type='qemu'><name>resp1</name><uuid>$uuid</uuid>
<memory unit='MiB'>128</memory><os><type arch='x86_64' machine='q35'>hvm</type></os>
<devices><memballoon model='virtio'/></devices>
<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>
<memshare:stats period='1s'/></memshare:policy></metadata></domain>
XML
start_qemu() {
    qemu-system-x86_64 -M q35 -accel tcg -m 128 -nodefaults -display none -no-user-config \
        -device virtio-balloon-pci,id=balloon0 -qmp "unix:$tmp/qmp.sock,server=on,wait=off" &
    qemu_pid=$!
    wait_for 20 test -S "$tmp/qmp.sock" || bail "QEMU did not start"
}
start_qemu
"$MS_AGENT" --uuid $uuid --qmp-socket "$tmp/qmp.sock" --domain-xml "$tmp/domain.xml" \
    --qemu-pid $qemu_pid --respawn > "$tmp/agent.log" 2>&1 &
sup=$!
rt=$MEMSHARE_RUNTIME_DIR/domains/$uuid
agent_pid() { cat "$rt/agent.pid" 2>/dev/null; }
check "agent attached" wait_for 10 grep -q "attached: QEMU" "$tmp/agent.log"
a1=$(agent_pid)
capeff=$(sed -n 's/^CapEff:\t*//p' /proc/$a1/status)
check "agent runs with CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH only (CapEff $capeff)" \
    test "$capeff" = 0000000000280004
check "agent has no_new_privs" grep -q "^NoNewPrivs:.*1" /proc/$a1/status
check "the agent is a child of the supervisor" test "$(ps -o ppid= -p "$a1" | tr -d ' ')" = "$sup"

kill -9 "$a1"
check "supervisor reports the death" wait_for 5 grep -q "agent died of signal 9" "$tmp/agent.log"
check "a new agent holds the lock" wait_for 10 bash -c "p=\$(cat '$rt/agent.pid' 2>/dev/null); [ -n \"\$p\" ] && [ \"\$p\" != $a1 ] && kill -0 \$p"
check "and attached again" wait_for 10 bash -c "[ \$(grep -c 'attached: QEMU' '$tmp/agent.log') -ge 2 ]"
rm -f "$rt/status"
check "status published again" wait_for 5 test -s "$rt/status"
check "QEMU untouched" kill -0 "$qemu_pid"

# SIGTERM to the agent (what the hook does at stopped, and what stopping
# a detached agent while the domain runs does): both end, and the hook's
# boot-memory record (written at prepare) stays for the next agent
printf 'memory=131072\ncurrent-memory=131072\n' > "$rt/boot-memory"
a2=$(agent_pid)
kill -TERM "$a2"
check "SIGTERM: the supervisor ends too" wait_for 5 bash -c "! kill -0 $sup 2>/dev/null"
wait "$sup" 2>/dev/null; rc=$?
check "with status 0" test "$rc" = 0
check "the agent's files are gone" test ! -e "$rt/agent.pid" -a ! -e "$rt/status"
check "the hook's boot-memory survives the agent's exit" grep -q '^current-memory=131072$' "$rt/boot-memory"

# QEMU killed: the agent stops, and nothing is restarted
"$MS_AGENT" --uuid $uuid --qmp-socket "$tmp/qmp.sock" --domain-xml "$tmp/domain.xml" \
    --qemu-pid $qemu_pid --respawn > "$tmp/agent2.log" 2>&1 &
sup=$!
wait_for 10 grep -q "attached: QEMU" "$tmp/agent2.log"
kill -9 "$qemu_pid"; wait "$qemu_pid" 2>/dev/null; qemu_pid=
check "QEMU gone: the supervisor exits" wait_for 10 bash -c "! kill -0 $sup 2>/dev/null"
check "without restarting the agent" bash -c "! grep -q 'starting it again' '$tmp/agent2.log'"
check "runtime directory cleaned" wait_for 3 test ! -e "$rt/agent.pid"
sup=
done_testing
