# tests/lib/tap.sh: minimal TAP helpers for the shell tests. Each check
# prints "ok N - what" or "not ok N - what"; done_testing prints the plan and
# fails the script if any check failed.
_tap_n=0
_tap_failed=0
ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
# check "description" command...: ok when the command succeeds
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# check_todo "why" "description" command...: a known intermittent failure
# under investigation: a failure is reported as TAP TODO (not counted), a
# pass as a plain ok (meson counts "ok # TODO" as an unexpected pass, i.e. a
# failure). Every use names its reason.
check_todo() {
    local why=$1 d=$2; shift 2
    _tap_n=$((_tap_n + 1))
    if "$@"; then echo "ok $_tap_n - $d"; else echo "not ok $_tap_n - $d # TODO $why"; fi
}
# wait_for SECONDS command...: polls every 0.1 s until the command succeeds
wait_for() {
    local limit=$1; shift
    local end=$(( $(date +%s%N) + limit * 1000000000 ))
    while [ "$(date +%s%N)" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    "$@" >/dev/null 2>&1
}
# corrupt_byte FILE OFFSET: inverts one byte in place.  Inverting, not
# writing a constant: over random content a constant equals the old byte
# once in 256 runs, and the "corruption" then changes nothing (CI hit that).
corrupt_byte() {
    local old
    old=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    [ -n "$old" ] || { echo "# corrupt_byte: $1 has no byte at offset $2" >&2; return 1; }
    printf "\\$(printf '%03o' $(( 255 - old )))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# diag TEXT: TEXT as TAP comments, every line prefixed (a bare second line
# of a command's message is an unknown TAP line to meson)
diag() { sed 's/^/# /' <<< "$*"; }
bail() { echo "Bail out! $*"; exit 1; }
done_testing() { echo "1..$_tap_n"; [ "$_tap_failed" -eq 0 ]; }
