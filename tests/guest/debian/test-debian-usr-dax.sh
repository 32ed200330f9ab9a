#!/bin/bash
# tests/guest/debian/test-debian-usr-dax.sh: real Debian 12 guests (systemd,
# their own small writable root disk) whose /usr is a memshare image, in the
# isolated libvirtd with the hook and agent of the build tree. The image is
# built with `memsharectl image build` from the guest's /usr tree; the
# guest was prepared with `memsharectl image prepare-guest`
# (build-debian.sh). Three domains at once:
#   dax   policy mode='dax': the agent hot-plugs virtio-pmem after start,
#         the guest's initramfs waits for it and mounts it on /usr with
#         dax=always; the guest reaches multi-user, a write under /usr is
#         refused, python3 and jq run from it, the host's blob is unchanged
#   blk   the same guest with mode='blk' (read-only shareable virtio-blk)
#   stock the prepared root disk booted with debootstrap's own initramfs
#         (no pmem drivers: prepare-guest was not run on it): the
#         initramfs gives up on /usr naming the device, the agent did
#         attach it, the guest's root disk and the image are intact
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_DEBIAN_DIR (build-debian.sh's OUTDIR)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../lib/libvirt-test.sh"
source "$here/lib-debian.sh"
deb=${MS_DEBIAN_DIR:?}
[ -f "$deb/stamp" ] || bail "no Debian guest in $deb (ninja tests/guest/debian/stamp)"
image=debian12-usr

# on disk, not in /tmp (often tmpfs): the guests' overlays grow as they boot;
# the dax, blk and stock guests run side by side: one tenant's
LVT_TMP=/var/tmp lvt_setup ms-debian-usr "$LVT_CONF_ONE_TENANT"
lvt_start

lvt_image_build "$image" --usr --from "$deb/usr"
sha=$(lvt_image_sha "$image")
blob=$dir/lib-memshare/images/blobs/sha256-$sha.img
check "the /usr image is in the store" test -f "$blob"
root_sum=$(sha256sum < "$deb/root-dax.img" | cut -d' ' -f1)

i=0
for spec in dax:dax:root-dax.img:initrd.img blk:blk:root-blk.img:initrd.img stock:dax:root-dax.img:initrd-stock.img; do
    IFS=: read -r n mode root initrd <<< "$spec"; i=$((i + 1))
    qemu-img create -q -f qcow2 -F raw -b "$deb/$root" "$dir/$n.qcow2" || bail "qemu-img create $n"
    debian_domain_xml "$n" "5d0e2b9a-6c1f-4e8b-9a3d-7f2c1b0e9d0$i" 768 768 "$dir/$n.serial" \
        "$dir/$n.qcow2" "$initrd" "$(debian_policy "$image" "$mode")" > "$dir/$n.xml"
    V define "$dir/$n.xml" > /dev/null || bail "define $n"
    V start "$n" > /dev/null || bail "start $n"
done

serial() { tr -d '\r' < "$dir/$1.serial" 2>/dev/null; }
has() { serial "$1" | grep -Eq "$2"; }
show() { serial "$1" | grep -E "$2" | head -3 | sed "s/^/# $1: /"; }
dump() { echo "# $1: last console lines:"; serial "$1" | tail -25 | sed "s/^/#   /"; }

# Under TCG on a shared 2-core machine a systemd boot takes minutes.
for n in dax blk; do
    if ! check "$n: the guest reached multi-user" wait_for 900 has "$n" "^MS-DEBIAN-READY (running|degraded)"; then
        dump "$n"; continue
    fi
    wait_for 300 has "$n" "^MS-DEBIAN-DONE" || dump "$n"
    show "$n" "^MS-(DEBIAN-READY|USR |USR-WRITE|PYTHON|JQ|FAILED-UNITS|USR-CACHE)"
done
check "dax: /usr is the pmem device, mounted read-only with dax=always" \
    has dax "^MS-USR /dev/pmem[0-9]+ ext4 ro,.*dax=always"
check "blk: /usr is the read-only virtio-blk disk" has blk "^MS-USR /dev/vd[b-z] ext4 ro[, ]"
check "blk: /usr is not DAX there" bash -c "! grep -q '^MS-USR .*dax=always' '$dir/blk.serial'"
for n in dax blk; do
    check "$n: a write under /usr is refused (read-only file system)" has "$n" "^MS-USR-WRITE refused: .*Read-only file system"
    check "$n: python3 runs from the shared /usr" has "$n" '^MS-PYTHON \{"python": "3\.11\.[0-9]+", "sha": "[0-9a-f]{12}"\}'
    check "$n: jq runs from the shared /usr" has "$n" '^MS-JQ \{"sum":6\}'
done
for n in dax blk; do
    check "$n: the boot finished clean (running, no failed unit)" \
        bash -c 'has() { tr -d "\r" < "$1" | grep -Eq "$2"; }; has "$1" "^MS-DEBIAN-READY running" && has "$1" "^MS-FAILED-UNITS *$"' _ "$dir/$n.serial"
done
check "dax: the guest's page cache holds none of /usr (DAX reads the host's copy)" \
    has dax "^MS-USR-CACHE [0-9]$"
attached=$(cat "$dir"/run-memshare/domains/5d0e2b9a-6c1f-4e8b-9a3d-7f2c1b0e9d01/images 2>/dev/null)
check "dax: the agent lists the image as attached with dax ($attached)" \
    test "$attached" = "$image $sha dax host"   # NAME SHA MODE GROUP (one tenant: group host)
blk=$(V domblklist blk --details 2>/dev/null)
check "blk: libvirt lists the blob as the guest's second disk" grep -q "sha256-$sha.img" <<< "$blk"

# A guest whose initramfs has no pmem driver: the initramfs-tools message
# names the device it waited for; the agent had attached it.
check "stock: the initramfs gives up on /usr, naming the device" \
    wait_for 900 has stock "ALERT! +LABEL=$image does not exist"
has stock "ALERT!" || dump stock
show stock "Gave up waiting|ALERT"
attached=$(cat "$dir"/run-memshare/domains/5d0e2b9a-6c1f-4e8b-9a3d-7f2c1b0e9d03/images 2>/dev/null)
check "stock: the agent did attach the image ($attached)" test "$attached" = "$image $sha dax host"   # NAME SHA MODE GROUP (one tenant: group host)
check "stock: the guest never reached multi-user" bash -c "! grep -q MS-DEBIAN-READY '$dir/stock.serial'"

for n in dax blk stock; do V destroy "$n" > /dev/null 2>&1; done
now=$(sha256sum "$blob" | cut -d' ' -f1)
check "the host's blob is unchanged after three guests used it" test "$now" = "$sha"
check "the base root disk is unchanged (guests wrote to their overlays)" \
    test "$(sha256sum < "$deb/root-dax.img" | cut -d' ' -f1)" = "$root_sum"
# no data lost: the stock guest's own root disk is intact
qemu-img convert -O raw "$dir/stock.qcow2" "$dir/stock.raw"
fsck_clean() { local o r; o=$(e2fsck -fn "$1" 2>&1); r=$?; sed 's/^/# /' <<< "$o"; return $r; }
check "stock: its root file system is clean (e2fsck -fn)" fsck_clean "$dir/stock.raw"
done_testing
