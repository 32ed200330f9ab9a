#!/bin/bash
# tests/guest/build-guest.sh: builds the test guest into OUTDIR (the build
# tree): Debian's own kernel (the package linux-image-amd64 depends on,
# fetched with `apt-get download`, never installed on the host) and a
# busybox initramfs with the modules memshare's tests need and an init that
# runs the scenario named on the kernel command line (ms.scenario=NAME).
# Everything is cached in OUTDIR: the .deb and the extracted kernel are
# reused while the package version stays the same.
#   usage: build-guest.sh OUTDIR SRCDIR(tests/guest)
set -euo pipefail
out=$(realpath -m "$1")
src=$(realpath "$2")
mkdir -p "$out"

# The kernel Debian ships now; the version is part of the cache key.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "build-guest: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
deb=$(ls "$out/deb/${pkg}_"*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
    mkdir -p "$out/deb"
    # apt's own cache may hold it already (e.g. after an earlier install)
    cached=$(ls /var/cache/apt/archives/"${pkg}"_*.deb 2>/dev/null | head -1 || true)
    [ -n "$cached" ] && cp "$cached" "$out/deb/"
    deb=$(ls "$out/deb/${pkg}_"*.deb 2>/dev/null | head -1 || true)
fi
if [ -z "$deb" ]; then
    (cd "$out/deb" && apt-get download "$pkg" >/dev/null 2>&1) || {
        # _apt cannot write into the build tree on some setups: download as root elsewhere
        t=$(mktemp -d); chmod 755 "$t"; (cd "$t" && apt-get download "$pkg" >/dev/null); mv "$t"/*.deb "$out/deb/"; rm -rf "$t"; }
    deb=$(ls "$out/deb/${pkg}_"*.deb | head -1)
fi
kroot=$out/kroot
if [ ! -f "$kroot/.from" ] || [ "$(cat "$kroot/.from")" != "$(basename "$deb")" ]; then
    rm -rf "$kroot"; mkdir -p "$kroot"
    dpkg-deb -x "$deb" "$kroot"
    basename "$deb" > "$kroot/.from"
fi
kver=$(ls "$kroot/lib/modules" | head -1)
[ -f "$kroot/lib/modules/$kver/modules.dep" ] || depmod -b "$kroot" "$kver"

# Modules, with their dependencies in load order (modprobe resolves them
# against the extracted tree, not the host's).
mods=(virtio_pci virtio_balloon virtio_blk virtio_pmem nd_pmem ext4 virtio_console)
root=$out/initramfs.d
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt,lib/modules,scenarios}
: > "$root/lib/modules/order"
for m in "${mods[@]}"; do
    modprobe --show-depends -d "$kroot" -S "$kver" "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    name=$(basename "$ko")
    case "$name" in
        *.xz) xz -dc "$ko" > "$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
        *.zst) zstd -qdc "$ko" > "$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
        *) cp "$ko" "$root/lib/modules/$name" ;;
    esac
    echo "$name" >> "$root/lib/modules/order"
done
[ -s "$root/lib/modules/order" ] || { echo "build-guest: no modules resolved" >&2; exit 1; }

cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$src/init" "$root/init"
for s in "$src"/scenarios/*.sh; do install -m 0755 "$s" "$root/scenarios/"; done

cp "$kroot/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
(cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 | gzip -1) > "$out/initramfs.img.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initramfs.img.tmp" "$out/initramfs.img"
echo "build-guest: kernel $kver, $(wc -l < "$root/lib/modules/order") modules, $(du -h "$out/initramfs.img" | cut -f1) initramfs"
