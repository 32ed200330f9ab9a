#!/bin/bash
# tests/image/test-image-ctl.sh: memsharectl image end to end, as root: a
# tree with every file type and odd names built into a private store;
# e2fsck clean; a few files checked through debugfs (an implementation
# independent of libext2fs' own API use in the builder); reproducibility;
# bad trees (unreadable file, bind-mount loop, --max-size) and bad names with
# their exit codes; list/info/verify/remove, a corrupted blob, and remove
# refused while a (fake) running domain lists the image.
#   usage: test-image-ctl.sh MEMSHARECTL
set -uo pipefail
ctl=$1
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d)
loopmnt=
cleanup() { [ -n "$loopmnt" ] && umount -l "$loopmnt" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
export MEMSHARE_IMAGE_STORE=$tmp/store
export MEMSHARE_RUNTIME_DIR=$tmp/run
export MEMSHARE_CONFIG=$tmp/none.conf
unset SOURCE_DATE_EPOCH

src=$tmp/tree
mkdir -p "$src/usr/bin" "$src/usr/lib/x" "$src/etc"
printf 'hello\n' > "$src/usr/bin/hello"
chown 1001:1002 "$src/usr/bin/hello"
chmod 4755 "$src/usr/bin/hello"   # after chown, which clears setuid
ln "$src/usr/bin/hello" "$src/usr/bin/hello-hard"
ln -s hello "$src/usr/bin/fast"
ln -s "$(printf 'x%.0s' $(seq 1 200))" "$src/usr/bin/slow"
printf 'spaces\n' > "$src/etc/with space"
printf 'nl\n' > "$src/etc/new"$'\n'"line"
printf 'dash\n' > "$src/etc/-dash"
printf 'utf8\n' > "$src/etc/ünïcødé"
mknod "$src/etc/console" c 5 1
mknod "$src/etc/disk" b 8 17
mkfifo "$src/etc/fifo"
truncate -s 100M "$src/usr/lib/sparse"
printf 'tail' | dd of="$src/usr/lib/sparse" bs=1 seek=$((50 << 20)) conv=notrunc status=none
head -c 300000 /dev/urandom > "$src/usr/lib/x/random.bin"
setfattr -n user.comment -v "shared image" "$src/usr/bin/hello"
setfattr -n trusted.memshare -v 1 "$src/usr/lib/x"
python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$src/etc/sock"

out=$("$ctl" image build --from "$src" --name base 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "build exits 0" test "$rc" = 0
check "build reports the socket it skipped" grep -q "etc/sock: socket skipped" <<< "$out"
sha=$(sed -n "s/^image 'base': .*sha256 \([0-9a-f]\{64\}\)$/\1/p" <<< "$out")
check "build prints the sha256" test ${#sha} = 64
blob=$tmp/store/blobs/sha256-$sha.img
check "the blob is named by its digest" test -f "$blob"
check "the blob is mode 0444" test "$(stat -c %a "$blob")" = 444
check "the blob's sha256 is its name" test "$(sha256sum < "$blob" | cut -d' ' -f1)" = "$sha"
check "the size is a multiple of 2 MiB" test $(( $(stat -c %s "$blob") % 2097152 )) = 0
check "e2fsck -fn is clean" bash -c "e2fsck -fn '$blob' >/dev/null 2>&1"
check "the label is the name" bash -c "dumpe2fs -h '$blob' 2>/dev/null | grep -q '^Filesystem volume name: *base$'"
check "4 KiB blocks, no journal" bash -c "dumpe2fs -h '$blob' 2>/dev/null | grep -q '^Block size: *4096$' && ! dumpe2fs -h '$blob' 2>/dev/null | grep -q has_journal"

dstat() { debugfs -R "stat \"$1\"" "$blob" 2>/dev/null; }
st=$(dstat /usr/bin/hello)
check "debugfs: setuid mode and owner" bash -c "grep -q 'Mode:  04755' <<< '$st' && grep -q 'User:  1001   Group:  1002' <<< '$st'"
check "debugfs: hard link count 2" grep -q "Links: 2" <<< "$st"
check "debugfs: user xattr" bash -c "debugfs -R 'ea_get /usr/bin/hello user.comment' '$blob' 2>/dev/null | grep -q 'shared image'"
check "debugfs: trusted xattr on a directory" bash -c "debugfs -R 'ea_get /usr/lib/x trusted.memshare' '$blob' 2>/dev/null | grep -q '= \"1\"'"
check "debugfs: hard links share the inode" test "$(debugfs -R 'stat /usr/bin/hello-hard' "$blob" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')" = "$(sed -n 's/^Inode: \([0-9]*\).*/\1/p' <<< "$st")"
check "debugfs: content" test "$(debugfs -R 'cat /usr/lib/x/random.bin' "$blob" 2>/dev/null | sha256sum)" = "$(sha256sum < "$src/usr/lib/x/random.bin")"
check "debugfs: sparse file keeps its holes" bash -c "debugfs -R 'stat /usr/lib/sparse' '$blob' 2>/dev/null | grep -q 'Blockcount: 8$'"
check "debugfs: sparse file size" bash -c "debugfs -R 'stat /usr/lib/sparse' '$blob' 2>/dev/null | grep -q 'Size: 104857600'"
check "debugfs: fast symlink" bash -c "debugfs -R 'stat /usr/bin/fast' '$blob' 2>/dev/null | grep -q 'Fast link dest: \"hello\"'"
check "debugfs: slow symlink length" bash -c "debugfs -R 'stat /usr/bin/slow' '$blob' 2>/dev/null | grep -q 'Size: 200'"
check "debugfs: char device 5,1" bash -c "debugfs -R 'stat /etc/console' '$blob' 2>/dev/null | grep -q 'Device major/minor number: 05:01'"
check "debugfs: block device 8,17" bash -c "debugfs -R 'stat /etc/disk' '$blob' 2>/dev/null | grep -q 'Device major/minor number: 08:17'"
check "debugfs: fifo" bash -c "debugfs -R 'stat /etc/fifo' '$blob' 2>/dev/null | grep -q 'Type: FIFO'"
check "debugfs: odd names present" bash -c "debugfs -R 'ls -p /etc' '$blob' 2>/dev/null | grep -q '/with space/' && debugfs -R 'ls -p /etc' '$blob' 2>/dev/null | grep -q '/-dash/' && debugfs -R 'ls -p /etc' '$blob' 2>/dev/null | grep -q '/ünïcødé/'"
check "debugfs: every timestamp is the epoch (1)" bash -c "! grep -E '^ *(c|a|m|cr)time:' <<< '$st' | grep -vq '0x00000001:00000000'"

# the host kernel's view: loop-mount read-only and compare with the source
listing() { (cd "$1" && find . -mindepth 1 \( -name sock -o -path ./lost+found \) -prune -o \
    -type d -printf '%P|%M|%U|%G|-|%l\n' -o -printf '%P|%M|%U|%G|%s|%l\n' | LC_ALL=C sort); }
mnt=$tmp/mnt
mkdir -p "$mnt"
if mount -o loop,ro "$blob" "$mnt" 2>/dev/null; then
    loopmnt=$mnt
    check "mounted: names, modes, owners, sizes, link targets match" diff <(listing "$src") <(listing "$mnt")
    check "mounted: file contents match" bash -c "diff -r --no-dereference '$src' '$mnt' 2>&1 | grep -v -e 'is a character special file' -e 'is a block special file' -e 'is a fifo while' -e 'Only in $mnt: lost+found' -e 'Only in $src/etc: sock' | grep -q . && exit 1 || exit 0"
    check "mounted: devices keep their numbers" test "$(stat -c '%t:%T' "$mnt/etc/disk")" = "8:11"
    check "mounted: xattr readable" bash -c "getfattr --only-values -n user.comment '$mnt/usr/bin/hello' 2>/dev/null | grep -qx 'shared image'"
    check "mounted: sparse file still sparse" test "$(stat -c %b "$mnt/usr/lib/sparse")" -le 16
    check "mounted: every file has the per-inode DAX flag" bash -c "lsattr '$mnt/usr/bin/hello' 2>/dev/null | grep -q '^[^ ]*x'"
    umount "$mnt"; loopmnt=
else
    for i in 1 2 3 4 5 6; do ok "# SKIP no loop devices"; done
fi

# reproducible through the CLI, into another store
out2=$(MEMSHARE_IMAGE_STORE=$tmp/store2 "$ctl" image build --from "$src" --name base 2>/dev/null)
check "a second build gives the same sha256" grep -q "$sha" <<< "$out2"

# selection by path list
printf 'usr/bin/hello\n# comment\netc/-dash\n' > "$tmp/paths"
out=$("$ctl" image build --from "$src" --name part --paths-from "$tmp/paths" usr/lib/x 2>&1); rc=$?
check "build with a path list exits 0" test "$rc" = 0
check "path list: 9 files (root, usr, usr/bin, hello, etc, -dash, usr/lib, x, random.bin)" grep -q ", 9 files," <<< "$out"
check "info lists the paths" bash -c "'$ctl' image info part | grep -q '\"usr/lib/x\"'"

# list / info / verify
out=$("$ctl" image list); rc=$?
echo "$out" | sed 's/^/# /'
check "list exits 0" test "$rc" = 0
check "list has a header" grep -q "^NAME *SIZE *FILES SHA256 *ADDED" <<< "$out"
check "list shows base with 12 digest digits and when it was added" grep -Eq "^base .* ${sha:0:12} 20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9:]{8}Z$" <<< "$out"
check "info prints the manifest" bash -c "'$ctl' image info base | grep -q '\"sha256\" : \"$sha\"'"
"$ctl" image info nosuch >/dev/null 2>&1; check "info of a missing image: exit 4" test $? = 4
out=$("$ctl" image verify base part 2>&1); rc=$?
check "verify: OK, exit 0" bash -c "test $rc = 0 && grep -q '^base: OK' <<< '$out'"

# bad names
"$ctl" image build --from "$src" --name ../evil >/dev/null 2>&1; check "build --name ../evil: exit 2" test $? = 2
"$ctl" image info ../base >/dev/null 2>&1; check "info ../base: exit 3" test $? = 3
"$ctl" image remove a/b >/dev/null 2>&1; check "remove a/b: exit 3" test $? = 3
check "nothing escaped the store" test ! -e "$tmp/evil.json" -a ! -e "$tmp/store/evil.json"

# bad trees
out=$("$ctl" image build --from "$src" --name small --max-size 1M 2>&1); rc=$?
check "--max-size 1M: exit 3" test "$rc" = 3
check "--max-size names the tree and the limit" grep -q "$src: the tree needs an image of .* more than the limit of 1048576" <<< "$out"
"$ctl" image build --from "$src" --name small --max-size 12Q >/dev/null 2>&1; check "--max-size 12Q: exit 2" test $? = 2

bad=$tmp/bad
mkdir -p "$bad/a/b"
printf 's' > "$bad/a/secret"; chmod 000 "$bad/a/secret"
out=$(setpriv --bounding-set -dac_override,-dac_read_search "$ctl" image build --from "$bad" --name bad 2>&1); rc=$?
diag "$out"
check "unreadable file (root without DAC override): fails" test "$rc" != 0
check "unreadable file: message names the file and the reason" grep -q "$bad/a/secret: cannot open: Permission denied" <<< "$out"
check "unreadable file: no image, no temp file left" bash -c "! ls '$tmp/store/blobs' | grep -q tmp && ! '$ctl' image info bad >/dev/null 2>&1"
chmod 644 "$bad/a/secret"

if mount --bind "$bad" "$bad/a/b" 2>/dev/null; then
    loopmnt=$bad/a/b
    out=$("$ctl" image build --from "$bad" --name loop 2>&1); rc=$?
    umount -l "$bad/a/b"; loopmnt=
    check "bind-mount loop: exit 3" test "$rc" = 3
    check "bind-mount loop: named" grep -q "$bad/a/b: directory loop" <<< "$out"
else
    ok "# SKIP cannot bind-mount"; ok "# SKIP cannot bind-mount"
fi
"$ctl" image build --from "$tmp/nonexistent" --name x >/dev/null 2>&1; check "missing source: exit 4" test $? = 4

# corruption
chmod 644 "$blob"
corrupt_byte "$blob" $((1 << 20))
chmod 444 "$blob"
out=$("$ctl" image verify base 2>&1); rc=$?
check "verify of a corrupted blob: exit 3" test "$rc" = 3
check "verify names the image and the mismatch" grep -q "image 'base': .* has sha256 .*, the manifest says $sha" <<< "$out"
"$ctl" image verify nosuch >/dev/null 2>&1; check "verify of a missing image: exit 4" test $? = 4

# remove, refused while in use
mkdir -p "$tmp/run/domains/0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b3c"
echo "part $(sed -n 's/.*"sha256" : "\(.*\)".*/\1/p' < <("$ctl" image info part)) dax" \
    > "$tmp/run/domains/0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b3c/images"
out=$("$ctl" image remove part 2>&1); rc=$?
check "remove of an image in use: exit 1" test "$rc" = 1
check "remove says why" grep -q "image 'part' is in use by a running domain" <<< "$out"
"$ctl" image remove base >/dev/null 2>&1; check "remove base: exit 0" test $? = 0
check "removed blob collected" test ! -e "$blob"
check "list no longer shows base" bash -c "! '$ctl' image list | grep -q '^base '"
"$ctl" image remove base >/dev/null 2>&1; check "remove again: exit 4" test $? = 4
rm -rf "$tmp/run/domains"
"$ctl" image remove part >/dev/null 2>&1; check "remove once the domain is gone: exit 0" test $? = 0

# usage
"$ctl" image >/dev/null 2>&1; check "no subcommand: exit 2" test $? = 2
"$ctl" image frobnicate >/dev/null 2>&1; check "unknown subcommand: exit 2" test $? = 2
"$ctl" image build --name x >/dev/null 2>&1; check "build without --from: exit 2" test $? = 2

done_testing
