#!/bin/bash
# tools/test.sh: the whole test suite on a fresh Debian 12 machine, as root:
# installs what it needs, builds, and runs the unit, qemu and libvirt suites
# (real QEMU under TCG, a real isolated libvirtd started by the tests, real
# KSM). Prints one closing line "N passed, N failed, N skipped".
#   usage: bash tools/test.sh [--suite unit|qemu|libvirt]... [BUILDDIR]
set -euo pipefail
cd "$(dirname "$0")/.."

suites=()
builddir=build-test
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) suites+=("$2"); shift 2 ;;
        *) builddir="$1"; shift ;;
    esac
done
[ ${#suites[@]} -gt 0 ] || suites=(unit qemu libvirt)

bash tools/install-deps.sh

if [ -d "$builddir" ]; then
    meson setup --reconfigure "$builddir" -Dwerror=true >/dev/null
else
    meson setup "$builddir" -Dwerror=true >/dev/null
fi
ninja -C "$builddir"

rc=0
for s in "${suites[@]}"; do
    echo "=== suite $s"
    # Guests are heavy on 2 cores: one qemu/libvirt test at a time.
    jobs=1
    [ "$s" = unit ] && jobs=$(nproc)
    meson test -C "$builddir" --suite "$s" --num-processes "$jobs" --print-errorlogs \
        --logbase "testlog-$s" || rc=1
done

# One closing line from meson's own JSON logs, so CI can count.
python3 - "$builddir" "${suites[@]}" <<'PY'
import json, sys, os
bd = sys.argv[1]
p = f = s = 0
for suite in sys.argv[2:]:
    path = os.path.join(bd, "meson-logs", f"testlog-{suite}.json")
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"): p += 1
        elif r == "SKIP": s += 1
        else: f += 1
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $rc
