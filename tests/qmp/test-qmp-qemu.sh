#!/bin/bash
# tests/qmp/test-qmp-qemu.sh: the QMP client's socket transport against the
# real QEMU (TCG), through qmp-probe. Usage: test-qmp-qemu.sh QMP-PROBE
set -u
. "$(dirname "$0")/../lib/tap.sh"
probe=$1
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || { echo "1..0 # SKIP $qemu not found"; exit 0; }
dir=$(mktemp -d)
qemu_pid=
cleanup() { [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

"$qemu" -M q35 -accel tcg -m 256 -nodefaults -display none -S \
    -qmp "unix:$dir/qmp.sock,server=on,wait=off" \
    -device virtio-balloon-pci,id=balloon0 \
    -object memory-backend-ram,id=pc.ram,size=256M -machine memory-backend=pc.ram &
qemu_pid=$!
wait_for 20 test -S "$dir/qmp.sock" || bail "QEMU did not create its QMP socket"
check "qmp-probe against QEMU's QMP socket" "$probe" socket "$dir/qmp.sock"
# Exited: gone or a zombie (this script has not reaped it yet).
exited() { case "$(ps -o stat= -p "$qemu_pid" 2>/dev/null)" in ""|Z*) return 0;; esac; return 1; }
wait_for 20 exited
check "QEMU exited after quit" exited
done_testing
