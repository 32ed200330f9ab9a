# tests/guest/debian/lib-debian.sh: the libvirt domain XML of a Debian 12
# test guest (build-debian.sh's output), sourced by the Debian e2e tests and
# by tools/demo-debian.sh so that both boot the guest the same way. Needs
# tests/lib/domain.sh sourced first (domain_xml).
#   debian_policy IMAGE MODE [ELEMENTS]   a <memshare:policy> with the image on
#       /usr in MODE (dax|blk), stats every 2 s, and ELEMENTS (more policy
#       elements with the memshare: prefix) inside it
#   debian_domain_xml NAME UUID MEM_MIB CUR_MIB SERIAL OVERLAY INITRD POLICY
#       a TCG domain booting $MS_DEBIAN_DIR/vmlinuz with INITRD (a file name
#       in $MS_DEBIAN_DIR: initrd.img, or initrd-stock.img for a guest that
#       was not prepared), root=LABEL=ms-root from the qcow2 OVERLAY on
#       virtio-blk, the console in SERIAL, POLICY in its <metadata>;
#       MEM_MIB at most 3072 (4 GiB of memory with the hot-plugged image)

debian_policy() {
    echo "<memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'><memshare:shared-image name='$1' mount='/usr' mode='$2'/><memshare:stats period='2s'/>${3:-}</memshare:policy>"
}

debian_domain_xml() {
    local name=$1 uuid=$2 mem=$3 cur=$4 serial=$5 overlay=$6 initrd=$7 policy=$8
    local deb=${MS_DEBIAN_DIR:?MS_DEBIAN_DIR: the Debian guest build directory}
    local disk="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$overlay'/><target dev='vda' bus='virtio'/></disk>"
    # hot-plug room for the image (about 700 MiB in one DIMM slot) and free
    # root ports (libvirt takes some for USB, the balloon and the root disk)
    MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=4096 MS_DOMAIN_ROOT_PORTS=5 \
    MS_GUEST_KERNEL=$deb/vmlinuz MS_GUEST_INITRD=$deb/$initrd MS_GUEST_CMDLINE="root=LABEL=ms-root ro" \
        domain_xml "$name" "$uuid" "$mem" "$cur" debian "$serial" "$policy" "$disk"
}
