#!/bin/bash
# tests/qmp/test-qmp-libvirt.sh: the QMP client's libvirt transport
# (virDomainQemuMonitorCommand + QEMU monitor events) against a private
# libvirtd started here, in its own mount namespace so the host's libvirt
# state is untouched. Needs root. Usage: test-qmp-libvirt.sh QMP-PROBE
set -uo pipefail
probe=$(realpath "$1")
if [ -z "${MS_QMP_IN_NS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 0; }
    command -v libvirtd >/dev/null || { echo "1..0 # SKIP libvirtd not installed"; exit 0; }
    MS_QMP_IN_NS=1 exec unshare -m --propagation private "$0" "$probe"
fi
. "$(dirname "$0")/../lib/tap.sh"
T=$(mktemp -d)
cleanup() {
    [ -f "$T/libvirtd.pid" ] && kill "$(cat "$T/libvirtd.pid")" 2>/dev/null
    [ -f "$T/virtlogd.pid" ] && kill "$(cat "$T/virtlogd.pid")" 2>/dev/null
    sleep 0.5
    umount /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
for d in etc run lib log cache; do mkdir -p "$T/$d"; done
cp -a /etc/libvirt/. "$T/etc/"
mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
mount --bind "$T/etc" /etc/libvirt
mount --bind "$T/run" /run/libvirt
mount --bind "$T/lib" /var/lib/libvirt
mount --bind "$T/log" /var/log/libvirt
mount --bind "$T/cache" /var/cache/libvirt
virtlogd -d -p "$T/virtlogd.pid" || bail "virtlogd did not start"
libvirtd -d -p "$T/libvirtd.pid" || bail "libvirtd did not start"
wait_for 20 virsh -c qemu:///system version || bail "libvirtd does not answer"
cat > "$T/dom.xml" <<XML
<domain type='qemu'>
  <name>ms-qmp-test</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><memballoon model='virtio'/></devices>
</domain>
XML
virsh -q -c qemu:///system create "$T/dom.xml" >/dev/null || bail "cannot start the test domain"
check "qmp-probe through libvirt" "$probe" libvirt qemu:///system ms-qmp-test
running() { [ "$(virsh -q -c qemu:///system domstate ms-qmp-test 2>/dev/null)" = running ]; }
check "the domain still runs after the probe" running
virsh -q -c qemu:///system destroy ms-qmp-test >/dev/null 2>&1
done_testing
