#!/bin/bash
# tests/image/test-image-cache.sh: hashing an image (memsharectl image
# verify; the hook and the agent hash the same way before every attach)
# leaves the host page cache as it found it: the pages it read are handed
# back, the pages that were cached before stay. Without that, every attach
# of a 650 MiB /usr image would put the whole image in host memory beside
# what the guests map.
#   usage: test-image-cache.sh MEMSHARECTL
set -uo pipefail
source "$(dirname "$0")/../lib/tap.sh"
ctl=$1
# on disk, not tmpfs: tmpfs pages are the file itself and are never dropped
tmp=$(mktemp -d /var/tmp/ms-image-cache.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export MEMSHARE_IMAGE_STORE=$tmp/store MEMSHARE_CONFIG=$tmp/none.conf
mkdir -p "$tmp/tree"
head -c $((24 << 20)) /dev/urandom > "$tmp/tree/data"
"$ctl" image build --from "$tmp/tree" --name cache-test > /dev/null 2>&1 || bail "image build"
blob=$(ls "$tmp"/store/blobs/sha256-*.img)
size=$(stat -c %s "$blob")
resident() { fincore -b -n -o RES "$blob" | tr -d ' '; }
drop() { sync "$blob"; dd if="$blob" iflag=nocache count=0 status=none; }

drop
check "the blob can be dropped from the page cache here ($(resident) bytes left)" \
    test "$(resident)" -lt $((1 << 20))
"$ctl" image verify cache-test > /dev/null || bail "verify"
after=$(resident)
echo "# $size-byte blob: $after bytes cached after verify"
check "verify read the whole image and left none of it cached" test "$after" -lt $((1 << 20))

# pages someone had cached before stay cached
drop
head -c $((8 << 20)) "$blob" > /dev/null
before=$(resident)
"$ctl" image verify cache-test > /dev/null || bail "verify"
after=$(resident)
echo "# 8 MiB read first: $before bytes cached before verify, $after after"
check "what was cached before verify is still cached after" test "$after" -ge $((8 << 20))
check "and nothing more than before" test "$after" -le "$before"
done_testing
