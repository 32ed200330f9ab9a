#!/bin/bash
# tests/image/test-image-disk.sh: memsharectl image build --from-disk, as
# root. One tree with every file type the directory path supports (setuid,
# owners, hard links, fast and slow symlinks, devices with old and new
# numbers, a fifo, a sparse file, user/trusted/security xattrs, a POSIX ACL,
# odd names) is built from the directory and, put into an ext4 disk with
# mke2fs -d, from the disk: the sha256 must be the same, for a whole-disk
# file system, an MBR and a GPT partitioned disk. Then --usr, qcow2 and
# disks that are not file systems, and hostile disks (directory loop, a
# directory linked twice, a name with '/', a 2^56-byte file, a corrupted
# superblock and directory block, a journal that needs recovery, an fs
# marked with errors): each refused with the disk and the path named, exit
# 3, nothing left in the store.
#   usage: test-image-disk.sh MEMSHARECTL
set -uo pipefail
ctl=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run
export MEMSHARE_CONFIG=$tmp/none.conf
unset SOURCE_DATE_EPOCH
build() {   # build STORE ARGS...: prints the sha256 (empty on failure), output in $tmp/out
    MEMSHARE_IMAGE_STORE=$tmp/$1 "$ctl" image build --name usr "${@:2}" > "$tmp/out" 2>&1
    local rc=$?
    sed 's/^/# /' "$tmp/out" >&2
    sed -n "s/^image 'usr': .*sha256 \([0-9a-f]\{64\}\)$/\1/p" "$tmp/out"
    return $rc
}
refused() {   # refused "what" PATTERN ARGS...: exit 3, message matches, no blob or temp file left
    local what=$1 pat=$2; shift 2
    rm -rf "$tmp/bad"
    MEMSHARE_IMAGE_STORE=$tmp/bad "$ctl" image build --name bad "$@" > "$tmp/out" 2>&1
    local rc=$?
    sed 's/^/# /' "$tmp/out"
    check "$what: exit 3" test "$rc" = 3
    check "$what: message names the disk and the path" grep -q -- "$pat" "$tmp/out"
    check "$what: nothing left in the store" test -z "$(ls -A "$tmp/bad/blobs" 2>/dev/null)"
}

root=$tmp/root
u=$root/usr
mkdir -p "$u/bin" "$u/lib/x/deep/er" "$u/share/doc" "$root/etc"
printf 'hello\n' > "$u/bin/hello"
chown 1001:1002 "$u/bin/hello"
chmod 4755 "$u/bin/hello"
ln "$u/bin/hello" "$u/bin/hello-hard"
ln "$u/bin/hello" "$u/lib/x/third-name"
ln -s hello "$u/bin/fast"
ln -s "$(printf 'x%.0s' $(seq 1 200))" "$u/bin/slow"
ln -s ../lib "$u/bin/lib-link"
printf 'spaces\n' > "$u/share/doc/with space"
printf 'nl\n' > "$u/share/doc/new"$'\n'"line"
printf 'utf8\n' > "$u/share/doc/ünïcødé"
mknod "$u/lib/console" c 5 1
mknod "$u/lib/nvme" b 259 300000   # new encoding: minor > 255
mkfifo "$u/lib/fifo"
truncate -s 100M "$u/lib/sparse"
printf 'tail' | dd of="$u/lib/sparse" bs=1 seek=$((50 << 20)) conv=notrunc status=none
head -c 3000000 /dev/urandom > "$u/lib/x/random.bin"
head -c 4097 /dev/urandom > "$u/lib/x/deep/er/odd-size"
# zero blocks inside data (mke2fs -d stores them as holes; the directory
# does not): 12 KiB of zeros at an offset no chunk boundary falls on, and a
# single zero KiB inside a 4 KiB block (a hole on the 1 KiB-block disk)
{ head -c 1500000 /dev/urandom; head -c 12288 /dev/zero; head -c 1000000 /dev/urandom; } > "$u/lib/x/zero-blocks"
python3 -c 'import os,sys; b=bytearray(os.urandom(65536)); b[41984:43008]=bytes(1024); open(sys.argv[1],"wb").write(b)' "$u/lib/x/zero-kib"
# 8 MiB of zeros inside data: what the image needs must be counted by the
# content, or the directory and the disk get different sizes
{ head -c 100000 /dev/urandom; head -c 8M /dev/zero; head -c 100000 /dev/urandom; } > "$u/lib/x/zero-run"
: > "$u/lib/empty"
chmod 1777 "$u/share/doc"
chmod 2755 "$u/lib/x"
setfattr -n user.comment -v "shared image" "$u/bin/hello"
setfattr -n trusted.memshare -v 1 "$u/lib/x"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$u/bin/fast" 2>/dev/null ||
    setfattr -n security.memshare -v cap "$u/lib/empty"
# a POSIX ACL (user 1001 r--), in the kernel's xattr format
acl=$(python3 -c 'import base64,struct; print("0s" + base64.b64encode(struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in [(1, 7, 0xffffffff), (2, 4, 1001), (4, 5, 0xffffffff), (0x10, 5, 0xffffffff), (0x20, 4, 0xffffffff)])).decode())')
setfattr -n system.posix_acl_access -v "$acl" "$u/lib/x/random.bin"
check "the source tree has an ACL" bash -c "getfattr -m - -d '$u/lib/x/random.bin' 2>/dev/null | grep -q posix_acl_access"

sha_dir=$(build dir --from "$u")
check "build from the directory" test ${#sha_dir} = 64

# 400 MiB: mke2fs' "small" type, 1 KiB blocks (the builder's images have 4 KiB)
mke2fs -q -F -t ext4 -L guestroot -d "$root" "$tmp/disk.img" 400M >/dev/null || bail "mke2fs -d"
disk_sum=$(sha256sum < "$tmp/disk.img")
sha=$(build disk --from-disk "$tmp/disk.img:/usr")
check "build from the disk's /usr" test ${#sha} = 64
check "disk and directory give the same sha256" test "$sha" = "$sha_dir"
blob=$tmp/disk/blobs/sha256-$sha.img
check "e2fsck -fn of the image from the disk is clean" bash -c "e2fsck -fn '$blob' >/dev/null 2>&1"
check "the manifest names the disk and the path" \
    bash -c "MEMSHARE_IMAGE_STORE='$tmp/disk' '$ctl' image info usr | grep -q '\"source\" : \"$tmp/disk.img:/usr\"'"
check "debugfs: the ACL came through" \
    bash -c "debugfs -R 'ea_list /lib/x/random.bin' '$blob' 2>/dev/null | grep -q 'system.posix_acl_access'"
check "debugfs: new device encoding kept (259:300000)" \
    bash -c "debugfs -R 'stat /lib/nvme' '$blob' 2>/dev/null | grep -q 'Device major/minor number: 259:300000'"
check "debugfs: the sparse file stays sparse" \
    bash -c "debugfs -R 'stat /lib/sparse' '$blob' 2>/dev/null | grep -q 'Blockcount: 8$'"

# the disk's root (a guest root: /usr is only a part of it)
mke2fs -q -F -t ext4 -b 4096 -d "$root" "$tmp/disk4k.img" 400M >/dev/null || bail "mke2fs -d -b 4096"
sha_4k=$(build disk4k --from-disk "$tmp/disk4k.img:/usr")
check "a disk with 4 KiB blocks: same sha256" test "$sha_4k" = "$sha_dir"
sha_r=$(build rootfs --from-disk "$tmp/disk.img")
check "build from the whole disk's root (default path /)" test ${#sha_r} = 64
check "root image differs from the /usr image" test "$sha_r" != "$sha"

# partitioned disks, as libvirt guests' raw disks are
python3 "$here/mkpart.py" mbr "$tmp/mbr.img" - "$tmp/disk.img"
sha_m=$(build mbr --from-disk "$tmp/mbr.img:/usr")
check "MBR disk (ESP + ext4 partition 2): same sha256" test "$sha_m" = "$sha"
python3 "$here/mkpart.py" gpt "$tmp/gpt.img" - "$tmp/disk.img"
sha_g=$(build gpt --from-disk "$tmp/gpt.img:/usr")
check "GPT disk: same sha256" test "$sha_g" = "$sha"
check "the manifest names the partition" \
    bash -c "MEMSHARE_IMAGE_STORE='$tmp/gpt' '$ctl' image info usr | grep -q 'gpt.img partition 2:/usr'"
mke2fs -q -F -t ext4 "$tmp/other.img" 16M >/dev/null
python3 "$here/mkpart.py" gpt "$tmp/two.img" "$tmp/other.img" "$tmp/disk.img"
refused "two ext partitions without --partition" "two.img: partitions 1, 2 hold ext file systems: choose one with --partition N" --from-disk "$tmp/two.img:/usr"
sha_p=$(build two --from-disk "$tmp/two.img:/usr" --partition 2)
check "--partition 2: same sha256" test "$sha_p" = "$sha"
MEMSHARE_IMAGE_STORE=$tmp/bad "$ctl" image build --name bad --from-disk "$tmp/two.img:/usr" --partition 7 > "$tmp/out" 2>&1
check "--partition 7: exit 4, named" bash -c "test $? = 4 && grep -q 'two.img: no partition 7' '$tmp/out'"

# what is not a raw ext disk
qemu-img convert -f raw -O qcow2 "$tmp/disk.img" "$tmp/disk.qcow2"
refused "qcow2" "disk.qcow2: is a qcow2 image, not a raw disk; convert it first (qemu-img convert -O raw" --from-disk "$tmp/disk.qcow2:/usr"
head -c 4M /dev/urandom > "$tmp/noise.img"
refused "random bytes" "noise.img: no ext2/3/4 file system" --from-disk "$tmp/noise.img"
refused "a path that is a symlink in the disk" "disk.img:/usr/bin/lib-link: is a symbolic link" --from-disk "$tmp/disk.img:/usr/bin/lib-link"
MEMSHARE_IMAGE_STORE=$tmp/bad "$ctl" image build --name bad --from-disk "$tmp/disk.img:/nope" > "$tmp/out" 2>&1
check "missing path in the disk: exit 4, named" bash -c "test $? = 4 && grep -q 'disk.img:/nope: no such file or directory' '$tmp/out'"
"$ctl" image build --name x --from "$u" --from-disk "$tmp/disk.img" >/dev/null 2>&1
check "--from and --from-disk together: exit 2" test $? = 2

# --usr: a tree that is not a /usr is refused, the manifest is marked
sha_u=$(build usrmark --from-disk "$tmp/disk.img:/usr" --usr)
check "--usr on the disk's /usr: same sha256" test "$sha_u" = "$sha"
check "--usr marks the manifest" grep -q '"usr" : true' "$tmp/usrmark/names/usr.json"
check "without --usr, no mark" bash -c "! grep -q '\"usr\" : true' '$tmp/disk/names/usr.json'"
refused "--usr on a whole root" "disk.img:/: not a /usr (--usr): no bin/ and lib/ at its top; it looks like a whole root file system: build from its usr/" --from-disk "$tmp/disk.img" --usr
refused "--usr on a tree without lib/" "$u/bin: not a /usr (--usr): no bin/ and lib/" --from "$u/bin" --usr
mkdir -p "$tmp/halfusr/bin"; : > "$tmp/halfusr/lib"
refused "--usr: lib is a file" "halfusr: not a /usr (--usr): no lib/ (not a directory) at its top" --from "$tmp/halfusr" --usr

# hostile disks (no metadata_csum where bytes are patched, so the builder's
# own checks are what refuses)
hostile() {   # hostile NAME DEBUGFS-COMMAND...: a copy of the tree's disk, changed
    mke2fs -q -F -t ext4 -O ^metadata_csum -d "$root" "$tmp/$1.img" 400M >/dev/null
    local c
    for c in "${@:2}"; do debugfs -w -R "$c" "$tmp/$1.img" >/dev/null 2>&1; done
}
hostile loop "link /usr/lib /usr/lib/x/loop"
refused "directory loop" "loop.img:/usr/lib/x/loop: directory loop" --from-disk "$tmp/loop.img:/usr"
hostile twice "link /usr/lib/x /usr/share/x-again"
refused "a directory linked twice" "twice.img:/usr/share/x-again: directory reached twice" --from-disk "$tmp/twice.img:/usr"
hostile slash "write /dev/null /usr/bin/SLASHXNAME"
python3 - "$tmp/slash.img" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = b.find(b"SLASHXNAME"); assert i > 0
b[i:i + 10] = b"SLASH/NAME"
open(p, "wb").write(b)
PY
refused "a name with '/'" 'slash.img:/usr/bin: an entry named "SLASH/NAME"' --from-disk "$tmp/slash.img:/usr"
hostile huge "sif /usr/lib/x/random.bin size 0x100000000000000"
refused "a 2^56-byte file" "huge.img:/usr/lib/x/random.bin: size 72057594037927936 bytes is more than an ext4 file can have" --from-disk "$tmp/huge.img:/usr"
hostile bigger "sif /usr/lib/x/random.bin size 0x10000000000" "sif /usr/lib/x/random.bin blocks 0xffffffff"
refused "a fully allocated file larger than the fs" "bigger.img:/usr/lib/x/random.bin: size 1099511627776 bytes is larger than the whole file system" --from-disk "$tmp/bigger.img:/usr"
hostile recover "feature needs_recovery"
refused "journal needs recovery" "recover.img: the journal needs recovery" --from-disk "$tmp/recover.img:/usr"
hostile errors "ssv state 2"
refused "marked with errors" "errors.img: the file system is marked as having errors" --from-disk "$tmp/errors.img:/usr"
# with metadata_csum, corruption is caught by libext2fs' checksums
cp "$tmp/disk.img" "$tmp/sb.img"
printf '\x01\x02\x03\x04' | dd of="$tmp/sb.img" bs=1 seek=$((1024 + 0x3fc)) conv=notrunc status=none
refused "corrupted superblock" "sb.img: cannot open the file system: Superblock checksum does not match" --from-disk "$tmp/sb.img:/usr"
cp "$tmp/disk.img" "$tmp/dirblk.img"
blk=$(debugfs -R "blocks /usr/share/doc" "$tmp/dirblk.img" 2>/dev/null | awk '{print $1}')
bs=$(dumpe2fs -h "$tmp/dirblk.img" 2>/dev/null | sed -n 's/^Block size: *//p')
printf 'garbage!' | dd of="$tmp/dirblk.img" bs=1 seek=$((blk * bs + 40)) conv=notrunc status=none
refused "corrupted directory block" "dirblk.img:/usr/share/doc: cannot read directory" --from-disk "$tmp/dirblk.img:/usr"
check "the disk was only read" test "$(sha256sum < "$tmp/disk.img")" = "$disk_sum"

done_testing
