#!/bin/bash
# tests/tracking/test-tracking-methods.sh: PAGEMAP_SCAN and pread of
# /proc/PID/pagemap classify a live guest's RAM identically. Boots the test
# guest (TCG, q35, 1 GiB) with touch-free holding 64 MiB, stops it over QMP
# (so the page tables cannot change between the two reads), runs
# test-track-methods' /tracking/methods-live, and resumes it.
#   env: MS_TRACK_METHODS (the test-track-methods binary), MS_GUEST_KERNEL,
#        MS_GUEST_INITRD
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
source "$(dirname "$0")/../lib/qemu.sh"
here=$(cd "$(dirname "$0")" && pwd)
qemu_test_tmp ms-track-methods

qemu_start methods mem=1024 balloon=fpr guest="ms.scenario=touch-free ms.size=64 ms.hold=600" \
    || bail "QEMU did not create its QMP socket"
qemu_pid=$QEMU_PID
qemu_wait_console methods MS-TOUCHED 120 || bail "guest never printed MS-TOUCHED"

qmp() { python3 "$here/qmp-cmd.py" "$tmp/methods.sock" "$@" > /dev/null; }
check "guest stopped (QMP stop)" qmp stop
status=$(python3 "$here/qmp-cmd.py" "$tmp/methods.sock" query-status)
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
