#!/bin/bash
# tests/guest/debian/build-debian.sh: builds the Debian 12 test guest into
# OUTDIR (the build tree), split the way memshare is meant to be used:
#   usr/              the guest's /usr tree (bookworm is merged-/usr: /bin,
#                     /sbin, /lib, /lib64 link into it); the tests make the
#                     shared image from it with `memsharectl image build`
#   root-dax.img      the writable root disk (raw ext4, label ms-root), its
#                     /usr an empty mount point, fstab
#                     `LABEL=debian12-usr /usr ext4 ro,dax=always 0 0`
#   root-blk.img      the same with the blk line (`... ro 0 0`)
#   root-full.img     the guest as it is without memshare: /usr inside the
#                     root disk, no /usr line (the benchmark's baseline)
#   vmlinuz, initrd.img        the kernel and the initramfs that
#                     `memsharectl image prepare-guest` made (pmem modules,
#                     ROOTDELAY for the hot-plugged /usr)
#   initrd-stock.img  the initramfs debootstrap made (MODULES=most: no
#                     drivers/nvdimm): a guest that was not prepared
# The guest is prepared with `memsharectl image prepare-guest` (CTL), the
# way a user prepares theirs. Cached: the debootstrap tree (base/) is kept
# while the package list (packages) is the same; the rest (about 1 minute)
# is redone when this script or a guest file changes. debootstrap itself
# takes 1-4 minutes here (2 cores, Debian's archive).
#   usage: build-debian.sh OUTDIR SRCDIR(tests/guest/debian) MEMSHARECTL
set -euo pipefail
out=$(realpath -m "$1")
src=$(realpath "$2")
ctl=$(realpath "$3")
image=debian12-usr
mirror=${MS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$out"
[ "$(id -u)" = 0 ] || { echo "build-debian: must run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-debian: debootstrap missing (tools/install-deps.sh)" >&2; exit 1; }
t0=$(date +%s)
log() { echo "build-debian: $* ($(($(date +%s) - t0)) s)"; }
# debootstrap can leave the /proc it mounted in the target behind (seen with
# several debootstraps running at once); a cp -a or rm -rf of the tree would
# then walk the host's /proc (kcore) and fill the disk. Unmount whatever is
# mounted below a tree before touching it, and copy one file system only.
unmount_below() {
    findmnt -rn -o TARGET | { grep -F "$1/" || true; } | sort -r | while read -r m; do
        umount -l "$m"
    done
}

# 1. debootstrap, keyed by the package list.
pkgs=$(grep -v '^#' "$src/packages" | grep . | LC_ALL=C sort | paste -sd, -)
key=$(echo "bookworm minbase $pkgs" | sha256sum | cut -c1-16)
base=$out/base
if [ "$(cat "$base/.ms-key" 2>/dev/null)" != "$key" ]; then
    unmount_below "$base"; unmount_below "$base.tmp"
    rm -rf "$base" "$base.tmp"
    log "debootstrap bookworm minbase + $pkgs"
    debootstrap --variant=minbase --include="$pkgs" bookworm "$base.tmp" "$mirror" > "$out/debootstrap.log" 2>&1 || {
        tail -20 "$out/debootstrap.log" >&2; echo "build-debian: debootstrap failed ($out/debootstrap.log)" >&2; exit 1; }
    unmount_below "$base.tmp"
    chroot "$base.tmp" apt-get clean
    # what debootstrap's own initramfs is: the guest before prepare-guest
    cp "$base.tmp"/boot/initrd.img-* "$base.tmp/.ms-initrd-stock"
    echo "$key" > "$base.tmp/.ms-key"
    mv "$base.tmp" "$base"
    log "debootstrap done"
fi

# 2. The guest: a copy of the tree, configured.
tree=$out/tree
unmount_below "$base"; unmount_below "$tree"
rm -rf "$tree" "$out"/root-*.img.tmp
cp -ax "$base" "$tree"
rm -f "$tree/.ms-key" "$tree/.ms-initrd-stock"
echo ms-debian > "$tree/etc/hostname"
chroot "$tree" passwd -d root > /dev/null
cat > "$tree/etc/fstab" <<'EOF'
# the Debian 12 memshare test guest: a small writable root, /usr from the shared image
LABEL=ms-root / ext4 rw,errors=remount-ro 0 1
EOF
mkdir -p "$tree/etc/ms-test"
install -m 0755 "$src/report.sh" "$tree/etc/ms-test/report.sh"
install -m 0644 "$src/ms-report.service" "$tree/etc/systemd/system/ms-report.service"
ln -sf ../ms-report.service "$tree/etc/systemd/system/multi-user.target.wants/ms-report.service"
# The density benchmark's guest side (bench/density-host): a NIC by DHCP
# (systemd-networkd; QEMU's user network), nginx-light serving a working
# set, the guest's /proc counters over HTTP. All of it only with
# ms.bench=density on the kernel command line: the other tests boot this
# disk without a NIC, where a waiting network would only slow the boot.
install -m 0755 "$src/density.sh" "$tree/etc/ms-test/density.sh"
install -m 0644 "$src/ms-density.service" "$tree/etc/systemd/system/ms-density.service"
ln -sf ../ms-density.service "$tree/etc/systemd/system/multi-user.target.wants/ms-density.service"
mkdir -p "$tree/etc/systemd/network"
printf '[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n' > "$tree/etc/systemd/network/10-ms-density.network"
ln -sf /lib/systemd/system/systemd-networkd.service "$tree/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
for u in systemd-networkd nginx; do
    mkdir -p "$tree/etc/systemd/system/$u.service.d"
    printf '[Unit]\nConditionKernelCommandLine=ms.bench=density\n' > "$tree/etc/systemd/system/$u.service.d/ms-density.conf"
done
[ -e "$tree/etc/systemd/system/multi-user.target.wants/nginx.service" ] ||
    ln -sf /lib/systemd/system/nginx.service "$tree/etc/systemd/system/multi-user.target.wants/nginx.service"
# ttyS0 carries the markers the tests read; a login there would not only
# interleave with them: systemd hangs the tty up when it starts the getty
# and agetty resets it: marker lines went missing. To log in
# while debugging, boot a copy of the disk with the mask link removed.
ln -sf /dev/null "$tree/etc/systemd/system/serial-getty@ttyS0.service"
# Timers that would wake a test guest (apt, fstrim, scrubs) are of no use
# in a throwaway TCG guest and add noise to the benchmark.
rm -f "$tree"/etc/systemd/system/timers.target.wants/*.timer
cp "$tree/etc/fstab" "$out/fstab-full"

# 3. memshare's own step, as a user runs it (dogfooding): fstab line,
# initramfs modules, ROOTDELAY, update-initramfs.
"$ctl" image prepare-guest --name "$image" "$tree" | sed 's/^/build-debian: /'
kver=$(ls "$tree/usr/lib/modules" | head -1)
log "prepared (kernel $kver)"

# 4. Split: the /usr tree, the root disks.
mkroot() {   # mkroot FSTAB OUT [full]
    local st=$out/rootstage
    rm -rf "$st"; mkdir "$st"
    local e
    for e in "$tree"/* "$tree"/.[!.]*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        [ "$(basename "$e")" = usr ] && [ "${3:-}" != full ] && continue
        cp -a "$e" "$st/"
    done
    mkdir -p "$st/usr"
    cp "$1" "$st/etc/fstab"
    local mib=$(( $(du -sm "$st" | cut -f1) + 256 ))
    rm -f "$2.tmp"
    mkfs.ext4 -q -F -L ms-root -d "$st" "$2.tmp" "${mib}M"
    mv "$2.tmp" "$2"
    rm -rf "$st"
}
cp "$tree/etc/fstab" "$out/fstab-dax"
"$ctl" image prepare-guest --name "$image" --mode blk --no-initramfs "$tree" > /dev/null
cp "$tree/etc/fstab" "$out/fstab-blk"
mkroot "$out/fstab-dax" "$out/root-dax.img"
mkroot "$out/fstab-blk" "$out/root-blk.img"
mkroot "$out/fstab-full" "$out/root-full.img" full
log "root disks made"
rm -rf "$out/usr"
mv "$tree/usr" "$out/usr"
cp "$tree/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
cp "$tree/boot/initrd.img-$kver" "$out/initrd.img.tmp"
cp "$base/.ms-initrd-stock" "$out/initrd-stock.img"
rm -rf "$tree"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
touch "$out/stamp"
log "kernel $kver, /usr $(du -sm "$out/usr" | cut -f1) MiB, root disk $(du -sm "$out/root-dax.img" | cut -f1) MiB used"
