#!/bin/bash
# tests/migrate/test-migrate-plain.sh: two test hosts on one machine
# (tests/lib/vmenv.sh vmenv_pair_*: two isolated libvirtds, each in its own
# network namespace with its own host UUID, joined by a veth pair) and a
# plain live migration of a TCG guest between them, no memshare: the
# domain runs on the destination and not on the source, and the guest
# lives on (its console, a per-host file, keeps counting where the
# source's stopped, without a reboot); then the same back, direct (virsh
# talking to both daemons) instead of peer-to-peer.
#   env: MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

LVT_HOOK=none lvt_pair_setup ms-mig
top=$dir
# VA/VB: virsh on host a/b against its own daemon
VA() { V a "$@"; }
VB() { V b "$@"; }

# --- the two hosts ----------------------------------------------------------------
hb=$(vmenv_on a vmenv_exec virsh -q -c "$VMENV_URI_b" hostname 2>&1)
ha=$(vmenv_on b vmenv_exec virsh -q -c "$VMENV_URI_a" hostname 2>&1)
check "host a reaches host b's libvirtd over TCP ($hb)" test "$hb" = memshare-test-b
check "host b reaches host a's libvirtd over TCP ($ha)" test "$ha" = memshare-test-a
check "host a has its own host UUID" grep -q "<uuid>$VMENV_UUID_a</uuid>" <<< "$(VA capabilities)"
check "host b has its own host UUID" grep -q "<uuid>$VMENV_UUID_b</uuid>" <<< "$(VB capabilities)"
check "the veth is not in the host's network namespace" bash -c "! ip -o addr | grep -q '10\.254\.14\.'"
# (no connection is ever tried from outside the namespaces: the address
# could be routed to a real network there)
listen_a=$(vmenv_on a vmenv_exec ss -Hltn 'sport = :16509')
echo "$listen_a" | sed 's/^/# host a listens: /'
check "host a's libvirtd listens on its veth address only" \
    bash -c "grep -q ' $VMENV_ADDR_a:16509 ' <<< '$listen_a' && [ \$(wc -l <<< '$listen_a') = 1 ]"

# --- a guest that keeps printing: cpu-mem with a small buffer, rounds forever ------
U=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f71
export MS_GUEST_CMDLINE="ms.size=4 ms.rounds=1000000"
# The serial file's path is the same on both hosts, but /var/log/libvirt is
# per host: each side's QEMU writes its own file.
serial=/var/log/libvirt/qemu/mig1.serial
ser_a=$top/a/log-libvirt/qemu/mig1.serial
ser_b=$top/b/log-libvirt/qemu/mig1.serial
domain_xml mig1 $U 256 256 cpu-mem "$serial" > "$top/mig1.xml"
VA create "$top/mig1.xml" >/dev/null || bail "cannot start mig1 on host a"
check "guest prints rounds on host a" wait_for 300 grep -q "^MS-ROUND 3 " "$ser_a"

# rounds(FILE): the round numbers the guest printed there
rounds() { grep -ao '^MS-ROUND [0-9]*' "$1" 2>/dev/null | awk '{print $2}'; }
alive_after() { # FILE N: the guest printed a round > N there
    local r; r=$(rounds "$1" | tail -n1); [ -n "$r" ] && [ "$r" -gt "$2" ]; }

# --- a -> b, peer to peer, migration data over the veth -----------------------------
out=$(lvt_pair_migrate a b mig1 2>&1); rc=$?
[ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
check "virsh migrate --live --p2p a -> b succeeds" test "$rc" = 0
check "mig1 runs on host b" grep -qx running <<< "$(VB domstate mig1 2>&1)"
check "mig1 is gone from host a" bash -c "! grep -qx mig1 <<< '$(VA list --all --name)'"
last_a=$(rounds "$ser_a" | tail -n1)
check "guest keeps printing on host b" wait_for 120 alive_after "$ser_b" "${last_a:-0}"
first_b=$(rounds "$ser_b" | head -n1)
echo "# last round on a: $last_a, first on b: $first_b"
check "b continues a's count (same guest, not a fresh boot)" \
    bash -c "[ -n '$first_b' ] && [ '$first_b' -gt 0 ] && [ '$first_b' -le \$(( ${last_a:-0} + 1 )) ] && ! grep -q MS-GUEST-READY '$ser_b'"

# --- b -> a, direct (virsh on b drives both daemons) --------------------------------
cp "$ser_a" "$top/a-first.serial"; : > "$ser_a"
out=$(vmenv_on b vmenv_exec timeout 600 virsh -q -c qemu:///system migrate --live mig1 \
      "$VMENV_URI_a" --migrateuri "tcp://$VMENV_ADDR_a" 2>&1); rc=$?
[ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
check "virsh migrate --live (direct) b -> a succeeds" test "$rc" = 0
check "mig1 runs on host a again" grep -qx running <<< "$(VA domstate mig1 2>&1)"
check "mig1 is gone from host b" bash -c "! grep -qx mig1 <<< '$(VB list --all --name)'"
last_b=$(rounds "$ser_b" | tail -n1)
check "guest keeps printing on host a" wait_for 120 alive_after "$ser_a" "${last_b:-0}"
VA destroy mig1 >/dev/null

done_testing
