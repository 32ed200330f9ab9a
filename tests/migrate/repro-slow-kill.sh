#!/bin/bash
# tests/migrate/repro-slow-kill.sh: the slow, killed-agent leg of
# test-migrate-dax.sh alone (not in meson), with knobs to remove one suspect
# at a time for the guest oops on the destination (docs/migration.md: QEMU
# 7.2's TCG migration loses guest writes; `plain` reproduces it without
# memshare):
#   OOPS_LEGS=1 run the two fast legs first; OOPS_KILL=0 no SIGKILL,
#   OOPS_KILL=both the agent's supervisor too (no restarted agent);
#   OOPS_SPEED=0 no speed change; OOPS_WATCH=S seconds to watch host b;
#   MS_DOMAIN_BALLOON=nofpr no free page reporting; OOPS_POLICY=XML;
#   OOPS_MODE=blk the same image as a read-only virtio-blk disk instead of
#   the dax pmem device (the guest mounts it and runs the same reader);
#   OOPS_MODE=plain no memshare at all (no hook, no agent, no policy: the
#   image's blob is a read-only disk in the domain XML, the same reader;
#   only the migration checks, no kill); OOPS_PAUSE=1 the guest paused
#   (virsh suspend) for the slow migration, resumed on host b after it.
# tests/migrate/test-migrate-dax.sh: a policy-carrying domain with a `dax`
# shared image (memory-backend-file + virtio-pmem-pci, hot-plugged by the
# agent over QMP) and used-page tracking, live-migrated between two test
# hosts a -> b -> a (docs/migration.md, "DAX images"):
#   - the source agent publishes the device's placement in the live
#     metadata (<migration xmlns='https://memshare.dev/xmlns/migration/1.0'>);
#   - the destination's hook gives the incoming QEMU the same backend and
#     device (<qemu:commandline>, its own store's blob of that digest); the
#     destination agent adopts them: one virtio-pmem device, same address;
#   - the guest, which mounted the image with dax=always, keeps reading the
#     same bytes from it on each side (a loop the image itself carries
#     prints the md5 of a file on it every 2 s to the per-host console);
#   - exactly one agent, on the right host; policy identical; tracking.used
#     carried in the history and measured again on the destination;
#   - fault: the source agent killed (SIGKILL) while a migration runs: the
#     migration completes, the domain runs on the destination, no agent is
#     left on the source, and the source's agent log says what happened;
#     the destination's agent, started by libvirt's `started` hook while the
#     migration still runs, waits for it to finish and attaches: exactly
#     one agent, on the destination.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

mode=${OOPS_MODE:-dax}
leg_mode=$mode leg_used_wait=${OOPS_USED_WAIT:-60}
[ "$mode" = plain ] && export LVT_HOOK=none
lvt_pair_setup ms-oops
top=$dir
source "$here/lib-migrate-dax.sh"

export MS_GUEST_CMDLINE="ms.wait=120"
policy=${OOPS_POLICY:-${policy_dax/mode=\'dax\'/mode=\'$mode\'}}
disk=
if [ "$mode" = plain ]; then
    policy=
    disk="<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/var/lib/memshare/images/blobs/sha256-$sha.img'/><target dev='vda' bus='virtio'/><readonly/><shareable/></disk>"
fi
# free PCIe root ports: the balloon takes one, the pmem device another
MS_DOMAIN_ROOT_PORTS=4 MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=1024 \
    domain_xml mig5 $U 320 320 mount-shared /var/log/libvirt/qemu/mig5.serial "$policy" "$disk" > "$top/mig5.xml"
V a create "$top/mig5.xml" >/dev/null || bail "cannot start mig5 on host a"
[ "$mode" = plain ] || check "agent runs on host a" wait_for 10 agent_alive a
mounted_re="^MS-MOUNTED /dev/pmem0 dax"; [ "$mode" != dax ] && mounted_re="^MS-MOUNTED /dev/vd[a-z] blk"
check "host a: the guest mounted the image ($mode)" wait_for 300 grep -q "$mounted_re" "$(serial a)"
check "host a: the guest reads the image's blob intact" wait_for 60 reads_grew a 0
placed() { V a metadata mig5 "$MIG_NS" 2>/dev/null | grep -q "<dax name=\"usr\" sha256=\"$sha\""; }
if [ "$mode" = dax ]; then
    check "host a: the agent published the device's placement in the live metadata" wait_for 60 placed
    placed || bail "no dax image on host a to migrate"
    V a metadata mig5 "$MIG_NS" | sed 's/^/# /'
fi
has_used() { [ -n "$(status_val a used)" ]; }
[ -n "${OOPS_POLICY:-}" ] || [ "$mode" = plain ] || wait_for 60 has_used
pol_a=$(V a metadata mig5 "$NS" 2>/dev/null)   # none in plain mode

if [ "${OOPS_LEGS:-0}" = 1 ]; then leg a b; leg b a; fi
# the pmem device's PCI state as each QEMU sees it (QEMU 7.2's virtio-pmem
# has no vmstate: docs/migration.md)
pmem_pci() { V "$1" qemu-monitor-command mig5 --hmp "info pci" 2>/dev/null | tr -d '\r' | grep -A5 "1af4:105b" | sed "s/^/# host $1 info pci: /"; }
[ "$mode" = dax ] && pmem_pci a
# the RAM blocks' offsets and sizes (QEMU 7.2 syncs a 64-page aligned block
# on the path that loses TCG writes: docs/migration.md)
V a qemu-monitor-command mig5 --hmp "info ramblock" 2>/dev/null | tr -d '\r' | sed 's/^/# host a info ramblock: /'
t0=$(date +%s)
pid_a=$(agent_pid a)
[ "${OOPS_PAUSE:-0}" = 1 ] && { V a suspend mig5 >/dev/null; echo "# guest paused on host a: $(V a domstate mig5)"; }
lvt_pair_migrate a b mig5 --bandwidth 1 > "$top/kill.out" 2>&1 &
mpid=$!
job_running() { V a domjobinfo mig5 2>/dev/null | grep -q "Job type: *Unbounded"; }
check "killed agent: migration in progress" wait_for 120 job_running
echo "# t+$(( $(date +%s) - t0 )) job running"
if [ "$mode" = plain ]; then :
elif [ "${OOPS_KILL:-1}" = both ]; then
    # the supervisor too: the agent dies and nothing restarts it
    sup=$(ps -o ppid= -p "$pid_a" | tr -d ' '); kill -KILL "$sup" "$pid_a"
    echo "# t+$(( $(date +%s) - t0 )) killed supervisor $sup and agent $pid_a"
elif [ "${OOPS_KILL:-1}" = 1 ]; then kill -KILL "$pid_a"; echo "# t+$(( $(date +%s) - t0 )) killed agent $pid_a"; fi
sleep "${OOPS_SPEED_DELAY:-0}"
if [ "${OOPS_SPEED:-1}" = 1 ]; then V a migrate-setspeed mig5 10000 >/dev/null 2>&1; echo "# t+$(( $(date +%s) - t0 )) speed raised"; fi
wait "$mpid"; rc=$?
echo "# t+$(( $(date +%s) - t0 )) migration done rc=$rc"
sed 's/^/# virsh migrate: /' "$top/kill.out"
check "migration completes" test "$rc" = 0
[ "${OOPS_PAUSE:-0}" = 1 ] && { V b resume mig5 >/dev/null; echo "# guest resumed on host b: $(V b domstate mig5)"; }
reads_b=$(good_reads b)
[ "$mode" = dax ] && pmem_pci b
oopsed() { tr -d '\r' < "$(serial b)" 2>/dev/null | grep -q -E 'Kernel panic|BUG|Oops|corruption|invalid opcode|general protection'; }
wait_for "${OOPS_WATCH:-120}" oopsed
echo "# t+$(( $(date +%s) - t0 )) watch over; reads on b before $reads_b after $(good_reads b)"
echo "# RESULT: $(tr -d '\r' < "$(serial b)" 2>/dev/null | grep -m1 -E 'Kernel panic|BUG|Oops|corruption|invalid opcode|general protection' || echo 'no oops')"
grep -h -i "balloon\|supervisor\|incoming\|migrat" "$top"/a/log-memshare/*.log "$top"/b/log-memshare/*.log 2>/dev/null | grep -v "tracking:" | cut -c1-250 | sed 's/^/# agent: /' | tail -n 40
V b destroy mig5 >/dev/null
done_testing
