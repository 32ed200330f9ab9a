#!/bin/bash
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
#   - fault: the source agent killed (SIGKILL) while a (slow, guest paused)
#     migration runs: the
#     migration completes, the domain runs on the destination, no agent is
#     left on the source, and the source's agent log says what happened;
#     the destination's agent, started by libvirt's `started` hook while the
#     migration still runs, waits for it to finish and attaches: exactly
#     one agent, on the destination.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_pair_setup ms-migdax
top=$dir
source "$here/lib-migrate-dax.sh"

export MS_GUEST_CMDLINE="ms.wait=120"
policy=$policy_dax
# free PCIe root ports: the balloon takes one, the pmem device another
MS_DOMAIN_ROOT_PORTS=4 MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=1024 \
    domain_xml mig5 $U 320 320 mount-shared /var/log/libvirt/qemu/mig5.serial "$policy" > "$top/mig5.xml"
V a create "$top/mig5.xml" >/dev/null || bail "cannot start mig5 on host a"
check "agent runs on host a" wait_for 10 agent_alive a
check "host a: the guest mounted the image with DAX" wait_for 300 grep -q "^MS-MOUNTED /dev/pmem0 dax" "$(serial a)"
check "host a: the guest reads the image's blob intact" wait_for 60 reads_grew a 0
placed() { V a metadata mig5 "$MIG_NS" 2>/dev/null | grep -q "<dax name=\"usr\" sha256=\"$sha\""; }
check "host a: the agent published the device's placement in the live metadata" wait_for 60 placed
placed || bail "no dax image on host a to migrate"
V a metadata mig5 "$MIG_NS" | sed 's/^/# /'
has_used() { [ -n "$(status_val a used)" ]; }
wait_for 60 has_used
pol_a=$(V a metadata mig5 "$NS")

leg a b
leg b a
n=$(V a dumpxml mig5 | grep -o 'ms-pmem0' | wc -l)
check "host a's QEMU: the hook's <qemu:commandline> replaced host b's pair, not added to it ($n)" test "$n" = 1

# --- fault: the source agent killed while the migration runs ---------------------------
# The guest is paused for this slow leg (virsh suspend; resumed on host b
# after it). The leg is about the killed agent, not guest writes: a guest
# that writes through an 80 s precopy under TCG loses some of them on QEMU
# < 9.0 and oopses on arrival, with or without memshare (QEMU 7.2's fast
# dirty-bitmap sync does not re-arm TCG's TLB dirty tracking; upstream
# commit 03bfc2188f "physmem: Fix migration dirty bitmap coherency with TCG
# memory access", 9.0; docs/migration.md has the runs). KVM hosts are not
# affected. The fast legs above migrate the running guest.
pid_a=$(agent_pid a)
V a suspend mig5 >/dev/null || bail "cannot pause mig5 for the slow leg"
lvt_pair_migrate a b mig5 --bandwidth 1 > "$top/kill.out" 2>&1 &
mpid=$!
job_running() { V a domjobinfo mig5 2>/dev/null | grep -q "Job type: *Unbounded"; }
check "killed agent: migration in progress" wait_for 120 job_running
kill -KILL "$pid_a"
check "killed agent: the source agent is dead" wait_for 10 bash -c "! kill -0 $pid_a 2>/dev/null"
V a migrate-setspeed mig5 10000 >/dev/null 2>&1
wait "$mpid"; rc=$?
sed 's/^/# virsh migrate: /' "$top/kill.out"
check "killed agent: the migration completes" test "$rc" = 0
check "killed agent: mig5 arrived paused on host b, as it left" grep -qx paused <<< "$(V b domstate mig5 2>&1)"
V b resume mig5 >/dev/null
check "killed agent: mig5 runs on host b" runs_on b
check "killed agent: mig5 is gone from host a" wait_for 10 absent_on a
check "killed agent: no agent left on host a" wait_for 10 test ! -e "$(rt a)"
# libvirt runs the destination's `started` (which launches the agent)
# long before this slow migration ends and holds the domain's job until its
# Finish phase; the agent waits while the domain is paused for the incoming
# migration, then attaches (docs/migration.md, faults). Before that fix it
# gave up after libvirt's 30 s job timeout and host b had no agent.
check "killed agent: an agent runs on host b" wait_for 30 agent_alive b
check "killed agent: host b's agent waited for the incoming migration, then attached" \
    wait_for 30 grep -q "the incoming migration finished after" "$top/b/log-memshare/$U.log"
grep -h "incoming migration" "$top"/b/log-memshare/*.log | tail -n 2 | cut -c1-300 | sed 's/^/# host b agent log: /'
check "killed agent: host b's agent reports attached in its status" \
    wait_for 30 grep -q "^attached=1" "$(rt b)/status"
n=$(for h in a b; do agent_alive $h && echo $h; done | grep -c .)
check "killed agent: exactly one agent across both hosts, on host b ($n)" \
    bash -c "[ $n = 1 ] && ! [ -e '$(rt a)' ]"
# host a's supervisor restarts the killed agent while the outgoing
# migration runs: the new agent waits for it instead of attaching to the
# leaving domain (docs/migration.md: attaching then preceded the guest
# arriving with corrupted memory), then ends (domain gone, or the `stopped`
# hook's SIGTERM while it waits)
check "killed agent: host a's restarted agent waited for the outgoing migration instead of attaching" \
    grep -q "the domain is migrating out of this host; waiting" "$top"/a/log-memshare/*.log
grep -h "migrating out\|outgoing migration\|waiting for the migration" "$top"/a/log-memshare/*.log | tail -n 3 | cut -c1-200 | sed 's/^/# host a agent log: /'
check "killed agent: no agent on host b gave up attaching" \
    bash -c "! grep -h 'cannot attach' '$top'/b/log-memshare/*.log"
grep -h "supervisor" "$top"/a/log-memshare/*.log | tail -n 3 | sed 's/^/# host a agent log: /'
check "killed agent: host a's agent log says it was killed" \
    grep -q "supervisor: agent died of signal 9" "$top"/a/log-memshare/*.log
reads_b=$(good_reads b)
check "killed agent: the guest keeps reading the image on host b" wait_for 60 reads_grew b "${reads_b:-0}"
echo "# guest console on host b: $(tr -d '\r' < "$(serial b)" 2>/dev/null | grep -m1 -E 'Kernel panic|BUG:' || echo 'no oops')"
V b destroy mig5 >/dev/null

done_testing
