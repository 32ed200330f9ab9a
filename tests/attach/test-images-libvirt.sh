#!/bin/bash
# tests/attach/test-images-libvirt.sh: shared images end to end in the
# isolated libvirtd. An image built with `memsharectl image build` is named
# by three domains' policies: two take it with DAX (virtio-pmem), one as a
# read-only virtio-blk disk. Each guest mounts it (DAX really on for the
# first two), runs a program from it and reads a file whose checksum matches
# the host's; each then writes through the raw device, and the host's blob
# is unchanged. The store refuses to remove the image while domains use it.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_setup ms-img-e2e "$LVT_CONF_ONE_TENANT"
lvt_start

# the tree: a program and a data file
src=$dir/tree
mkdir -p "$src/bin" "$src/data"
printf '#!/bin/sh\necho hello-from-shared-image\n' > "$src/bin/ms-hello"; chmod 755 "$src/bin/ms-hello"
head -c $((8 << 20)) /dev/urandom > "$src/data/blob"
want_md5=$(md5sum < "$src/data/blob" | cut -d' ' -f1)
lvt_image_build tools --from "$src"
manifest=$dir/lib-memshare/images/names/tools.json
sha=$(lvt_image_sha tools)
blob=$dir/lib-memshare/images/blobs/sha256-$sha.img
check "the image is in the store" test -f "$blob"

pol() { echo "<memshare:policy xmlns:memshare='$NS'><memshare:shared-image name='tools' mount='/opt/tools' mode='$1'/><memshare:stats period='1s'/></memshare:policy>"; }
# libvirt gives two root ports to the USB controller and the balloon: ask for
# two more, one for the hot-plugged image
export MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=2048 MS_DOMAIN_ROOT_PORTS=4
export MS_GUEST_CMDLINE="ms.expect=1 ms.wait=150 ms.rawwrite=1"
i=0
for spec in d1:dax d2:dax b1:blk; do
    n=${spec%%:*} mode=${spec#*:}; i=$((i + 1))
    domain_xml "$n" "7a1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f0$i" 384 384 mount-shared "$dir/$n.serial" "$(pol "$mode")" \
        > "$dir/$n.xml"
    V define "$dir/$n.xml" >/dev/null || bail "define $n"
    V start "$n" >/dev/null || bail "start $n"
done

for n in d1 d2; do
    check "$n: guest mounted the image with DAX" wait_for 240 grep -Eq "MS-MOUNTED /dev/pmem0 dax .*dax=always" "$dir/$n.serial"
    check "$n: ran a program from it" wait_for 60 grep -q "MS-HELLO /dev/pmem0 hello-from-shared-image" "$dir/$n.serial"
    check "$n: read the data file intact" wait_for 60 grep -q "MS-READ /dev/pmem0 $want_md5" "$dir/$n.serial"
done
check "b1: guest mounted the image read-only over virtio-blk" wait_for 240 grep -q "MS-MOUNTED /dev/vda blk" "$dir/b1.serial"
check "b1: ran a program from it" wait_for 60 grep -q "MS-HELLO /dev/vda hello-from-shared-image" "$dir/b1.serial"
check "b1: read the data file intact" wait_for 60 grep -q "MS-READ /dev/vda $want_md5" "$dir/b1.serial"
blk=$(V domblklist b1 --details 2>/dev/null)
echo "$blk" | sed 's/^/# /'
check "b1: libvirt lists the blob as a disk" grep -q "sha256-$sha.img" <<< "$blk"

for n in d1 d2 b1; do
    wait_for 60 grep -q "MS-RAW-WRITE" "$dir/$n.serial"
    grep "MS-RAW-WRITE" "$dir/$n.serial" | sed "s/^/# $n: /"
done
now=$(sha256sum "$blob" | cut -d' ' -f1)
check "guests wrote to the raw devices, the host's blob is unchanged" test "$now" = "$sha"
running=$(V list --name | grep -c .)
check "all three domains still run ($running)" test "$running" = 3

out=$(vmenv_exec "$MS_CTL" image remove tools 2>&1); rc=$?
diag "image remove while in use: $out"
check "image remove refused while domains use it" test "$rc" != 0
check "the blob is still there" test -f "$blob"

for n in d1 d2 b1; do V destroy "$n" >/dev/null; done
wait_for 5 bash -c "! ls '$dir'/run-memshare/domains/*/images >/dev/null 2>&1"
out=$(vmenv_exec "$MS_CTL" image remove tools 2>&1); rc=$?
check "image remove succeeds once no domain uses it ($out)" test "$rc" = 0
done_testing
