#!/bin/bash
# tools/demo.sh: the main job, on a fresh Debian 12 machine as root.
# Installs what it needs, builds memshare and the test guest, starts a
# private libvirtd (isolated in its own mount namespace: the host's libvirt
# is not touched) with the memshare hook installed, builds a shared image
# with `memsharectl image build`, boots three TCG guests whose XML carries
# memshare policies with `virsh start` (the image attached with DAX, used-page
# tracking, KSM balloon rebalancing), turns KSM on, and shows the balloons
# take back what KSM saves; it ends with `memsharectl domstats` and a plot
# (memshare-demo.png in the repository's root). Everything else is torn down.
#   usage: bash tools/demo.sh [--keep]    (--keep: leave it running, Ctrl-C ends)
set -euo pipefail
source "$(dirname "$0")/demo-lib.sh"
ninja -C "$builddir" >/dev/null
ninja -C "$builddir" tests/guest/vmlinuz tests/guest/initramfs.img >/dev/null
export MS_GUEST_KERNEL=$root/$builddir/tests/guest/vmlinuz
export MS_GUEST_INITRD=$root/$builddir/tests/guest/initramfs.img

# the preamble of the libvirt tests (tests/lib/libvirt-test.sh, sourced by
# demo-lib.sh): the KSM lock (KSM is host-wide; restored at exit), the run
# directory, hook, memshare.conf and libvirtd; the three guests are one
# tenant's, so they may share KSM pages and the image (docs/security.md: the
# default, one group per domain, would refuse the second guest that merges)
lvt_ksm_lock
ksm_run_before=$(cat $ksm/run)
lvt_setup memshare-demo "$LVT_CONF_ONE_TENANT"
lvt_start
ctl() { vmenv_exec env MEMSHARE_RUNTIME_DIR=/run/memshare "$root/$builddir/tools/memsharectl" "$@"; }

echo "== a shared image: a program and 16 MiB of data, built with libext2fs"
mkdir -p "$dir/tree/bin" "$dir/tree/data"
printf '#!/bin/sh\necho "hello from the shared image, mounted $(grep -o "dax=always" /proc/mounts | head -1)"\n' \
    > "$dir/tree/bin/ms-hello"
chmod 755 "$dir/tree/bin/ms-hello"
head -c $((16 << 20)) /dev/urandom > "$dir/tree/data/blob"
ctl image build --from "$dir/tree" --name tools | sed 's/^/   /'
ctl image list | sed 's/^/   /'

echo "== KSM on (was run=$ksm_run_before)"
echo 1 > $ksm/run
echo 5000 > $ksm/pages_to_scan
echo 20 > $ksm/sleep_millisecs

NS=https://memshare.dev/xmlns/policy/1.0
POLICY="<memshare:policy xmlns:memshare='$NS'>
  <memshare:balloon mode='ksm-share' division='equal' period='2s'/>
  <memshare:tracking used-pages='on' period='2s'/>
  <memshare:shared-image name='tools' mount='/opt/tools' mode='dax'/>
  <memshare:stats period='2s'/>
</memshare:policy>"
echo "== the policy every guest carries in its <metadata>:"
echo "$POLICY" | sed 's/^/   /'
# <memory> 768 MiB is the balloon's ceiling, <currentMemory> 512 MiB its base
export MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=2048 MS_DOMAIN_ROOT_PORTS=4
export MS_GUEST_CMDLINE="ms.expect=1 ms.wait=150 ms.fill=128"
names=(web1 web2 web3)
for i in 0 1 2; do
    n=${names[$i]}
    uuid=$(printf '7d0c5e3a-1b2c-4d5e-8f90-%012d' $((i + 1)))
    domain_xml "$n" "$uuid" 768 512 demo "$dir/$n.serial" "$POLICY" > "$dir/$n.xml"
    V define "$dir/$n.xml" >/dev/null
    t0=$(date +%s%N)
    V start "$n" >/dev/null
    echo "== virsh start $n: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done

echo "== waiting for the guests: boot, mount the image, fill memory (TCG: a minute or two)"
for n in "${names[@]}"; do
    for _ in $(seq 600); do grep -q "MS-FILLED" "$dir/$n.serial" 2>/dev/null && break; sleep 0.5; done
    echo "   $n: $(grep -a -m1 'MS-MOUNTED' "$dir/$n.serial" | tr -d '\r')"
    echo "   $n: $(grep -a -m1 'MS-HELLO' "$dir/$n.serial" | tr -d '\r')"
done
echo "== letting KSM merge and the balloons follow (40 s)"
sleep 40

for n in "${names[@]}"; do
    uuid=$(V domuuid "$n")
    echo
    echo "== agent of $n (/var/log/memshare/$uuid.log in the demo's namespace)"
    grep -E "attached|image '|balloon: target|balloon: back" "$dir/log-memshare/$uuid.log" | tail -8 | sed 's/^[^ ]* [^ ]* /   /'
done

echo
echo "== host KSM: pages_sharing=$(cat /sys/kernel/mm/ksm/pages_sharing)" \
     "general_profit=$(cat /sys/kernel/mm/ksm/general_profit 2>/dev/null || echo n/a)"
echo
echo "== memsharectl domstats"
ctl domstats
echo "== virsh domstats --balloon (libvirt's own view: it follows the balloons too)"
V domstats --balloon
echo "== virsh metadata web1 (the agent's figures in the live domain XML)"
V metadata web1 https://memshare.dev/xmlns/stats/1.0 | head -12
ctl plot -o "$dir/plot.png" >/dev/null && cp "$dir/plot.png" "$root/memshare-demo.png" &&
    echo "== plot of this run: $root/memshare-demo.png"

if [ $keep = 1 ]; then
    echo "== running; enter with: nsenter -t $VMENV_PID -m virsh list   (Ctrl-C to end)"
    sleep infinity
fi
echo "== tearing down"
