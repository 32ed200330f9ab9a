#!/bin/bash
# tools/test.sh: the whole test suite on a fresh Debian 12 machine, as root:
# installs what it needs, builds, and runs the unit, qemu and libvirt suites
# (real QEMU under TCG, a real isolated libvirtd started by the tests, real
# KSM). Prints one closing line "N passed, N failed, N skipped".
# After the suites it runs the unit suite again under ASan+UBSan and the C
# unit tests under valgrind, then every libFuzzer target for a bounded time
# (tools/fuzz.sh).
#   usage: bash tools/test.sh [--suite unit|qemu|libvirt|sanitize|valgrind|fuzz]... [BUILDDIR]
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
[ ${#suites[@]} -gt 0 ] || suites=(unit qemu libvirt sanitize valgrind fuzz)

bash tools/install-deps.sh

if [ -d "$builddir" ]; then
    meson setup --reconfigure "$builddir" -Dwerror=true >/dev/null
else
    meson setup "$builddir" -Dwerror=true >/dev/null
fi
ninja -C "$builddir"

rc=0
extra_pass=0
extra_fail=0
for s in "${suites[@]}"; do
    echo "=== suite $s"
    case "$s" in
    sanitize)
        # The same unit tests, built with ASan+UBSan: any leak, overflow or
        # UB fails the test that triggered it.
        sbd=$builddir-asan
        [ -d "$sbd" ] || meson setup "$sbd" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
        ninja -C "$sbd" >/dev/null
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            meson test -C "$sbd" --suite unit --num-processes "$(nproc)" --print-errorlogs \
            --logbase testlog-sanitize || rc=1
        cp "$sbd/meson-logs/testlog-sanitize.json" "$builddir/meson-logs/" 2>/dev/null || true
        ;;
    valgrind)
        # Only C test programs run under valgrind: valgrind on bash would
        # test bash, and a TAP script cannot report "skipped" by exit code
        # (meson counts 77 from a TAP test as an error).  The unit suite
        # already ran the scripts.
        mapfile -t ctests < <(meson introspect --tests "$builddir" | python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if any(s.split(":")[-1] == "unit" for s in t["suite"]) and os.path.basename(t["cmd"][0]) not in ("bash", "sh", "dash", "python3", "xmllint"):
        print(t["name"])')
        # an empty list would make meson run every test, qemu ones included
        [ ${#ctests[@]} -gt 0 ] || { echo "test.sh: no C unit tests found in $builddir" >&2; rc=1; continue; }
        meson test -C "$builddir" --num-processes "$(nproc)" --print-errorlogs --logbase testlog-valgrind \
            --wrapper "$PWD/tools/valgrind-wrap.sh" --timeout-multiplier 10 "${ctests[@]}" || rc=1
        # meson names the log after the wrapper too
        mv -f "$builddir/meson-logs/testlog-valgrind-valgrind-wrap.sh.json" \
            "$builddir/meson-logs/testlog-valgrind.json" 2>/dev/null || true
        ;;
    fuzz)
        if [ -f tools/fuzz.sh ]; then
            if bash tools/fuzz.sh "${MS_FUZZ_SECONDS:-60}"; then extra_pass=$((extra_pass + 1))
            else extra_fail=$((extra_fail + 1)); rc=1; fi
        fi
        ;;
    *)
        # Guests are heavy on 2 cores: one qemu/libvirt test at a time.
        jobs=1
        [ "$s" = unit ] && jobs=$(nproc)
        meson test -C "$builddir" --suite "$s" --num-processes "$jobs" --print-errorlogs \
            --logbase "testlog-$s" || rc=1
        ;;
    esac
done

# One closing line from meson's own JSON logs, so CI can count.
python3 - "$builddir" "$extra_pass" "$extra_fail" "${suites[@]}" <<'PY'
import json, sys, os
bd = sys.argv[1]
p, f, s = int(sys.argv[2]), int(sys.argv[3]), 0
for suite in sys.argv[4:]:
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
