#!/bin/bash
# tests/systemd/build-host.sh OUTDIR: the Debian 12 tree the systemd-host test
# boots with `systemd-nspawn -b` (systemd as PID 1, Debian's socket-activated
# libvirtd, QEMU, memshare's build dependencies). Built once with debootstrap
# from Debian's archive and cached: OUTDIR/stamp holds the package list the tree
# was built from; the tree is rebuilt only when that list changes (or the stamp
# is missing, i.e. an earlier build did not finish).
set -euo pipefail
out=$1
tree=$out/root
mirror=${MS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# minbase + what a libvirt host runs + memshare's build dependencies
# (tools/install-deps.sh, build part) + what the test uses inside.
pkgs=(
    systemd systemd-sysv dbus libpam-systemd
    libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    build-essential pkg-config meson ninja-build
    libglib2.0-dev libjson-glib-dev libext2fs-dev libxml2-dev libxml2-utils
    libvirt-dev libsystemd-dev e2fsprogs procps util-linux python3 jq
)
want="bookworm ${pkgs[*]}"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$want" ] && [ -x "$tree/usr/bin/virsh" ]; then
    echo "build-host: cached tree $tree"
    exit 0
fi
rm -f "$out/stamp"
# debootstrap can leave its /proc mounted in the target (build-debian.sh):
# rm -rf would walk the host's /proc, and an overlay over it would hold it.
unmount_tree() {
    findmnt -rn -o TARGET | { grep -F "$tree/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
}
unmount_tree
rm -rf "$tree"
mkdir -p "$out"
t0=$(date +%s)
incl=$(IFS=,; echo "${pkgs[*]}")
# --variant=minbase: no recommends beyond what the list names; the tree is
# only ever booted by the test.
debootstrap --variant=minbase --include="$incl" bookworm "$tree" "$mirror" > "$out/debootstrap.log" 2>&1 || {
    tail -20 "$out/debootstrap.log" >&2; echo "build-host: debootstrap failed (log: $out/debootstrap.log)" >&2; exit 1; }
unmount_tree
# An empty machine-id: systemd initializes one at each boot (the tree is
# booted many times, always as a fresh host).
: > "$tree/etc/machine-id"
echo memshare-host > "$tree/etc/hostname"
rm -f "$tree/var/cache/apt/archives/"*.deb
echo "$want" > "$out/stamp"
echo "build-host: tree built in $(( $(date +%s) - t0 )) s"
