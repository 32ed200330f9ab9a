#!/bin/bash
# bench/image/run-bench.sh: build time of `memsharectl image build` against
# `mke2fs -t ext4 -b 4096 -O ^has_journal -d TREE` on the same tree, in the
# same run (page cache warm for both: one untimed read of the tree first).
# The tree is a copy of /usr/lib/python3.11 and /usr/bin (python3 and its
# libraries, what the density benchmark shares). mke2fs gets the size our
# builder chose, so both write the same amount of metadata.
#   usage: run-bench.sh [MEMSHARECTL] [RUNS]   (default build-image/tools/memsharectl, 3)
#   results: printed, and written to bench/image/RESULTS.part.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ctl=${1:-$here/../../build-image/tools/memsharectl}
runs=${2:-3}
tmp=$(mktemp -d /var/tmp/ms-image-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree
mkdir -p "$tree/usr/lib" "$tree/usr/bin"
cp -a /usr/lib/python3.11 "$tree/usr/lib/"
cp -a /usr/bin/. "$tree/usr/bin/"
files=$(find "$tree" | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
cat "$tree"/usr/bin/* "$tree"/usr/lib/python3.11/*.py > /dev/null 2>&1 || true   # warm the cache

load=$(cut -d' ' -f1-3 /proc/loadavg)
export MEMSHARE_IMAGE_STORE=$tmp/store MEMSHARE_CONFIG=$tmp/none.conf
now() { date +%s.%N; }
ours=() theirs=()
for i in $(seq 1 "$runs"); do
    rm -rf "$tmp/store"
    t0=$(now)
    "$ctl" image build --from "$tree" --name bench > "$tmp/out"
    t1=$(now)
    ours+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    img=$(ls "$tmp"/store/blobs/sha256-*.img)
    size=$(stat -c %s "$img")
    rm -f "$tmp/mke2fs.img"
    t0=$(now)
    mke2fs -q -F -t ext4 -b 4096 -O ^has_journal -L bench -d "$tree" "$tmp/mke2fs.img" $((size / 1024))k
    t1=$(now)
    theirs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "${ours[@]}")
mt=$(median "${theirs[@]}")
ratio=$(awk -v a="$mo" -v b="$mt" 'BEGIN { printf "%.2f", a / b }')
e2fsck -fn "$img" > /dev/null 2>&1 && fsck=clean || fsck=DIRTY
report=$(cat <<EOT
## Image build time (bench/image/run-bench.sh)

Tree: copy of /usr/lib/python3.11 + /usr/bin, $files entries, $((bytes >> 20)) MiB.
Image: $((size >> 20)) MiB, e2fsck -fn $fsck. Host: kernel $(uname -r), $(nproc) CPUs.
Median of $runs runs each, alternating, same run, page cache warm; load average before: $load.

| builder | seconds (median) | all runs |
|---|---|---|
| memsharectl image build (libext2fs, incl. sha256 of the image and the store's fsync/rename) | $mo | ${ours[*]} |
| mke2fs -t ext4 -b 4096 -O ^has_journal -d | $mt | ${theirs[*]} |

Ratio memsharectl / mke2fs -d: **$ratio** (goal: <= 1.0).
EOT
)
echo "$report"
echo "$report" > "$here/RESULTS.part.md"
