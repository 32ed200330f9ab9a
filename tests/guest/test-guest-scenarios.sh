#!/bin/bash
# tests/guest/test-guest-scenarios.sh: the guest scenarios other tests rely
# on, each checked under bare QEMU (TCG):
#   mount-dax   an ext4 image on virtio-pmem (share=on,readonly=on) is
#               mounted with dax=always, the same image on read-only
#               virtio-blk is mounted too, and bin/ms-hello from it runs;
#   hot-plug    the same image hot-plugged over QMP (object-add +
#               device_add virtio-pmem-pci on a free root port) after the
#               guest is up, as the agent does, is mounted with DAX too;
#   no-balloon  ms.noballoon=1 keeps virtio_balloon out of the guest;
#   ksm-fill    fills ms.fill= MiB and says so.
#   env: MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d /tmp/ms-guest-scn.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do { kill -9 "$p"; wait "$p"; } 2>/dev/null; done
    if [ -n "${MS_KEEP_TMP:-}" ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# boot NAME APPEND [QEMU ARGS...]: starts a guest logging to $tmp/NAME.serial
boot() {
    local name=$1 append=$2; shift 2
    qemu-system-x86_64 -M q35 -accel tcg -smp 1 -nodefaults -display none -no-user-config \
        -serial "file:$tmp/$name.serial" "$@" \
        -kernel "$MS_GUEST_KERNEL" -initrd "$MS_GUEST_INITRD" \
        -append "console=ttyS0 quiet $append" </dev/null >"$tmp/$name.qemu.log" 2>&1 &
    pids+=($!)
}
serial_has() { grep -q "$2" "$tmp/$1.serial" 2>/dev/null; }

# An ext4 image with 4 KiB blocks (DAX needs them) holding an ms-hello.
mkdir -p "$tmp/src/bin"
printf '#!/bin/sh\necho hello from the shared image\n' > "$tmp/src/bin/ms-hello"
chmod 755 "$tmp/src/bin/ms-hello"
mke2fs -q -F -t ext4 -b 4096 -d "$tmp/src" "$tmp/img.ext4" 64M >/dev/null || bail "mke2fs failed"
chmod 444 "$tmp/img.ext4"

boot dax "ms.scenario=mount-dax ms.wait=30" -m 256M,slots=2,maxmem=1G \
    -object "memory-backend-file,id=img0,mem-path=$tmp/img.ext4,size=64M,share=on,readonly=on" \
    -device virtio-pmem-pci,memdev=img0 \
    -drive "file=$tmp/img.ext4,if=none,id=d0,format=raw,readonly=on" \
    -device virtio-blk-pci,drive=d0
boot hp "ms.scenario=mount-dax ms.wait=120" -m 256M,slots=2,maxmem=1G \
    -device pcie-root-port,id=rp1,chassis=1 -qmp "unix:$tmp/hp.qmp,server=on,wait=off"
boot nob "ms.scenario=no-balloon ms.noballoon=1" -m 256M -device virtio-balloon-pci
boot ksm "ms.scenario=ksm-fill ms.fill=16" -m 256M -device virtio-balloon-pci

check "mount-dax: /dev/pmem0 mounted with DAX" wait_for 180 serial_has dax "MS-MOUNTED /dev/pmem0 dax"
check "mount-dax: /dev/vda mounted read-only (blk)" wait_for 30 serial_has dax "MS-MOUNTED /dev/vda blk"
check "mount-dax: ms-hello from the image ran" wait_for 30 serial_has dax "MS-HELLO hello from the shared image"
check "mount-dax: no mount failed" bash -c "! grep -q MS-MOUNT-FAILED '$tmp/dax.serial'"
if wait_for 180 serial_has hp MS-GUEST-READY; then
    python3 - "$tmp/hp.qmp" "$tmp/img.ext4" > "$tmp/hp.qmp.log" 2>&1 <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile('rw')
def cmd(name, **args):
    f.write(json.dumps({'execute': name, 'arguments': args}) + '\n')
    f.flush()
    while True:
        r = json.loads(f.readline())
        if 'return' in r or 'error' in r:
            print(name, r)
            if 'error' in r:
                sys.exit(1)
            return
f.readline()
cmd('qmp_capabilities')
cmd('object-add', **{'qom-type': 'memory-backend-file', 'id': 'img0', 'mem-path': sys.argv[2],
                     'size': 64 << 20, 'share': True, 'readonly': True})
cmd('device_add', driver='virtio-pmem-pci', id='pmem0', memdev='img0', bus='rp1')
PY
    check "hot-plug: QMP object-add + device_add accepted" test $? = 0
else
    not_ok "hot-plug: guest ready"
fi
check "hot-plug: hot-plugged /dev/pmem0 mounted with DAX" wait_for 120 serial_has hp "MS-MOUNTED /dev/pmem0 dax"
check "hot-plug: ms-hello from the image ran" wait_for 30 serial_has hp "MS-HELLO hello from the shared image"
check "no-balloon: guest ready" wait_for 180 serial_has nob MS-GUEST-READY
check "no-balloon: virtio_balloon not loaded" bash -c "grep MS-MODULES '$tmp/nob.serial' | grep -vqw virtio_balloon"
check "no-balloon: scenario confirms" wait_for 30 serial_has nob MS-NOBALLOON
check "ksm-fill: filled 16 MiB" wait_for 180 serial_has ksm "MS-FILLED 16"
for n in dax hp nob ksm; do
    grep -h "^MS-ERROR" "$tmp/$n.serial" 2>/dev/null | sed "s/^/# $n: /"
done
done_testing
