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
source "$here/../../tests/lib/qemu.sh"
trap 'qemu_stop_all; rm -rf "$tmp"' EXIT
qemu_start g mem=2048 balloon=none noqmp kernel="$build/tests/guest/vmlinuz" initrd="$build/tests/guest/initramfs.img" \
    guest="ms.scenario=idle"
qemu=$QEMU_PID
qemu_wait_console g MS-GUEST-READY 120 >&2 || exit 1
echo "A 2 GiB TCG guest, booted and idle; one full classification of its RAM, median of"
echo "15 runs, and the self-mapping cases (4 GiB mapping, 256 MiB touched):"
echo
echo '```'
bash "$here/run-bench.sh" "$build" 15 "$qemu"
echo '```'
