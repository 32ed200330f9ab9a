#!/bin/bash
# tools/demo.sh: the main job, on a fresh Debian 12 machine as root.
# Installs what it needs, builds memshare and the test guest, starts a
# private libvirtd (isolated in its own mount namespace: the host's libvirt
# is not touched) with the memshare hook installed, boots three TCG guests
# whose XML carries memshare policies with `virsh start`, turns KSM on, and
# prints what each agent sees: QMP facts, used pages, KSM, balloon; then
# `memsharectl domstats`. Everything is torn down at the end.
#   usage: bash tools/demo.sh [--keep]    (--keep: leave it running, Ctrl-C ends)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
keep=0; [ "${1:-}" = "--keep" ] && keep=1

bash tools/install-deps.sh
builddir=build-demo
[ -d "$builddir" ] || meson setup "$builddir" >/dev/null
ninja -C "$builddir" >/dev/null
ninja -C "$builddir" tests/guest/vmlinuz tests/guest/initramfs.img >/dev/null
export MS_GUEST_KERNEL=$root/$builddir/tests/guest/vmlinuz
export MS_GUEST_INITRD=$root/$builddir/tests/guest/initramfs.img

source tests/lib/vmenv.sh
source tests/lib/domain.sh
dir=$(mktemp -d /tmp/memshare-demo.XXXXXX)
ksm_run_before=$(cat /sys/kernel/mm/ksm/run)
restore_ksm() { echo "$ksm_run_before" > /sys/kernel/mm/ksm/run 2>/dev/null || true; }
vmenv_setup "$dir"
trap 'restore_ksm; vmenv_stop' EXIT INT TERM
vmenv_install_hook "$root/$builddir/hooks/memshare-hook"
vmenv_exec bash -c "cat > /etc/memshare/memshare.conf" <<CONF
[agent]
path=$root/$builddir/qmp-plugin/memshare-agent
launcher=detached
log-dir=/var/log/memshare
CONF
vmenv_start_libvirtd
V() { vmenv_exec virsh -q -c qemu:///system "$@"; }

echo "== KSM on (was run=$ksm_run_before)"
echo 1 > /sys/kernel/mm/ksm/run
echo 2000 > /sys/kernel/mm/ksm/pages_to_scan
echo 20 > /sys/kernel/mm/ksm/sleep_millisecs

NS=https://memshare.dev/xmlns/policy/1.0
names=(web1 web2 web3)
for i in 0 1 2; do
    n=${names[$i]}
    uuid=$(printf '7d0c5e3a-1b2c-4d5e-8f90-%012d' $((i + 1)))
    domain_xml "$n" "$uuid" 768 768 idle "$dir/$n.serial" \
        "<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='2s'/><memshare:stats period='2s'/></memshare:policy>" \
        > "$dir/$n.xml"
    V define "$dir/$n.xml" >/dev/null
    t0=$(date +%s%N)
    V start "$n" >/dev/null
    echo "== virsh start $n: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done

echo "== waiting for the guests to boot (TCG: about 10-20 s each)"
for n in "${names[@]}"; do
    for _ in $(seq 240); do grep -q MS-GUEST-READY "$dir/$n.serial" 2>/dev/null && break; sleep 0.5; done
    grep -q MS-GUEST-READY "$dir/$n.serial" && echo "   $n: guest ready" || echo "   $n: guest not ready (yet)"
done
sleep 6

for n in "${names[@]}"; do
    uuid=$(V domuuid "$n")
    echo
    echo "== agent of $n (log /var/log/memshare/$uuid.log in the demo's namespace)"
    grep -E "attached|memdev|tracking:" "$dir/log-memshare/$uuid.log" | sed 's/^[^ ]* /   /'
done

echo
echo "== host KSM: pages_sharing=$(cat /sys/kernel/mm/ksm/pages_sharing)" \
     "general_profit=$(cat /sys/kernel/mm/ksm/general_profit 2>/dev/null || echo n/a)"
echo
echo "== memsharectl domstats"
MEMSHARE_RUNTIME_DIR=$dir/run-memshare "$builddir/tools/memsharectl" domstats
echo "== virsh domstats --balloon (libvirt's own view, for comparison)"
V domstats --balloon

if [ $keep = 1 ]; then
    echo "== running; enter with: nsenter -t $VMENV_PID -m virsh list   (Ctrl-C to end)"
    sleep infinity
fi
echo "== tearing down"
