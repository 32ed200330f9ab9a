#!/bin/bash
# tests/guest/test-guest-boot.sh: the test guest boots under TCG, loads the
# modules the tests rely on, and runs the scenario named on its command line.
#   env: MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d)
qemu-system-x86_64 -M q35 -accel tcg -m 256 -smp 1 -nodefaults -display none -no-user-config \
    -device virtio-balloon-pci -serial "file:$tmp/serial" \
    -kernel "$MS_GUEST_KERNEL" -initrd "$MS_GUEST_INITRD" \
    -append "console=ttyS0 quiet ms.scenario=touch-free ms.size=8 ms.hold=0" &
qemu=$!
trap '{ kill -9 $qemu; wait $qemu; } 2>/dev/null; rm -rf "$tmp"' EXIT
start=$(date +%s)
check "guest says MS-GUEST-READY" wait_for 120 grep -q MS-GUEST-READY "$tmp/serial"
echo "# ready after $(( $(date +%s) - start )) s (TCG); $(grep MS-GUEST-READY "$tmp/serial" | tr -d '\r')"
mods=$(grep MS-MODULES "$tmp/serial")
for m in virtio_balloon virtio_pmem nd_pmem virtio_blk ext4; do
    check "module $m loaded" grep -qw "$m" <<< "$mods"
done
check "the scenario ran (touch-free: touched, freed)" wait_for 60 grep -q "MS-FREED 8" "$tmp/serial"
done_testing
