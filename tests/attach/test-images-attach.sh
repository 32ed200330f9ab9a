#!/bin/bash
# tests/attach/test-images-attach.sh: the agent's shared-image module against
# a bare QEMU (q35, memory hotplug slots, PCIe root ports): a `dax` image
# becomes a virtio-pmem device whose backend maps the store's blob
# read-only and shared; a `blk` image a read-only virtio-blk; an agent that
# restarts does not attach twice; a corrupt blob, a missing image, a
# symlinked manifest and a writable blob are refused with a message naming
# them, and the domain keeps running. Runs without a guest kernel: QMP is
# all the module talks to. (The guest-side mount is in the e2e tests.)
#   env: MS_AGENT, MS_CTL
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
source "$here/../lib/qemu.sh"
qemu_test_tmp ms-attach
export MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/memshare.conf MEMSHARE_IMAGE_STORE=$tmp/store
# one sharing group for the host: the guests map blobs/ itself (per-group
# copies: test-image-store, e2e/test-sharing-groups)
printf '[sharing]\ndefault-group=host\n' > "$tmp/memshare.conf"

# The store, filled the way users fill it (memsharectl image build).
mkdir -p "$tmp/src/bin" "$tmp/src2/bin" "$tmp/src3"
echo "hello from the image" > "$tmp/src/bin/hello"
echo "another tree" > "$tmp/src2/bin/other"
echo "a third" > "$tmp/src3/x"
"$MS_CTL" image build --from "$tmp/src" --name usr > "$tmp/build.log" 2>&1 || bail "image build usr"
"$MS_CTL" image build --from "$tmp/src" --name usr2 >> "$tmp/build.log" 2>&1 || bail "image build usr2"
"$MS_CTL" image build --from "$tmp/src2" --name corrupt >> "$tmp/build.log" 2>&1 || bail "image build corrupt"
"$MS_CTL" image build --from "$tmp/src3" --name writable >> "$tmp/build.log" 2>&1 || bail "image build writable"
sha_of() { sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p' "$tmp/store/names/$1.json"; }
sha=$(sha_of usr)
sha_u2=$(sha_of usr2)   # same tree, but the label is the name: another blob
size_of() { sed -n 's/.*"size" *: *\([0-9]*\).*/\1/p' "$tmp/store/names/$1.json"; }
bytes=$(( $(size_of usr) + $(size_of usr2) ))
# a corrupt one: changed after it was stored, so its digest no longer matches
sha2=$(sha_of corrupt)
chmod u+w "$tmp/store/blobs/sha256-$sha2.img"
printf 'garbage' | dd of="$tmp/store/blobs/sha256-$sha2.img" bs=1 seek=5000 conv=notrunc 2>/dev/null
chmod 0444 "$tmp/store/blobs/sha256-$sha2.img"
# a manifest that is a symlink (to a good one)
ln -s usr.json "$tmp/store/names/linked.json"
# a blob somebody made writable
chmod 0644 "$tmp/store/blobs/sha256-$(sha_of writable).img"

boot() {   # boot NAME -> QEMU with 2 hotplug slots and 3 free root ports
    qemu_start "$1" mem=256 slots=2 maxmem=1024 ports=3 mon balloon=on balloon-bus=pci.1 || bail "QEMU $1 did not start"
}
domxml() {   # domxml NAME UUID POLICY-ELEMENTS
    cat <<XML
<domain type='qemu'><name>$1</name><uuid>$2</uuid>
<maxMemory slots='2' unit='MiB'>1024</maxMemory><memory unit='MiB'>256</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices><memballoon model='virtio'/></devices>
<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>$3<memshare:stats period='1s'/></memshare:policy></metadata></domain>
XML
}

U1=5a0d1e6c-2f8b-4c59-9a43-0b7f7d1e2b01
boot g1
domxml g1 $U1 "<memshare:shared-image name='usr' mode='dax'/><memshare:shared-image name='usr2' mode='blk'/>" > "$tmp/g1.xml"
qemu_agent g1 $U1
check "dax image attached (agent log)" wait_for 15 grep -q "image 'usr' attached (dax" "$tmp/g1.agent.log"
check "blk image attached (agent log)" wait_for 15 grep -q "image 'usr2' attached (blk" "$tmp/g1.agent.log"
out=$(qemu_qmp "$tmp/g1.mon" '{"execute":"query-memory-devices"}' \
    '{"execute":"qom-get","arguments":{"path":"/objects/ms-img0","property":"readonly"}}' \
    '{"execute":"qom-get","arguments":{"path":"/objects/ms-img0","property":"share"}}' \
    '{"execute":"qom-get","arguments":{"path":"/objects/ms-img0","property":"mem-path"}}' \
    '{"execute":"query-block"}')
echo "$out" | cut -c1-200 | sed 's/^/# /'
check "a virtio-pmem device backed by ms-img0" grep -q '"type": "virtio-pmem".*"memdev": "/objects/ms-img0"' <<< "$(sed -n 1p <<< "$out")"
check "its backend is readonly=on" test "$(sed -n 2p <<< "$out")" = '{"return": true}'
check "and share=on" test "$(sed -n 3p <<< "$out")" = '{"return": true}'
check "mapping the store's blob by digest" grep -q "blobs/sha256-$sha.img" <<< "$(sed -n 4p <<< "$out")"
check "the blk image is a read-only block node" grep -q '"ro": true, "node-name": "ms-blk1"' <<< "$(sed -n 5p <<< "$out")"
perms=$(grep "sha256-$sha.img" /proc/$qemu_g1/maps | awk '{print $2}' | sort -u | tr '\n' ' ')
check "QEMU maps the blob shared and read-only only (maps: $perms)" test "$perms" = "r--s "
rt=$MEMSHARE_RUNTIME_DIR/domains/$U1
check "runtime 'images' lists both, with digest and mode" \
    bash -c "grep -qx 'usr $sha dax host' '$rt/images' && grep -qx 'usr2 $sha_u2 blk host' '$rt/images'"
check "status reports 2 attached, bytes" wait_for 5 bash -c "grep -q '^attached=2' '$rt/status' && grep -q '^bytes=$bytes' '$rt/status'"

# an agent that restarts does not attach twice
kill -9 "$agent_g1"; sleep 0.3
qemu_agent g1 $U1
wait_for 10 bash -c "[ \$(grep -c \"image 'usr' attached\" '$tmp/g1.agent.log') -ge 2 ]"
n=$(qemu_qmp "$tmp/g1.mon" '{"execute":"query-memory-devices"}' | grep -o '"type": "virtio-pmem"' | wc -l)
check "restarted agent: still exactly one pmem device" test "$n" = 1
n=$(qemu_qmp "$tmp/g1.mon" '{"execute":"query-block"}' | grep -o '"node-name": "ms-blk1"' | wc -l)
check "restarted agent: still exactly one blk node" test "$n" = 1

# refusals: each names the image and the reason; QEMU keeps running
U2=5a0d1e6c-2f8b-4c59-9a43-0b7f7d1e2b02
boot g2
domxml g2 $U2 "<memshare:shared-image name='corrupt' mode='dax'/><memshare:shared-image name='missing' mode='blk'/><memshare:shared-image name='linked' mode='blk'/>" > "$tmp/g2.xml"
qemu_agent g2 $U2
check "corrupt blob refused: digest mismatch named" wait_for 15 grep -q "image 'corrupt' (dax) not attached: .*sha256-$sha2.img: sha256 .* does not match the manifest" "$tmp/g2.agent.log"
check "missing image refused" grep -q "image 'missing' (blk) not attached: image 'missing': no such image in $tmp/store" "$tmp/g2.agent.log"
check "symlinked manifest refused" grep -q "image 'linked' (blk) not attached: .*symbolic link" "$tmp/g2.agent.log"
n=$(qemu_qmp "$tmp/g2.mon" '{"execute":"query-memory-devices"}' | grep -o virtio-pmem | wc -l)
check "nothing was attached to g2" test "$n" = 0
check "g2's QEMU still runs" kill -0 "$qemu_g2"
check "status says 0 of 3 attached, with the errors" wait_for 5 bash -c "grep -q '^attached=0' '$MEMSHARE_RUNTIME_DIR/domains/$U2/status' && grep -q '^corrupt.error=.*does not match' '$MEMSHARE_RUNTIME_DIR/domains/$U2/status'"

# a blob that became writable is refused too (shared by every guest)
U3=5a0d1e6c-2f8b-4c59-9a43-0b7f7d1e2b03
boot g3
domxml g3 $U3 "<memshare:shared-image name='writable' mode='dax'/>" > "$tmp/g3.xml"
qemu_agent g3 $U3
check "writable blob refused" wait_for 15 grep -q "must be a regular, read-only (0444) file owned by root" "$tmp/g3.agent.log"
done_testing
