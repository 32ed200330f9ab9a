#!/bin/bash
# tests/guest/debian/test-debian-late-attach.sh: the prepared Debian guest
# waits in its initramfs for a /usr image that is hot-plugged late. A bare
# QEMU boots the guest with no image; only once its console says the
# initramfs is waiting for LABEL=debian12-usr (prepare-guest's local-block
# script) is the agent started, which hot-plugs the image over QMP
# (virtio-pmem on a free PCIe root port). The guest then mounts it on /usr
# with dax=always and reaches multi-user. In the libvirt e2e the agent is
# always faster than the guest's kernel, so this is where the wait itself
# is proven.
#   env: MS_AGENT, MS_CTL, MS_DEBIAN_DIR (build-debian.sh's OUTDIR)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../lib/tap.sh"
deb=${MS_DEBIAN_DIR:?}
[ -f "$deb/stamp" ] || bail "no Debian guest in $deb (ninja tests/guest/debian/stamp)"
tmp=$(mktemp -d /var/tmp/ms-debian-late.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "$_tap_failed" -gt 0 ]; then
        for f in "$tmp"/*.log "$tmp"/console; do echo "# --- $f"; tr -d '\r' < "$f" | tail -25 | sed 's/^/# /'; done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/none.conf MEMSHARE_IMAGE_STORE=$tmp/store
"$MS_CTL" image build --usr --from "$deb/usr" --name debian12-usr > "$tmp/build.log" 2>&1 || bail "image build"
qemu-img create -q -f qcow2 -F raw -b "$deb/root-dax.img" "$tmp/root.qcow2" || bail "qemu-img create"

qemu-system-x86_64 -name late -M q35 -accel tcg -smp 1 -m 768,slots=2,maxmem=4G \
    -object memory-backend-ram,id=pc.ram,size=768M -machine memory-backend=pc.ram \
    -nodefaults -display none -no-user-config \
    -kernel "$deb/vmlinuz" -initrd "$deb/initrd.img" -append "console=ttyS0 quiet root=LABEL=ms-root ro" \
    -serial "file:$tmp/console" \
    -device pcie-root-port,id=pci.1,chassis=1 -device pcie-root-port,id=pci.2,chassis=2 \
    -device pcie-root-port,id=pci.3,chassis=3 \
    -drive "file=$tmp/root.qcow2,if=none,id=d0" -device virtio-blk-pci,drive=d0,bus=pci.1 \
    -device virtio-balloon-pci,id=balloon0,bus=pci.2 \
    -qmp "unix:$tmp/qmp.sock,server=on,wait=off" > "$tmp/qemu.log" 2>&1 &
qemu=$!
pids+=("$qemu")
wait_for 20 test -S "$tmp/qmp.sock" || bail "QEMU did not start"
con() { tr -d '\r' < "$tmp/console" 2>/dev/null | grep -Eq "$1"; }

check "the initramfs waits for the /usr image it does not have yet" \
    wait_for 600 con "memshare: waiting up to [0-9]+ s for the /usr image debian12-usr"
check "it has not given up (no initramfs-tools alert)" bash -c "! grep -q 'ALERT!' '$tmp/console'"
cat > "$tmp/late.xml" <<XML
<domain type='qemu'><name>late</name><uuid>3c9d2a41-7e0b-4f6a-8d15-2b4e6f9a0c11</uuid>
<maxMemory slots='2' unit='MiB'>4096</maxMemory><memory unit='MiB'>768</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices><memballoon model='virtio'/></devices>
<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'><memshare:shared-image name='debian12-usr' mount='/usr' mode='dax'/><memshare:stats period='2s'/></memshare:policy></metadata></domain>
XML
"$MS_AGENT" --uuid 3c9d2a41-7e0b-4f6a-8d15-2b4e6f9a0c11 --qmp-socket "$tmp/qmp.sock" \
    --domain-xml "$tmp/late.xml" --qemu-pid "$qemu" >> "$tmp/agent.log" 2>&1 &
pids+=($!)
check "the agent hot-plugs the image" wait_for 60 grep -q "image 'debian12-usr' attached (dax" "$tmp/agent.log"
check "the guest then reaches multi-user" wait_for 900 con "^MS-DEBIAN-READY running"
wait_for 300 con "^MS-DEBIAN-DONE"
tr -d '\r' < "$tmp/console" | grep -E "^MS-(USR|PYTHON|FAILED)" | sed 's/^/# /'
check "with /usr on the late pmem device, dax=always" con "^MS-USR /dev/pmem0 ext4 ro,.*dax=always"
check "python3 runs from it" con '^MS-PYTHON \{"python": "3\.11\.[0-9]+"'
check "no unit failed" con "^MS-FAILED-UNITS *$"
done_testing
