#!/bin/bash
# tests/e2e/test-policy-remove.sh: removing the policy from a running domain
# stops memshare's work on it, and setting one again resumes it. In a real,
# isolated libvirtd with the hook installed, one TCG guest (512 MiB
# <memory>, 384 MiB <currentMemory>: the balloon's base) fills 96 MiB with
# identical pages, real host KSM merges them, and the agent hands the saving
# to the guest through the balloon (balloon.current > base). Then:
#   memsharectl policy remove --live -> the agent logs the removal, the
#     balloon returns to 384 MiB (libvirt's balloon.current), tracking stops,
#     the status file and memsharectl domstats say the policy was removed, the
#     blk image stays attached (and stays in use for the store), the domain
#     and the agent keep running;
#   virsh metadata --set --live -> the agent resumes: tracking figures, the
#     balloon above base again;
#   virsh metadata --remove --live -> removed again, balloon back at base.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_ksm_lock
# a small fixed reserve: the host's MemAvailable must not decide this test
lvt_setup ms-polrm '[balloon]
host-reserve=256MiB'
lvt_start
CTL() { vmenv_exec "$MS_CTL" -c qemu:///system "$@"; }

# a blk image: it must stay attached when the policy goes
src=$dir/tree
mkdir -p "$src/bin"
printf '#!/bin/sh\necho hello\n' > "$src/bin/ms-hello"; chmod 755 "$src/bin/ms-hello"
lvt_image_build tools --from "$src"
sha=$(lvt_image_sha tools)

U=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f77
rt=$dir/run-memshare/domains/$U
log=$dir/log-memshare/$U.log
body="<balloon mode='ksm-share' period='1s' hysteresis='4MiB' max-step='128MiB'/><tracking used-pages='on' period='1s'/><stats period='1s'/><shared-image name='tools' mount='/opt/tools' mode='blk'/>"
echo "<policy>$body</policy>" > "$dir/policy.xml"
meta="<memshare:policy xmlns:memshare='$NS'>$(sed 's/<\([a-z]\)/<memshare:\1/g' <<< "$body")</memshare:policy>"

MiB=$((1 << 20)); BASE_KIB=$((384 * 1024))
export MS_DOMAIN_ROOT_PORTS=4 MS_GUEST_CMDLINE="ms.fill=96"
domain_xml pr1 $U 512 384 ksm-fill "$dir/pr1.serial" "$meta" > "$dir/pr1.xml"

agent_alive() { local p; p=$(cat "$rt/agent.pid" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
# st GROUP KEY: one value of the agent's status file
st() { awk -F= -v g="[$1]" -v k="$2" '/^\[/ { in_g = ($0 == g) } in_g && $1 == k { print $2; exit }' "$rt/status" 2>/dev/null; }
# libvirt's own view of the balloon (KiB), from QEMU's BALLOON_CHANGE events
bal_cur() { V domstats pr1 --balloon | sed -n 's/^ *balloon.current=//p'; }
at_base() { local c; c=$(bal_cur); [ -n "$c" ] && [ $((c > BASE_KIB ? c - BASE_KIB : BASE_KIB - c)) -le 2048 ]; }
above_base() { local c; c=$(bal_cur); [ -n "$c" ] && [ "$c" -gt $((BASE_KIB + 8192)) ]; }
count() { grep -c "$1" "$log" 2>/dev/null; }
blk_attached() { V domblklist pr1 --details 2>/dev/null | grep -q "sha256-$sha.img"; }
has_group() { grep -qx "\[$1\]" "$rt/status" 2>/dev/null; }
no_group() { ! has_group "$1"; }
tracking_used() { [ -n "$(st tracking used)" ]; }

# Start from nothing merged, then let KSM merge fast.
echo 2 > $ksm/run
wait_for 120 bash -c "[ \$(cat $ksm/pages_sharing) = 0 ]" || bail "KSM did not unmerge"
V define "$dir/pr1.xml" >/dev/null || bail "define pr1"
V start pr1 >/dev/null || bail "start pr1"
check "agent running" wait_for 5 agent_alive
check "the guest filled 96 MiB with identical pages" wait_for 240 grep -q "MS-FILLED 96" "$dir/pr1.serial"
check "the blk image is attached" wait_for 60 blk_attached
echo 1000 > $ksm/sleep_millisecs; echo 20000 > $ksm/pages_to_scan; echo 10 > $ksm/sleep_millisecs
echo 1 > $ksm/run
check "KSM saves memory" wait_for 180 bash -c "[ \$(cat $ksm/pages_sharing) -gt 10000 ]"
check "the agent gave the saving to the guest (balloon.current > base)" wait_for 120 above_base
echo "# balloon.current $(bal_cur) KiB, target $(( $(st balloon target) / MiB )) MiB"
check "tracking reports figures" wait_for 10 tracking_used
a1=$(cat "$rt/agent.pid")

# --- removed with memsharectl -------------------------------------------------
out=$(CTL policy remove pr1 --live 2>&1); rc=$?
diag "memsharectl policy remove: $out"
check "memsharectl policy remove --live succeeds" test "$rc" = 0
check "the agent logs the removal" wait_for 10 grep -q "policy removed from the domain: memshare stops its work here (the balloon back to its base, 384 MiB" "$log"
check "the balloon returns to its base (balloon.current 384 MiB)" wait_for 60 at_base
echo "# balloon.current $(bal_cur) KiB"
policy_state() { [ "$(st policy state)" = "$1" ]; }
check "the status file says the policy was removed" wait_for 10 policy_state removed
check "tracking stopped (no tracking figures in the status)" no_group tracking
n=$(count "balloon: target")
sleep 4
check "no balloon request while the policy is removed" test "$(count "balloon: target")" = "$n"
check "still no tracking figures after 4 periods" no_group tracking
check "the balloon stays at base" at_base
ds=$(MEMSHARE_RUNTIME_DIR=$dir/run-memshare "$MS_CTL" domstats pr1 2>&1)
check "memsharectl domstats says the policy was removed" grep -q "^  memshare.policy=removed" <<< "$ds"
check "the domain keeps running" grep -q running <<< "$(V domstate pr1)"
check "the same agent keeps running (idle)" test "$(cat "$rt/agent.pid" 2>/dev/null)" = "$a1" -a -n "$a1"
check "...and alive" agent_alive
blk=$(V domblklist pr1 --details 2>/dev/null)
check "the blk image stays attached" grep -q "sha256-$sha.img" <<< "$blk"
out=$(vmenv_exec "$MS_CTL" image remove tools 2>&1); rc=$?
check "the store still counts the image as in use (image remove refused)" test "$rc" != 0
out=$(MEMSHARE_RUNTIME_DIR=$dir/run-memshare "$MS_CTL" usedmap pr1 "$dir/map" 2>&1); rc=$?
diag "memsharectl usedmap: $out"
check "usedmap is refused" test "$rc" != 0
check "...naming the removal" grep -q "policy was removed" <<< "$out"

# --- set again live: the work resumes ----------------------------------------------
V metadata pr1 "$NS" --key memshare --set "$(cat "$dir/policy.xml")" --live >/dev/null
check "the agent resumes on a policy set again" wait_for 10 grep -q "policy set again: memshare resumes its work" "$log"
check "the status file says active again" wait_for 10 policy_state active
check "tracking reports figures again" wait_for 10 has_group tracking
check "the balloon goes above base again" wait_for 120 above_base
echo "# balloon.current $(bal_cur) KiB"

# --- removed with virsh metadata --remove ------------------------------------------
V metadata pr1 "$NS" --remove --live >/dev/null
check "virsh metadata --remove: the agent logs the removal again" \
    wait_for 10 bash -c "[ \$(grep -c 'policy removed from the domain' '$log') -ge 2 ]"
check "the balloon returns to its base again" wait_for 60 at_base
check "the domain keeps running" grep -q running <<< "$(V domstate pr1)"

# --- destroy: the idle agent goes as any agent does ------------------------------
V destroy pr1 >/dev/null
check "the idle agent is gone after virsh destroy" wait_for 5 bash -c "! kill -0 $a1 2>/dev/null"
check "its runtime directory is gone" wait_for 5 test ! -e "$rt"

done_testing
