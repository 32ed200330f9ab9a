#!/bin/bash
# tests/migrate/test-migrate-policy.sh: a domain with a memshare policy
# (used-page tracking, stats) live-migrated between two test hosts
# (vmenv_pair_*), both with the hook installed, a -> b and back:
#   - one agent, on the host the domain runs on (started at the
#     destination's `started`, stopped at the source's `stopped`/`release`),
#     the source's runtime directory gone;
#   - the policy identical (it travels in the domain XML);
#   - the history continues: the destination's hook (op `migrate`) seeds
#     its history file with the source agent's last <stats> sample, which
#     travels in the live metadata; the new agent appends after it;
#   - memshare.tracking.used on the destination, from a fresh scan of the
#     destination QEMU's page tables, still covers what the guest touched
#     (migration populated those pages there), and is printed beside the
#     source's last figure;
#   - `memsharectl migrate-estimate` on the source, right before each leg,
#     against what QEMU's query-migrate reported for it (libvirt's
#     completed job statistics on the destination, `domjobinfo --rawstats`):
#     pages sent in full and bytes transferred each within 25 % + 8 MiB of
#     the estimate (why so wide: docs/migration.md, "migrate-estimate").
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_pair_setup ms-mig
top=$dir
STATS_NS=https://memshare.dev/xmlns/stats/1.0
U=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f81
rt() { lvt_pair_rt "$1" $U; }
agent_pid() { lvt_pair_agent_pid "$1" $U; }
agent_alive() { lvt_pair_agent_alive "$1" $U; }
status_val() { sed -n "s/^$2=//p" "$(rt "$1")/status" 2>/dev/null | head -n1; }
used_at_least() { local u; u=$(status_val "$1" used); [ -n "$u" ] && [ "$u" -ge "$2" ]; }
# history_rows HOST: data lines of the history file
history_rows() { grep -v '^#' "$(rt "$1")/history" 2>/dev/null; }
rows_at_least() { [ "$(history_rows "$1" | wc -l)" -ge "$2" ]; }
stats_elem() { V "$1" metadata mig2 "$STATS_NS" 2>/dev/null; }
migrate() { # FROM TO
    local out rc
    out=$(lvt_pair_migrate "$1" "$2" mig2 2>&1); rc=$?
    [ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
    return $rc
}

touched=48
export MS_GUEST_CMDLINE="ms.size=$touched ms.hold=100000"
policy="<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='1s'/><memshare:stats period='1s'/></memshare:policy>"
domain_xml mig2 $U 384 384 touch-free /var/log/libvirt/qemu/mig2.serial "$policy" > "$top/mig2.xml"
V a create "$top/mig2.xml" >/dev/null || bail "cannot start mig2 on host a"
check "agent runs on host a" wait_for 10 agent_alive a
check "guest touched $touched MiB" wait_for 300 grep -q "^MS-TOUCHED $touched" "$top/a/log-libvirt/qemu/mig2.serial"
check "host a: tracking.used covers what the guest touched" wait_for 60 used_at_least a $((touched << 20))
stats_has_tracking() { stats_elem a | grep -q "<tracking "; }
check "host a: the agent's stats element is in the live metadata" wait_for 60 stats_has_tracking
pol_a=$(V a metadata mig2 "$NS")

# within TOL: |QEMU - estimate| <= 25 % of the estimate + 8 MiB
within() { awk -v q="$1" -v e="$2" -v slack="$3" 'BEGIN { d = q - e; if (d < 0) d = -d; exit !(q != "" && e != "" && d <= 0.25 * e + slack) }'; }
job_raw() { sed -n "s/^$1: *//p" <<< "$job" | head -n1; }
est_key() { sed -n "s/^  memshare\.migrate\.$1=//p" <<< "$est"; }

for leg in "a b" "b a"; do
    set -- $leg; from=$1 to=$2
    pid_from=$(agent_pid "$from")
    est=$(vmenv_on "$from" vmenv_exec "$MS_CTL" migrate-estimate mig2 2>&1)
    check "host $from: migrate-estimate answers" grep -q '^  memshare.migrate.normal-pages=[0-9]' <<< "$est"
    # the last sample the source publishes before it stops is the one that
    # travels; sample it right before the migration for the comparison
    used_from=$(status_val "$from" used)
    check "migrate $from -> $to succeeds" migrate "$from" "$to"
    job=$(V "$to" domjobinfo --completed --rawstats mig2 2>&1)
    q_normal=$(job_raw memory_normal) q_bytes=$(job_raw memory_processed)
    e_normal=$(est_key normal-pages) e_bytes=$(est_key transfer-bytes)
    echo "# $from -> $to: estimate normal $e_normal pages, zero $(est_key zero-pages), $e_bytes bytes;" \
         "QEMU normal $q_normal, constant $(job_raw memory_constant), $q_bytes bytes"
    check "$from -> $to: QEMU's normal pages within the estimate's tolerance" \
        within "$q_normal" "$e_normal" 2048
    check "$from -> $to: QEMU's bytes transferred within the estimate's tolerance" \
        within "$q_bytes" "$e_bytes" $((8 << 20))
    check "mig2 runs on host $to" grep -qx running <<< "$(V "$to" domstate mig2 2>&1)"
    check "mig2 is gone from host $from" bash -c "! grep -qx mig2 <<< '$(V "$from" list --all --name)'"
    check "an agent runs on host $to" wait_for 30 agent_alive "$to"
    check "the agent on host $from is gone" wait_for 10 bash -c "! kill -0 $pid_from 2>/dev/null"
    check "host $from: the domain's runtime directory is gone" wait_for 10 test ! -e "$(rt "$from")"
    n=$(grep -c . <<< "$(for h in a b; do agent_alive $h && echo $h; done)")
    check "exactly one agent across both hosts ($n)" test "$n" = 1
    check "policy identical on host $to" test "$(V "$to" metadata mig2 "$NS")" = "$pol_a"
    check "host $to: history seeded from the source's last sample" \
        grep -q "^# migrated in to host 'memshare-test-$to'" "$(rt "$to")/history"
    seed=$(history_rows "$to" | head -n1)
    echo "# host $to history seed: $seed"
    # column 6 of the values (after time): tracking.used (ms_history_columns)
    seed_used=$(awk '{print $7}' <<< "$seed")
    check "the seed carries tracking.used from the source (>= $touched MiB)" \
        bash -c "[ '$seed_used' != - ] && [ '${seed_used:-0}' -ge $((touched << 20)) ]"
    check "the new agent appends to the seeded history" wait_for 30 rows_at_least "$to" 3
    check "host $to: tracking.used still covers what the guest touched" \
        wait_for 60 used_at_least "$to" $((touched << 20))
    used_to=$(status_val "$to" used)
    echo "# tracking.used: source $used_from, seed $seed_used, destination $used_to (touched $((touched << 20)))"
    total=$(status_val "$to" total)
    check "host $to: tracking.used within guest RAM" bash -c "[ '${used_to:-0}' -le '${total:-0}' ]"
done
V a destroy mig2 >/dev/null

done_testing
