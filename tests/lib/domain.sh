# tests/lib/domain.sh: libvirt domain XML for the test guest (sourced).
#   domain_xml NAME UUID MEM_MIB CUR_MIB SCENARIO SERIAL_PATH [METADATA] [DEVICES]
# A TCG (type='qemu') q35 domain booting $MS_GUEST_KERNEL/$MS_GUEST_INITRD
# with console=ttyS0 ms.scenario=SCENARIO ($MS_GUEST_CMDLINE appended), the
# serial console in SERIAL_PATH, a virtio balloon with stats and free page
# reporting. Environment knobs:
#   MS_DOMAIN_BALLOON=none|nofpr   no balloon / balloon without free page reporting
#   MS_DOMAIN_SLOTS=N MS_DOMAIN_MAXMEM_MIB=M   memory hotplug (DAX images)
#   MS_DOMAIN_ROOT_PORTS=N         free PCIe root ports for hot-plugged devices (default 2)
domain_xml() {
    local name=$1 uuid=$2 mem=$3 cur=$4 scenario=$5 serial=$6 meta=${7:-} devices=${8:-}
    local balloon maxmem="" numa="" ports="" i
    case "${MS_DOMAIN_BALLOON:-}" in
        none) balloon="<memballoon model='none'/>" ;;
        nofpr) balloon="<memballoon model='virtio'><stats period='1'/></memballoon>" ;;
        *) balloon="<memballoon model='virtio' freePageReporting='on'><stats period='1'/></memballoon>" ;;
    esac
    if [ -n "${MS_DOMAIN_SLOTS:-}" ]; then
        maxmem="<maxMemory slots='$MS_DOMAIN_SLOTS' unit='MiB'>${MS_DOMAIN_MAXMEM_MIB:-$((mem * 4))}</maxMemory>"
        # libvirt wants a NUMA cell when memory can be hot-plugged
        numa="<cpu><numa><cell id='0' cpus='0' memory='$mem' unit='MiB'/></numa></cpu>"
    fi
    for i in $(seq "${MS_DOMAIN_ROOT_PORTS:-2}"); do
        ports+="<controller type='pci' model='pcie-root-port'/>"
    done
    cat <<XML
<domain type='qemu'>
  <name>$name</name>
  <uuid>$uuid</uuid>
  $maxmem
  <memory unit='MiB'>$mem</memory>
  <currentMemory unit='MiB'>$cur</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$MS_GUEST_KERNEL</kernel>
    <initrd>$MS_GUEST_INITRD</initrd>
    <cmdline>console=ttyS0 quiet ms.scenario=$scenario ${MS_GUEST_CMDLINE:-}</cmdline>
  </os>
  $numa
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='pci' model='pcie-root'/>
    $ports
    <serial type='file'><source path='$serial'/><target port='0'/></serial>
    <console type='file'><source path='$serial'/><target type='serial' port='0'/></console>
    $balloon
    $devices
  </devices>
  <metadata>$meta</metadata>
</domain>
XML
}
