#!/bin/bash
# tests/guest/debian/test-prepare-guest.sh: `memsharectl image prepare-guest`
# on small synthetic guest trees (a kernel's modules.dep/modules.builtin and
# boot/config, an fstab, initramfs-tools' config, an update-initramfs that
# records its arguments): what it changes, that it is idempotent, that
# --dry-run changes nothing, and that a guest without pmem support (or
# without initramfs-tools, or not a root tree) is refused naming the guest
# and what is missing, with nothing changed. The real guest is prepared by
# build-debian.sh and booted by test-debian-usr-dax.sh.
#   env: MS_CTL
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kver=6.1.0-99-amd64

# mkguest DIR [drop-module...]: a merged-/usr guest tree whose kernel has
# the pmem modules unless named to drop
mkguest() {
    local g=$1; shift
    mkdir -p "$g/etc/initramfs-tools/conf.d" "$g/usr/lib/modules/$kver" "$g/usr/sbin" "$g/usr/bin" "$g/boot"
    ln -s usr/lib "$g/lib"; ln -s usr/bin "$g/bin"; ln -s usr/sbin "$g/sbin"
    printf '# UNCONFIGURED FSTAB FOR BASE SYSTEM\nLABEL=root / ext4 rw 0 1\n/dev/vdb /usr ext4 ro 0 2\n' > "$g/etc/fstab"
    printf '# List of modules that you want to include in your initramfs.\nvirtio_blk\n' > "$g/etc/initramfs-tools/modules"
    {
        echo "kernel/drivers/nvdimm/libnvdimm.ko.xz:"
        echo "kernel/drivers/nvdimm/nd_pmem.ko.xz: kernel/drivers/nvdimm/libnvdimm.ko.xz"
        echo "kernel/drivers/nvdimm/virtio_pmem.ko.xz: kernel/drivers/nvdimm/nd_virtio.ko.xz kernel/drivers/nvdimm/libnvdimm.ko.xz"
        echo "kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz"
        echo "kernel/drivers/block/virtio_blk.ko.xz:"
        echo "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz"
    } > "$g/usr/lib/modules/$kver/modules.dep"
    echo "kernel/drivers/virtio/virtio.ko" > "$g/usr/lib/modules/$kver/modules.builtin"
    printf 'CONFIG_ZONE_DEVICE=y\nCONFIG_FS_DAX=y\n' > "$g/boot/config-$kver"
    local m
    for m in "$@"; do
        sed -i "/\/$m\.ko/d" "$g/usr/lib/modules/$kver/modules.dep"
        [ "$m" = CONFIG_FS_DAX ] && sed -i 's/^CONFIG_FS_DAX=y/# CONFIG_FS_DAX is not set/' "$g/boot/config-$kver"
    done
    # update-initramfs, run in the guest by chroot: a busybox script that
    # records its arguments (when there is no busybox, a marker for the
    # checks below to skip on)
    if [ -x /bin/busybox ]; then
        cp /bin/busybox "$g/usr/bin/busybox"
        printf '#!/usr/bin/busybox sh\necho "$@" > /update-initramfs.args\n' > "$g/usr/sbin/update-initramfs"
    else
        : > "$g/usr/sbin/update-initramfs"
    fi
    chmod 755 "$g/usr/sbin/update-initramfs"
}
sums() { (cd "$1" && find . -path ./usr/bin -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }

# 1. A dry run prints the plan and changes nothing.
g=$tmp/g1; mkguest "$g"
before=$(sums "$g")
out=$("$MS_CTL" image prepare-guest --dry-run --name debian12-usr "$g" 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "dry run exits 0" test "$rc" = 0
check "dry run names the fstab line" grep -q "etc/fstab: set LABEL=debian12-usr /usr ext4 ro,dax=always 0 0" <<< "$out"
check "dry run names the modules it would add" grep -q "modules: add virtio_pci virtio_pmem nd_pmem ext4$" <<< "$out"
check "dry run names the kernel" grep -q "kernels $kver" <<< "$out"
check "dry run says so" grep -q "dry run: nothing changed" <<< "$out"
check "dry run changed no file" test "$(sums "$g")" = "$before"

# 2. The real run.
if [ "$(id -u)" = 0 ] && [ -x "$g/usr/bin/busybox" ]; then
    out=$("$MS_CTL" image prepare-guest --name debian12-usr "$g" 2>&1); rc=$?
    echo "$out" | sed 's/^/# /'
    check "prepare-guest exits 0" test "$rc" = 0
    check "fstab has the dax /usr line" grep -qx "LABEL=debian12-usr /usr ext4 ro,dax=always 0 0" "$g/etc/fstab"
    check "the old /usr line is kept as a comment only" grep -qx "# memshare: replaced: /dev/vdb /usr ext4 ro 0 2" "$g/etc/fstab"
    check "exactly one active /usr line" test "$(grep -v '^#' "$g/etc/fstab" | awk '$2 == "/usr"' | wc -l)" = 1
    check "the root line is untouched" grep -qx "LABEL=root / ext4 rw 0 1" "$g/etc/fstab"
    for m in virtio_pmem nd_pmem virtio_pci ext4; do
        check "initramfs modules list $m" grep -qx "$m" "$g/etc/initramfs-tools/modules"
    done
    check "virtio_blk is not listed twice" test "$(grep -cx virtio_blk "$g/etc/initramfs-tools/modules")" = 1
    ws=$g/etc/initramfs-tools/scripts/local-block/memshare-usr
    check "an executable local-block script waits for the hot-plugged image" test -x "$ws"
    check "it waits for the image's label, up to 180 s in 0.2 s steps" \
        bash -c 'grep -q "blkid -l -t LABEL=debian12-usr" "$1" && grep -q "while \[ \$i -lt 900 \]" "$1"' _ "$ws"
    check "it waits only when initramfs-tools looks for the /usr image (local-block gets the device as \$1)" \
        grep -qxF '[ "$1" = "LABEL=debian12-usr" ] || exit 0' "$ws"
    check "the wait script is valid sh" sh -n "$ws"
    check "no ROOTDELAY (initramfs-tools sleeps that long on every boot)" \
        bash -c '! grep -rqs ROOTDELAY "$1/etc/initramfs-tools"' _ "$g"
    check "update-initramfs ran in the guest with -u -k all" grep -qx -- "-u -k all" "$g/update-initramfs.args"
    # 3. Idempotent: a second run changes no file.
    rm -f "$g/update-initramfs.args"
    before=$(sums "$g")
    out=$("$MS_CTL" image prepare-guest --name debian12-usr "$g" 2>&1); rc=$?
    check "a second run exits 0 and says nothing is left to change" \
        bash -c '[ "$1" = 0 ] && grep -q "already has LABEL=" <<< "$2" && grep -q "already has the modules" <<< "$2"' _ "$rc" "$out"
    rm -f "$g/update-initramfs.args"
    check "a second run changes no configuration file" test "$(sums "$g")" = "$before"
    # 4. --mode blk --no-initramfs: only the fstab line, without dax=always.
    out=$("$MS_CTL" image prepare-guest --name debian12-usr --mode blk --no-initramfs "$g" 2>&1); rc=$?
    check "blk mode exits 0" test "$rc" = 0
    check "blk mode: the /usr line is ro without dax=always" grep -qx "LABEL=debian12-usr /usr ext4 ro 0 0" "$g/etc/fstab"
    check "blk mode: still one active /usr line" test "$(grep -v '^#' "$g/etc/fstab" | awk '$2 == "/usr"' | wc -l)" = 1
    check "--no-initramfs ran no update-initramfs" test ! -e "$g/update-initramfs.args"
else
    echo "# skipping the real run: needs root (chroot) and /bin/busybox"
fi

# 5. Refusals: message names the guest and the reason, nothing changes.
refused() {  # refused DESC GUEST EXPECTED-RC PATTERN ARGS...
    local d=$1 gg=$2 want=$3 pat=$4; shift 4
    local b o r
    b=$(sums "$gg" 2>/dev/null)
    o=$("$MS_CTL" image prepare-guest "$@" "$gg" 2>&1); r=$?
    echo "$d: rc $r: $o" | sed 's/^/# /'
    check "$d: exit $want" test "$r" = "$want"
    check "$d: the message names the guest and the reason" bash -c 'grep -qF -- "$1" <<< "$2" && grep -Eq -- "$3" <<< "$2"' _ "$gg" "$o" "$pat"
    check "$d: nothing changed" test "$(sums "$gg" 2>/dev/null)" = "$b"
}
g=$tmp/nopmem; mkguest "$g" virtio_pmem nd_pmem
refused "kernel without virtio_pmem and nd_pmem" "$g" 3 \
    "kernel $kver has no pmem/DAX support: virtio_pmem, nd_pmem missing.*nothing was changed" --name debian12-usr
refused "the same guest in blk mode is fine in the dry run" "$g" 0 "fstab: set LABEL=debian12-usr /usr ext4 ro 0 0" \
    --name debian12-usr --mode blk --dry-run
g=$tmp/nodax; mkguest "$g" CONFIG_FS_DAX
refused "kernel without CONFIG_FS_DAX" "$g" 3 "CONFIG_FS_DAX missing" --name debian12-usr
g=$tmp/nokernel; mkguest "$g"; rm -rf "$g/usr/lib/modules"
refused "guest without a kernel" "$g" 3 "has no kernel modules" --name debian12-usr
g=$tmp/noinitramfs; mkguest "$g"; rm -f "$g/usr/sbin/update-initramfs"
refused "guest without initramfs-tools" "$g" 3 "has no initramfs-tools" --name debian12-usr
g=$tmp/linkedfstab; mkguest "$g"; mv "$g/etc/fstab" "$g/etc/fstab.real"; ln -s /etc/fstab "$g/etc/fstab"
refused "a symlinked fstab (could point out of the guest)" "$g" 3 "etc/fstab is a symbolic link \(refused\)" --name debian12-usr
g=$tmp/linkedetc; mkguest "$g"; mkdir -p "$tmp/hostetc/initramfs-tools"; echo "host fstab" > "$tmp/hostetc/fstab"
mv "$g/etc" "$g/etc.real"; ln -s "$tmp/hostetc" "$g/etc"
refused "a symlinked etc/ (could point at the host's /etc)" "$g" 3 "etc is a symbolic link \(refused\)" --name debian12-usr
check "the linked-to fstab is untouched" grep -qx "host fstab" "$tmp/hostetc/fstab"
g=$tmp/notroot; mkdir -p "$g/usr"
refused "a directory that is not a root tree" "$g" 3 "has no etc/" --name debian12-usr
out=$("$MS_CTL" image prepare-guest --name ../x "$tmp/g1" 2>&1); rc=$?
check "an invalid image name is refused with usage exit 2 ($out)" bash -c '[ "$1" = 2 ] && grep -q "not a valid image name" <<< "$2"' _ "$rc" "$out"
out=$("$MS_CTL" image prepare-guest --name x --mode nfs "$tmp/g1" 2>&1); rc=$?
check "an unknown mode is refused ($out)" bash -c '[ "$1" = 2 ] && grep -q "nfs" <<< "$2"' _ "$rc" "$out"
out=$("$MS_CTL" image prepare-guest --help 2>&1); rc=$?
check "--help exits 0 and describes GUEST-ROOT" bash -c '[ "$1" = 0 ] && grep -q "GUEST-ROOT" <<< "$2"' _ "$rc" "$out"
done_testing
