#!/bin/bash
# tests/e2e/test-sharing-groups.sh: sharing trust groups (docs/security.md)
# in a real, isolated libvirtd with the hook installed, real host KSM and
# real balloons. Two TCG guests both fill 64 MiB with identical pages:
#   g1 (group tenant-a) starts and merges; its agent hands the saving to it
#     (balloon.current > base) and reports its group's saving;
#   g2 (group tenant-b) without <nosharepages/> is refused at `virsh start`
#     with the message naming the domain, its group and the group merging;
#   g2 with <nosharepages/> starts: QEMU runs with mem-merge=off, KSM merges
#     none of its pages, its group's saving is 0 and its balloon stays at
#     base while g1's grows; domstats shows both groups;
#   a hostile group name is refused at `virsh start` by the parser;
#   a live change of g1's group is pending until it restarts;
#   with g1 gone, tenant-b may merge.
# Images (docs/images.md "One copy per sharing group"): both policies name
# image 'tools' (dax); the hook makes each group its own copy at prepare:
#   groups/tenant-a/ and groups/tenant-b/ hold different inodes (stat), both
#     other than blobs/; each QEMU maps only its group's copy;
#   `image list` shows both copies in use, domstats the group figures;
#   g1's live move to tenant-c maps nothing of tenant-c (no copy is made);
#   `image gc` keeps copies a running domain of the group maps and removes
#     them once none does.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_ksm_lock
# no [sharing]: the default (each domain alone); the policies name groups
lvt_setup ms-groups '[balloon]
host-reserve=256MiB'
lvt_start

src=$dir/tree
mkdir -p "$src/bin"
printf '#!/bin/sh\necho hello\n' > "$src/bin/hello"; chmod 755 "$src/bin/hello"
head -c $((4 << 20)) /dev/urandom > "$src/bin/data"
lvt_image_build tools --from "$src"
sha=$(lvt_image_sha tools)
store=$dir/lib-memshare/images
copy() { echo "$store/groups/$1/sha256-$sha.img"; }
# the same copy as QEMU sees it: libvirtd's namespace has the store at its
# real place (tests/lib/vmenv.sh)
qcopy() { echo "/var/lib/memshare/images/groups/$1/sha256-$sha.img"; }
# room for the hot-plugged pmem device
export MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=2048 MS_DOMAIN_ROOT_PORTS=4

U1=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5fa1
U2=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5fb2
U3=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5fc3
rt=$dir/run-memshare/domains
MiB=$((1 << 20)); BASE_KIB=$((384 * 1024))
policy() { # policy GROUP
    echo "<memshare:policy xmlns:memshare='$NS'><memshare:sharing group='$1'/><memshare:balloon mode='ksm-share' period='1s' hysteresis='4MiB' max-step='128MiB'/><memshare:stats period='1s'/><memshare:shared-image name='tools' mode='dax'/></memshare:policy>"
}
nosharepages() { sed 's#<vcpu>#<memoryBacking><nosharepages/></memoryBacking>\n  <vcpu>#'; }
export MS_GUEST_CMDLINE="ms.fill=64"
domain_xml g1 $U1 512 384 ksm-fill "$dir/g1.serial" "$(policy tenant-a)" > "$dir/g1.xml"
domain_xml g2 $U2 512 384 ksm-fill "$dir/g2.serial" "$(policy tenant-b)" > "$dir/g2-merging.xml"
nosharepages < "$dir/g2-merging.xml" > "$dir/g2.xml"
domain_xml g3 $U3 512 384 idle "$dir/g3.serial" "$(policy 'a/b')" > "$dir/g3.xml"

# st UUID GROUP KEY: one value of an agent's status file
st() { awk -F= -v g="[$2]" -v k="$3" '/^\[/ { in_g = ($0 == g) } in_g && $1 == k { print $2; exit }' "$rt/$1/status" 2>/dev/null; }
agent_alive() { local p; p=$(cat "$rt/$1/agent.pid" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
bal_cur() { V domstats "$1" --balloon | sed -n 's/^ *balloon.current=//p'; }
above_base() { local c; c=$(bal_cur "$1"); [ -n "$c" ] && [ "$c" -gt $((BASE_KIB + 8192)) ]; }
at_base() { local c; c=$(bal_cur "$1"); [ -n "$c" ] && [ $((c > BASE_KIB ? c - BASE_KIB : BASE_KIB - c)) -le 2048 ]; }
qemu_pid() { cat "$dir/run-libvirt/qemu/$1.pid" 2>/dev/null; }
status_is() { [ "$(st "$1" "$2" "$3")" = "$4" ]; }
positive() { local v; v=$(st "$1" "$2" "$3"); [ -n "$v" ] && [ "$v" -gt 0 ]; }

echo 2 > $ksm/run
wait_for 120 bash -c "[ \$(cat $ksm/pages_sharing) = 0 ]" || bail "KSM did not unmerge"
echo 20000 > $ksm/pages_to_scan; echo 10 > $ksm/sleep_millisecs; echo 1 > $ksm/run

# --- g1: the first group merges ----------------------------------------------------
V define "$dir/g1.xml" >/dev/null || bail "define g1"
V start g1 >/dev/null || bail "start g1"
check "g1: agent running" wait_for 5 agent_alive $U1
check "g1: the hook recorded its group, merging" \
    grep -qz "group=tenant-a.*merging=true" "$rt/$U1/sharing"
check "g1: status says group tenant-a from the policy" wait_for 10 status_is $U1 sharing group tenant-a
check "g1: ...source policy" status_is $U1 sharing source policy

# --- g2 without nosharepages: refused ------------------------------------------------
V define "$dir/g2-merging.xml" >/dev/null || bail "define g2"
out=$(V start g2 2>&1); rc=$?
echo "virsh start g2: $out" | sed "s/^/# /"
check "g2 (tenant-b, merging) is refused at virsh start" test "$rc" != 0
check "...with the message naming domain, group and the group merging" \
    grep -qF "memshare: domain 'g2': sharing group 'tenant-b' cannot run with KSM merging: domain 'g1' of group 'tenant-a' is already merging (add <memoryBacking><nosharepages/></memoryBacking> to domain 'g2'" <<< "$out"
check "g2 is shut off" grep -q "shut off" <<< "$(V domstate g2)"
check "g2 left no runtime directory" test ! -e "$rt/$U2"

# --- a hostile group name: refused by the parser ------------------------------------
V define "$dir/g3.xml" >/dev/null || bail "define g3"
out=$(V start g3 2>&1); rc=$?
echo "virsh start g3: $out" | sed "s/^/# /"
check "group 'a/b' is refused at virsh start" test "$rc" != 0
check "...naming the attribute and the reason" \
    grep -qF "domain 'g3': <sharing group='a/b'>: not a valid group name: contains '/' (a group is a name, never a path)" <<< "$out"

# --- g2 with nosharepages: starts, merges nothing, gets nothing --------------------
V define "$dir/g2.xml" >/dev/null || bail "redefine g2"
V start g2 >/dev/null || bail "start g2 with nosharepages"
check "g2 with <nosharepages/> starts" grep -q running <<< "$(V domstate g2)"
p2=$(qemu_pid g2)
check "g2's QEMU runs with mem-merge=off" grep -q "mem-merge=off" <<< "$(tr '\0' ' ' < /proc/$p2/cmdline)"
check "g2: agent running" wait_for 5 agent_alive $U2
check "g2: status says group tenant-b, not merging" wait_for 10 status_is $U2 sharing merging false
check "both guests filled 64 MiB with identical pages" \
    wait_for 300 bash -c "grep -q 'MS-FILLED 64' '$dir/g1.serial' && grep -q 'MS-FILLED 64' '$dir/g2.serial'"
check "KSM saves memory" wait_for 180 bash -c "[ \$(cat $ksm/pages_sharing) -gt 8000 ]"
check "g1: its group's saving is reported" wait_for 60 positive $U1 balloon group-saved
check "g1: the agent gave the saving to the guest (balloon.current > base)" wait_for 120 above_base g1
check "g1: two groups among the balloon domains" status_is $U1 balloon groups 2
sleep 5
m2=$(cat /proc/$p2/ksm_merging_pages 2>/dev/null || echo "?")
echo "# g1 group-saved $(st $U1 balloon group-saved) share $(st $U1 balloon share); g2 merging pages $m2, group-saved $(st $U2 balloon group-saved) share $(st $U2 balloon share)"
check "g2: KSM merged none of its pages" test "$m2" = 0
check "g2: its group's saving is 0" status_is $U2 balloon group-saved 0
check "g2: its balloon share is 0" status_is $U2 balloon share 0
check "g2: its balloon stays at base" at_base g2
ds=$(MEMSHARE_RUNTIME_DIR=$dir/run-memshare "$MS_CTL" domstats --sharing g1 g2 2>&1)
echo "$ds" | sed 's/^/# /'
check "domstats: g1 in tenant-a, merging" \
    grep -Pzq "Domain: 'g1'\n  memshare.sharing.group=tenant-a\n  memshare.sharing.source=policy\n  memshare.sharing.merging=yes\n" <<< "$ds"
check "domstats: g2 in tenant-b, not merging, no saving" \
    grep -Pzq "Domain: 'g2'\n  memshare.sharing.group=tenant-b\n  memshare.sharing.source=policy\n  memshare.sharing.merging=no\n  memshare.sharing.group-ksm-saved=0\n" <<< "$ds"

# --- images: one copy per group ------------------------------------------------------
ctl() { MEMSHARE_RUNTIME_DIR=$dir/run-memshare MEMSHARE_IMAGE_STORE=$store "$MS_CTL" "$@"; }
maps() { grep -o "/[^ ]*sha256-$sha.img" "/proc/$1/maps" 2>/dev/null | sort -u; }
p1=$(qemu_pid g1)
check "tenant-a's copy exists" test -f "$(copy tenant-a)"
check "tenant-b's copy exists" test -f "$(copy tenant-b)"
ia=$(stat -c %i "$(copy tenant-a)"); ib=$(stat -c %i "$(copy tenant-b)"); ih=$(stat -c %i "$store/blobs/sha256-$sha.img")
echo "# inodes: blobs/ $ih, tenant-a $ia, tenant-b $ib"
check "the two groups' copies are different inodes" test "$ia" != "$ib"
check "...and neither is the store's blob" test "$ia" != "$ih" -a "$ib" != "$ih"
check "copies are read-only (0444)" test "$(stat -c %a "$(copy tenant-a)")" = 444 -a "$(stat -c %a "$(copy tenant-b)")" = 444
check "g1: the agent attached the image" wait_for 60 status_is $U1 images attached 1
check "g2: the agent attached the image" wait_for 60 status_is $U2 images attached 1
check "g1's QEMU maps only tenant-a's copy" test "$(maps $p1)" = "$(qcopy tenant-a)"
check "g2's QEMU maps only tenant-b's copy" test "$(maps $p2)" = "$(qcopy tenant-b)"
out=$(ctl image list 2>&1)
echo "$out" | sed 's/^/# /'
check "image list: tenant-a's copy in use by g1" grep -q "^  group tenant-a copy ${sha:0:12} inode $ia in use by 'g1' (dax)" <<< "$out"
check "image list: tenant-b's copy in use by g2" grep -q "^  group tenant-b copy ${sha:0:12} inode $ib in use by 'g2' (dax)" <<< "$out"
size=$(stat -c %s "$store/blobs/sha256-$sha.img")
ds=$(ctl domstats --sharing g1 g2 2>&1)
echo "$ds" | sed 's/^/# /'
for g in g1 g2; do
    check "domstats: $g's group maps one image copy of $size bytes" \
        grep -Pzq "Domain: '$g'\n(  memshare\.sharing\.[^\n]*\n)*  memshare\.sharing\.group-image-copies=1\n  memshare\.sharing\.group-image-bytes=$size\n" <<< "$ds"
done
out=$(ctl image gc 2>&1); echo "$out" | sed 's/^/# gc: /'
check "image gc keeps the copies running domains of their groups map" \
    test -f "$(copy tenant-a)" -a -f "$(copy tenant-b)"

# --- a live change of the group waits for the next start ------------------------------
V metadata g1 "$NS" --key memshare --live --set \
    "<policy><sharing group='tenant-c'/><balloon mode='ksm-share' period='1s' hysteresis='4MiB' max-step='128MiB'/><stats period='1s'/></policy>" \
    >/dev/null
check "g1 moved to tenant-c live: shown as pending" wait_for 15 status_is $U1 sharing pending tenant-c
check "...while it stays in tenant-a, the group it started in" status_is $U1 sharing group tenant-a
check "...source 'start'" status_is $U1 sharing source start
V metadata g1 "$NS" --key memshare --live --set \
    "<policy><sharing group='tenant-b'/><balloon mode='ksm-share' period='1s' hysteresis='4MiB' max-step='128MiB'/><stats period='1s'/><shared-image name='tools' mode='dax'/></policy>" \
    >/dev/null
check "g1 edited to name tenant-b: pending" wait_for 15 status_is $U1 sharing pending tenant-b
sleep 3   # a few agent ticks with the edited policy
check "...g1's QEMU still maps only tenant-a's copy, never tenant-b's" test "$(maps $p1)" = "$(qcopy tenant-a)"
check "...the agent says why, naming both groups" \
    grep -q "the policy now names sharing group 'tenant-b', but the domain is in group 'tenant-a'" "$LVT_LOGS"/*.log
check "no copy was made for tenant-c" test ! -e "$store/groups/tenant-c"

# --- g1 gone: tenant-b may merge ------------------------------------------------------
V destroy g2 >/dev/null; V destroy g1 >/dev/null
check "g1 released: its record is gone" wait_for 10 test ! -e "$rt/$U1"
out=$(ctl image gc 2>&1); echo "$out" | sed 's/^/# gc: /'
check "image gc removes the copies no running domain of their group maps" \
    test ! -e "$(copy tenant-a)" -a ! -e "$(copy tenant-b)"
check "...and keeps the store's blob (the manifest names it)" test -f "$store/blobs/sha256-$sha.img"
V define "$dir/g2-merging.xml" >/dev/null
check "with no tenant-a domain left, g2 starts merging" Vq start g2
V destroy g2 >/dev/null
done_testing
