#!/bin/bash
# bench/pagemap/run-live.sh: bench-pagemap against a live TCG guest it boots
# itself (2 GiB, the test guest idling: sparsely used RAM, as most of a real
# guest's RAM is) plus the self-mapping cases. Prints a markdown section.
#   usage: run-live.sh BUILDDIR
#   MEMSHARE_HIDE=linux-6.1: what a Debian 12 (6.1) host's agent runs, the
#   read path only (bench-pagemap honours the knob)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
qemu-system-x86_64 -M q35 -accel tcg -m 2048 -smp 1 -nodefaults -display none -no-user-config \
    -object memory-backend-ram,id=pc.ram,size=2G -machine memory-backend=pc.ram \
    -serial "file:$tmp/serial" -kernel "$build/tests/guest/vmlinuz" -initrd "$build/tests/guest/initramfs.img" \
    -append "console=ttyS0 quiet ms.scenario=idle" &
qemu=$!
trap 'kill -9 $qemu 2>/dev/null; rm -rf "$tmp"' EXIT
for i in $(seq 600); do grep -q MS-GUEST-READY "$tmp/serial" 2>/dev/null && break; sleep 0.2; done
echo "A 2 GiB TCG guest, booted and idle; one full classification of its RAM, median of"
echo "15 runs, and the self-mapping cases (4 GiB mapping, 256 MiB touched):"
echo
echo '```'
bash "$here/run-bench.sh" "$build" 15 "$qemu"
echo '```'
