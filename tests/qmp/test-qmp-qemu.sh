#!/bin/bash
# tests/qmp/test-qmp-qemu.sh: the QMP client's socket transport against the
# real QEMU (TCG), through qmp-probe. Usage: test-qmp-qemu.sh QMP-PROBE
set -uo pipefail
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/qemu.sh"
probe=$1
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || { echo "1..0 # SKIP $qemu not found"; exit 0; }
tmp=$(mktemp -d)
trap 'qemu_stop_all; rm -rf "$tmp"' EXIT
# -S: the transport needs no running guest
qemu_start q mem=256 -- -S || bail "QEMU did not create its QMP socket"
qemu_pid=$QEMU_PID
check "qmp-probe against QEMU's QMP socket" "$probe" socket "$tmp/q.sock"
# Exited: gone or a zombie (this script has not reaped it yet).
exited() { case "$(ps -o stat= -p "$qemu_pid" 2>/dev/null)" in ""|Z*) return 0;; esac; return 1; }
wait_for 20 exited
check "QEMU exited after quit" exited
done_testing
