#!/bin/bash
# tools/install-deps.sh: installs every Debian 12 package memshare needs to
# build, test and run its demo. Idempotent; the README's two commands and
# .ci/run call it, so a fresh machine needs nothing else.
set -euo pipefail

PKGS=(
    # build
    build-essential pkg-config meson ninja-build git
    libglib2.0-dev libjson-glib-dev libext2fs-dev libxml2-dev libxml2-utils
    libvirt-dev libsystemd-dev libcmocka-dev
    # run: hypervisor, libvirt, KSM tools
    qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu
    libvirt-clients
    # test guest builder: kernel comes from `apt-get download`, userland from busybox
    busybox-static cpio kmod xz-utils zstd gzip e2fsprogs
    # tests
    systemd tmux procps util-linux iproute2 python3 jq attr
    # the systemd-host test (a debootstrap'ed Debian 12 booted with systemd-nspawn)
    # and the Debian 12 test guest (tests/guest/debian)
    debootstrap systemd-container
    # promtool checks the Prometheus textfile output
    prometheus
    # memsharectl plot
    gnuplot-nox
    # bench/density-host: the KSM baseline as Debian ships it (systemd units
    # only, no init script: nothing starts here without systemd as PID 1; on
    # a systemd host apt starts ksmtuned.service, and the bench refuses to
    # run while a ksmtuned is running)
    ksmtuned
    # sanitizers, fuzzing, memory checking (tools/test.sh, tools/fuzz.sh)
    clang valgrind
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# libvirt 9.0 resolves its default qemu user before reading qemu.conf: the
# users must exist even though our isolated libvirtd runs QEMU as root.
getent group libvirt >/dev/null || groupadd -r libvirt
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
echo "install-deps: ok"
