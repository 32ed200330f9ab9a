#!/bin/bash
# tests/plot/test-plot.sh: memsharectl plot on a fixture runtime directory:
# a PNG and an SVG of two domains' histories, the domain name (with a quote
# in it) reaching the SVG intact, a damaged history line skipped with a
# message, and the exit codes for "nothing to plot" and bad options.
#   usage: test-plot.sh MEMSHARECTL
set -uo pipefail
ctl=$1
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run
hdr="# memshare history v1: time balloon.actual balloon.target balloon.base balloon.host-saved balloon.contribution tracking.used tracking.total images.bytes"
mk() {
    local uuid=$1 name=$2 d=$tmp/run/domains/$1
    mkdir -p "$d"
    printf '[agent]\ndomain=%s\nuuid=%s\n' "$name" "$uuid" > "$d/status"
    { echo "$hdr"
      for i in $(seq 0 30); do
          echo "$((1700000000 + 5 * i)) $(( (512 + i) << 20 )) $(( (520 + i) << 20 )) $((512 << 20)) $(( (i * 3) << 20 )) $(( i << 20 )) $(( (100 + i) << 20 )) $((768 << 20)) -"
      done
      echo "garbage line"
    } > "$d/history"
}
mk 11111111-2222-3333-4444-555555555555 "web1"
mk 11111111-2222-3333-4444-666666666666 "o'brien"

out=$("$ctl" plot -o "$tmp/p.png" 2>&1); rc=$?
sed "s/^/# /" <<< "$out"
check "plot exits 0" test "$rc" = 0
check "a PNG was written" bash -c "head -c 8 '$tmp/p.png' | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a'"
check "the PNG is not empty (> 10 KiB)" test "$(stat -c %s "$tmp/p.png")" -gt 10240
check "the damaged line was reported" grep -q "1 malformed line(s) skipped" <<< "$out"

"$ctl" plot -o "$tmp/p.svg" web1 "o'brien" >/dev/null 2>&1
check "an SVG was written" grep -q "<svg" "$tmp/p.svg"
check "domain names reach the plot intact" bash -c "grep -q 'web1 actual' '$tmp/p.svg' && grep -q \"o&apos;brien actual\\|o'brien actual\" '$tmp/p.svg'"

"$ctl" plot -o "$tmp/none.png" nosuchdomain >/dev/null 2>&1; rc=$?
check "no such domain: exit 4" test "$rc" = 4
"$ctl" plot >/dev/null 2>&1; rc=$?
check "no --output: exit 2" test "$rc" = 2
"$ctl" plot -o "$tmp/x.gif" --format gif >/dev/null 2>&1; rc=$?
check "unknown format: exit 2" test "$rc" = 2
done_testing
