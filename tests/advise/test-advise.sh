#!/bin/bash
# tests/advise/test-advise.sh: memsharectl image advise on three guest disk
# images (ext4, made here with mke2fs -d from trees that share some files and
# differ in others): it proposes exactly the files identical in enough
# images, under the chosen prefixes, restricted by usage lists when given,
# computes the saving, and refuses what is not an ext4 image.
#   usage: test-advise.sh MEMSHARECTL
set -uo pipefail
ctl=$1
source "$(dirname "$0")/../lib/tap.sh"
command -v mke2fs >/dev/null || { echo "1..0 # SKIP mke2fs missing"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for g in 1 2 3; do
    r=$tmp/root$g
    mkdir -p "$r/usr/bin" "$r/usr/lib/py" "$r/lib" "$r/etc" "$r/home/u"
    head -c 300000 /dev/zero | tr '\0' 'P' > "$r/usr/bin/python3"       # same everywhere
    head -c 100000 /dev/zero | tr '\0' 'L' > "$r/lib/libc.so.6"         # same everywhere
    head -c 50000 /dev/zero | tr '\0' 'M' > "$r/usr/lib/py/mod.py"      # same everywhere
    echo "guest $g" > "$r/usr/lib/os-release"                            # differs
    echo "host$g" > "$r/etc/hostname"                                    # outside /usr,/lib
    head -c 200000 /dev/zero | tr '\0' 'H' > "$r/home/u/data"           # outside
    ln "$r/usr/bin/python3" "$r/usr/bin/python3.11"                       # hard link
    ln -s python3 "$r/usr/bin/py"                                        # symlink: not a file
done
# only guests 1 and 2 have this one
head -c 70000 /dev/zero | tr '\0' 'T' > "$tmp/root1/usr/bin/tool"
cp "$tmp/root1/usr/bin/tool" "$tmp/root2/usr/bin/tool"
for g in 1 2 3; do
    mke2fs -q -t ext4 -b 4096 -d "$tmp/root$g" "$tmp/disk$g.img" 16M >&2 || bail "mke2fs"
done

out=$("$ctl" image advise "$tmp"/disk{1,2,3}.img -o "$tmp/list" 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "advise exits 0" test "$rc" = 0
check "the common files are proposed" bash -c "grep -qx usr/bin/python3 '$tmp/list' && grep -qx lib/libc.so.6 '$tmp/list' && grep -qx usr/lib/py/mod.py '$tmp/list'"
check "a hard link is proposed under both names" grep -qx usr/bin/python3.11 "$tmp/list"
check "a file that differs is not" bash -c "! grep -q os-release '$tmp/list'"
check "a file in only 2 of 3 is not (default: all)" bash -c "! grep -q usr/bin/tool '$tmp/list'"
check "files outside /usr and /lib are not" bash -c "! grep -Eq 'etc/|home/' '$tmp/list'"
check "exactly 4 files" test "$(wc -l < "$tmp/list")" = 4
# bytes = 300000*2 (two names) + 100000 + 50000; saving = bytes * (3-1)
check "bytes counted" grep -qx "bytes=750000 (732.4 KiB)" <<< "$out"
check "saving = 2 extra copies" grep -q "^expected-saving=1500000 " <<< "$out"

"$ctl" image advise --min-guests 2 "$tmp"/disk{1,2,3}.img -o "$tmp/list2" >/dev/null 2>&1
check "--min-guests 2 adds the file two guests share" grep -qx usr/bin/tool "$tmp/list2"

printf '/usr/bin/python3\n/lib/libc.so.6\n' > "$tmp/used1"
printf '/usr/bin/python3\n' > "$tmp/used2"
printf '/usr/bin/python3\n/usr/lib/py/mod.py\n' > "$tmp/used3"
out=$("$ctl" image advise --used "$tmp/used1" --used "$tmp/used2" --used "$tmp/used3" \
      "$tmp"/disk{1,2,3}.img -o "$tmp/list3" 2>&1)
check "usage lists keep only what all guests used" bash -c "[ \"\$(cat '$tmp/list3')\" = usr/bin/python3 ]"
check "saving from usage: 3 readers -> 2 copies saved" grep -q "^expected-saving=600000 " <<< "$out"

"$ctl" image advise --under /etc "$tmp"/disk{1,2,3}.img -o "$tmp/list4" >/dev/null 2>&1
check "--under /etc: hostnames differ, nothing proposed" test ! -s "$tmp/list4"

head -c 1M /dev/zero > "$tmp/notfs.img"
out=$("$ctl" image advise "$tmp/notfs.img" 2>&1); rc=$?
check "not a file system: exit 3" test "$rc" = 3
check "the message names the image and the way out" grep -q "notfs.img: not an ext2/3/4 file system image" <<< "$out"
"$ctl" image advise --under ../x "$tmp/disk1.img" >/dev/null 2>&1; rc=$?
check "--under must be absolute: exit 2" test "$rc" = 2
done_testing
