#!/bin/bash
# tests/image/test-image-update-qemu.sh: image updates and blobs changed
# under a running domain, with the real agent against a bare QEMU (q35,
# hotplug slots, PCIe root ports; no guest kernel: QMP is all the images
# module talks to). A rebuild of the name while the domain runs: the agent
# keeps the old digest in its runtime file and QEMU keeps mapping the old
# blob, the agent notes the newer build; an agent restarted then keeps the
# older build too (and attaches nothing twice); gc keeps the blob. The
# periodic check then reports the old blob replaced by rename (QEMU maps the
# old inode, shown deleted) and another image's blob modified in place, with
# the image, the domain and both digests, and QEMU keeps running.
#   env: MS_AGENT, MS_CTL
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
source "$here/../lib/qemu.sh"
qemu_test_tmp ms-imgupd
export MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/memshare.conf MEMSHARE_IMAGE_STORE=$tmp/store
# one group for the host: the domains map blobs/ itself, whose updates this
# test is about (per-group copies: test-image-store, e2e/test-sharing-groups)
printf '[sharing]\ndefault-group=host\n' > "$tmp/memshare.conf"
# the blob check every 0.5 s instead of 30 s
export MEMSHARE_IMAGES_PERIOD_MS=500
boot() {   # boot NAME -> QEMU with 2 hotplug slots and 3 free root ports
    qemu_start "$1" mem=256 slots=2 maxmem=1024 ports=3 mon balloon=none || bail "QEMU $1 did not start"
}
domxml() {   # domxml NAME UUID POLICY-ELEMENTS
    cat <<XML
<domain type='qemu'><name>$1</name><uuid>$2</uuid>
<maxMemory slots='2' unit='MiB'>1024</maxMemory><memory unit='MiB'>256</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices/>
<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>$3</memshare:policy></metadata></domain>
XML
}
sha_of() { sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p' "$tmp/store/names/$1.json"; }
blob() { echo "$tmp/store/blobs/sha256-$1.img"; }

mkdir -p "$tmp/usr/bin" "$tmp/usr/lib" "$tmp/opt"
echo "openssl 3.0.11" > "$tmp/usr/lib/libssl.so.3"
echo "#!/bin/sh" > "$tmp/usr/bin/sh"
echo "tools" > "$tmp/opt/tool"
"$MS_CTL" image build --usr --from "$tmp/usr" --name usr > "$tmp/build.log" 2>&1 || bail "image build usr"
"$MS_CTL" image build --from "$tmp/opt" --name opt >> "$tmp/build.log" 2>&1 || bail "image build opt"
mkdir -p "$tmp/tools"; echo "v1" > "$tmp/tools/t"
"$MS_CTL" image build --from "$tmp/tools" --name tools >> "$tmp/build.log" 2>&1 || bail "image build tools"
old=$(sha_of usr)
told=$(sha_of tools)

U1=6b1e2f7d-3a9c-4d6a-8b54-1c8e8e2f3c01
boot g1
domxml g1 $U1 "<memshare:shared-image name='usr' mode='dax' mount='/usr'/><memshare:shared-image name='tools' mode='blk'/>" > "$tmp/g1.xml"
qemu_agent g1 $U1
rt=$MEMSHARE_RUNTIME_DIR/domains/$U1
check "usr and tools attached" wait_for 15 bash -c "grep -q \"image 'usr' attached (dax\" '$tmp/g1.agent.log' && grep -q \"image 'tools' attached (blk\" '$tmp/g1.agent.log'"
check "runtime file lists the first build" wait_for 15 grep -qx "usr $old dax host" "$rt/images"
check "status: blob ok" wait_for 5 grep -q "^usr.blob=ok" "$rt/status"

# the security update, while g1 runs
echo "openssl 3.0.13" > "$tmp/usr/lib/libssl.so.3"
"$MS_CTL" image build --usr --from "$tmp/usr" --name usr >> "$tmp/build.log" 2>&1 || bail "rebuild usr"
new=$(sha_of usr)
echo "v2" > "$tmp/tools/t"
"$MS_CTL" image build --from "$tmp/tools" --name tools >> "$tmp/build.log" 2>&1 || bail "rebuild tools"
tnew=$(sha_of tools)
check "the rebuild has a new digest" test -n "$new" -a "$new" != "$old"
check "the agent notes the newer build and keeps the old one" \
    wait_for 10 grep -q "image 'usr' was rebuilt (now sha256 ${new:0:12}); domain 'g1' keeps sha256 ${old:0:12} until it restarts" "$tmp/g1.agent.log"
check "status: the newer digest" wait_for 5 grep -q "^usr.newer-sha256=$new" "$rt/status"
check "runtime file still lists the old digest" grep -qx "usr $old dax host" "$rt/images"
check "QEMU still maps the old blob" grep -q "sha256-$old.img" /proc/$qemu_g1/maps
check "the old blob is kept in the store" test -f "$(blob "$old")"

# an agent restarted now (libvirtd restart, crash): the guest still maps
# the old build, so that is what the agent keeps and lists
kill -9 "$agent_g1"; sleep 0.3
# what the new agent lists is its own: the old one's file goes first
rm -f "$rt/images"
qemu_agent g1 $U1
check "restarted agent adopts the older build" \
    wait_for 15 grep -q "image 'usr': the guest maps the older build sha256 ${old:0:12} (the name now points to ${new:0:12})" "$tmp/g1.agent.log"
check "restarted agent: runtime file lists the old digest, not the new" \
    wait_for 10 bash -c "grep -qx 'usr $old dax host' '$rt/images' && ! grep -q '$new' '$rt/images'"
n=$(qemu_qmp "$tmp/g1.mon" '{"execute":"query-memory-devices"}' | grep -o '"type": "virtio-pmem"' | wc -l)
check "restarted agent: still exactly one pmem device" test "$n" = 1
check "restarted agent: the blk image's older build kept and listed" \
    bash -c "grep -qx 'tools $told blk host' '$rt/images' && ! grep -q '$tnew' '$rt/images'"
n=$(qemu_qmp "$tmp/g1.mon" '{"execute":"query-block"}' | grep -o '"node-name": "ms-blk1"' | wc -l)
check "restarted agent: still exactly one blk node" test "$n" = 1
"$MS_CTL" image gc > "$tmp/gc.log" 2>&1
check "gc keeps the old blob for g1" bash -c "test -f '$(blob "$old")' && grep -q \"kept, in use by domain 'g1'\" '$tmp/gc.log'"
check "image list shows the older digest in use by g1" \
    bash -c "'$MS_CTL' image list | grep -q \"older ${old:0:12} in use by domain 'g1'\""

# the old blob replaced by rename behind the store's back
cp "$(blob "$new")" "$tmp/store/blobs/.intruder"
mv -f "$tmp/store/blobs/.intruder" "$(blob "$old")"
check "agent reports the replaced blob: image, domain, both digests" \
    wait_for 10 grep -q "image 'usr' of domain 'g1': .*sha256-$old.img was replaced by another file (sha256 $new; the guest attached sha256 $old); the guest keeps mapping the old file" "$tmp/g1.agent.log"
check "status: usr.blob=replaced" wait_for 5 grep -q "^usr.blob=replaced" "$rt/status"
check "QEMU maps the old inode (now deleted)" grep -q "sha256-$old.img (deleted)" /proc/$qemu_g1/maps
check "g1's QEMU still runs" kill -0 "$qemu_g1"
out=$("$MS_CTL" image verify usr 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "image verify: exit 3, names image, domain and both digests" \
    bash -c "test $rc = 3 && grep -q \"image 'usr': domain 'g1' maps sha256 $old, but .* now has sha256 $new\" <<< \"\$1\"" _ "$out"

# another image's blob modified in place under g2: the guest sees it
U2=6b1e2f7d-3a9c-4d6a-8b54-1c8e8e2f3c02
boot g2
domxml g2 $U2 "<memshare:shared-image name='opt' mode='dax'/>" > "$tmp/g2.xml"
qemu_agent g2 $U2
optsha=$(sha_of opt)
check "opt attached to g2" wait_for 15 grep -q "image 'opt' attached (dax" "$tmp/g2.agent.log"
check "usr (built --usr) on /usr: no mount warning" bash -c "! grep -q 'not built as a /usr' '$tmp/g1.agent.log'"
chmod u+w "$(blob "$optsha")"
printf 'evil' | dd of="$(blob "$optsha")" bs=1 seek=2000000 conv=notrunc status=none
chmod 0444 "$(blob "$optsha")"
check "agent reports the blob modified in place, loudly, with both digests" \
    wait_for 10 grep -q "critical.*image 'opt' of domain 'g2': the blob the guest maps was MODIFIED IN PLACE: it now has sha256 [0-9a-f]\{64\}, the guest attached sha256 $optsha" "$tmp/g2.agent.log"
check "status: opt.blob=modified" wait_for 5 grep -q "^opt.blob=modified" "$MEMSHARE_RUNTIME_DIR/domains/$U2/status"
check "g2's QEMU still runs" kill -0 "$qemu_g2"
check "g2's agent still runs" kill -0 "$agent_g2"

# an image not built --usr, mounted on /usr: a warning naming it, attached anyway
U3=6b1e2f7d-3a9c-4d6a-8b54-1c8e8e2f3c03
boot g3
domxml g3 $U3 "<memshare:shared-image name='tools' mode='dax' mount='/usr'/>" > "$tmp/g3.xml"
qemu_agent g3 $U3
check "mount='/usr' of an image not built --usr: warned, naming it" \
    wait_for 15 grep -q "warning.*image 'tools' is mounted on /usr but was not built as a /usr" "$tmp/g3.agent.log"
check "and attached all the same" wait_for 15 grep -q "image 'tools' attached (dax" "$tmp/g3.agent.log"
done_testing
