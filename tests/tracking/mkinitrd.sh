#!/bin/bash
# tests/tracking/mkinitrd.sh: the test guest's initramfs plus the tracking
# scenarios: appends a second newc cpio archive (the kernel unpacks
# concatenated archives in order) holding scenarios/*.sh.
#   usage: mkinitrd.sh BASE_INITRD OUTPUT SCENARIO...
set -euo pipefail
base=$1 out=$2; shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/scenarios"
for s in "$@"; do install -m 0755 "$s" "$tmp/scenarios/"; done
{ cat "$base"; (cd "$tmp" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 | gzip -1); } > "$out.tmp"
mv "$out.tmp" "$out"
