#!/bin/bash
# tests/tracking/test-tracking-methods.sh: PAGEMAP_SCAN and pread of
# /proc/PID/pagemap classify a live guest's RAM identically. Boots the test
# guest (TCG, q35, 1 GiB) with touch-free holding 64 MiB, stops it over QMP
# (so the page tables cannot change between the two reads), runs
# test-track-methods' /tracking/methods-live, and resumes it.
#   env: MS_TRACK_METHODS (the test-track-methods binary), MS_GUEST_KERNEL,
#        MS_GUEST_INITRD
set -euo pipefail
source "$(dirname "$0")/../lib/tap.sh"
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/ms-track-methods.XXXXXX)
qemu_pid=
cleanup() {
    [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null || true
    if [ -n "${MS_KEEP_TMP:-}" ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

qemu-system-x86_64 -M q35 -accel tcg -m 1024 -smp 1 \
    -object memory-backend-ram,id=pc.ram,size=1024M -machine memory-backend=pc.ram \
    -nodefaults -display none -no-user-config \
    -device virtio-balloon-pci,id=balloon0,free-page-reporting=on \
    -qmp "unix:$tmp/qmp.sock,server=on,wait=off" -serial "file:$tmp/serial.log" \
    -kernel "$MS_GUEST_KERNEL" -initrd "$MS_GUEST_INITRD" \
    -append "console=ttyS0 quiet ms.scenario=touch-free ms.size=64 ms.hold=600" &
qemu_pid=$!
wait_for 30 test -S "$tmp/qmp.sock" || bail "QEMU did not create its QMP socket"
wait_for 120 grep -q MS-TOUCHED "$tmp/serial.log" || { sed 's/^/# serial: /' "$tmp/serial.log"; bail "guest never printed MS-TOUCHED"; }

qmp() { python3 "$here/qmp-cmd.py" "$tmp/qmp.sock" "$@" > /dev/null; }
check "guest stopped (QMP stop)" qmp stop
status=$(python3 "$here/qmp-cmd.py" "$tmp/qmp.sock" query-status)
check "QEMU reports the guest paused ($status)" grep -q '"status": "paused"' <<< "$status"
if MS_QEMU_PID=$qemu_pid MS_QEMU_RAM_MIB=1024 "$MS_TRACK_METHODS" -p /tracking/methods-live > "$tmp/out" 2>&1 \
    && grep -q "^ok 1 /tracking/methods-live$" "$tmp/out"; then
    ok "PAGEMAP_SCAN and pread classify the stopped guest identically (counts and bitmap)"
else
    not_ok "PAGEMAP_SCAN and pread classify the stopped guest identically (counts and bitmap)"
fi
sed 's/^/# /' "$tmp/out"
check "used pages include the 64 MiB the guest holds" \
    awk '/^# read \(pages\)/ { for (i = 1; i <= NF; i++) if ($i ~ /^private=/) { split($i, a, "="); exit !(a[2] >= 16384) } }' "$tmp/out"
check "guest resumed (QMP cont)" qmp cont
done_testing
