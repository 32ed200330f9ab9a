#!/bin/bash
# tests/faults/test-faults-libvirt.sh: faults around a running domain, in
# one isolated libvirtd (tests/lib/vmenv.sh) with the hook installed and two
# small test guests (256 MiB) whose policies share KSM and track used pages.
#   - host KSM switched off (run=2, unmerge) and on again mid-run: agents
#     keep running, their status follows (merging pages 0, host-saved 0,
#     then merging again), the domains stay up;
#   - the runtime directory full (ENOSPC) and then read-only (EROFS) while
#     agents run: the domain keeps running, the agent logs the path and the
#     reason once, the status file is never half written, and is written
#     again (complete, fresh) once space returns;
#   - QEMU killed with SIGKILL: its agent exits, its runtime directory is
#     gone, libvirt shows the domain shut off, the other domain's agent is
#     not disturbed;
#   - a shared image missing from the store, or its blob corrupted (one
#     byte flipped): what `virsh start` says with on-error's default and with
#     on-error='ignore', and what the agent reports; a corrupt blob never
#     reaches the guest.
# /run/memshare inside the namespace is a 16 MiB tmpfs of this test's own
# (so that it can be filled); from outside it is reached through
# /proc/HOLDER/root. Host KSM is changed under /tmp/memshare-ksm.lock and
# restored at exit.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_ksm_lock
lvt_setup ms-faults "$LVT_CONF_ONE_TENANT"
# our own small file system for the runtime directory, so it can be filled
vmenv_exec mount -t tmpfs -o size=16m,mode=0755 ms-faults-run /run/memshare ||
    bail "cannot mount a tmpfs over /run/memshare in the namespace"
lvt_start
Vq() { V "$@" >/dev/null 2>&1; }

run=/proc/$VMENV_PID/root/run/memshare
rt=$run/domains LVT_RT=$run/domains
logs=$dir/log-memshare
policy() { echo "<memshare:policy xmlns:memshare='$NS' $1>$2</memshare:policy>"; }
U1=8c2d0e61-4a1f-4d66-9e7a-3b1e1d5f6a01
U2=8c2d0e61-4a1f-4d66-9e7a-3b1e1d5f6a02
# st UUID GROUP KEY: a value from the agent's status file
st() {
    sed -n "/^\[$2\]/,/^\[/p" "$rt/$1/status" 2>/dev/null | sed -n "s/^$3=//p" | head -n1
}
ticks_after() { local t; t=$(st "$1" agent ticks); [ -n "$t" ] && [ "$t" -gt "$2" ]; }
running() { [ "$(V domstate "$1" 2>/dev/null)" = running ]; }
shut_off() { V domstate "$1" 2>/dev/null | grep -q "^shut off"; }
not_running() { ! V list --name 2>/dev/null | grep -qx "$1"; }
# all_well: both first agents alive (the same processes), both domains running
all_well() { kill -0 "$a1" 2>/dev/null && kill -0 "$a2" 2>/dev/null && running f1 && running f2; }
merging() { local v; v=$(st "$1" ksm merging-pages); [ "${v:-0}" -gt 0 ]; }
key_is() { [ "$(st "$1" "$2" "$3")" = "$4" ]; }
fresh() { local u; u=$(st "$1" agent updated); [ "${u:-0}" -gt "$2" ]; }
dead() { ! kill -0 "$1" 2>/dev/null; }
no_disk() { ! V domblklist "$1" --details 2>/dev/null | grep -q "$2"; }

# KSM on and brisk for this run (restored at exit)
echo 1 > $ksm/run; echo 2000 > $ksm/pages_to_scan; echo 20 > $ksm/sleep_millisecs

# --- two guests with agents ---------------------------------------------------
# ksm-fill: 32 MiB of identical pages in each guest, something for KSM to merge.
# base = ceiling = 256 MiB: the balloon never moves, only the figures matter.
pol="<memshare:balloon mode='ksm-share' period='1s'/><memshare:tracking used-pages='on' period='1s'/><memshare:stats period='1s'/>"
export MS_GUEST_CMDLINE="ms.fill=32"
for n in 1 2; do
    u=U$n
    domain_xml f$n "${!u}" 256 256 ksm-fill "$dir/f$n.serial" "$(policy "" "$pol")" > "$dir/f$n.xml"
    V define "$dir/f$n.xml" >/dev/null || bail "define f$n"
    V start f$n >/dev/null || bail "start f$n"
done
unset MS_GUEST_CMDLINE
check "f1: agent running" wait_for 5 lvt_agent_alive $U1
check "f2: agent running" wait_for 5 lvt_agent_alive $U2
check "f1: status published" wait_for 10 test -s "$rt/$U1/status"
check "f2: status published" wait_for 10 test -s "$rt/$U2/status"
for n in 1 2; do
    wait_for 180 grep -q "MS-FILLED" "$dir/f$n.serial" || echo "# f$n: guest did not report MS-FILLED (continuing)"
done
a1=$(lvt_agent_pid $U1); a2=$(lvt_agent_pid $U2)

# --- 2. KSM off (unmerge) and on again ------------------------------------------
check "KSM merges the guests' pages (f1 merging-pages > 0)" \
    wait_for 120 merging $U1
echo "# before: f1 merging-pages=$(st $U1 ksm merging-pages) host-saved=$(st $U1 balloon host-saved)"
echo 2 > $ksm/run
t=$(st $U1 agent ticks)
check "KSM run=2: f1 reports merging-pages=0" wait_for 60 key_is $U1 ksm merging-pages 0
check "KSM run=2: f1 reports host-saved=0" wait_for 20 key_is $U1 balloon host-saved 0
check "KSM run=2: f1's agent keeps publishing (ticks > $t)" wait_for 10 ticks_after $U1 "${t:-0}"
check "KSM run=2: same agents still running, both domains running" all_well
no_ksm_err=$(grep -c "KSM\|ksm" "$logs/$U1.log")
echo "# f1 log lines mentioning KSM: $no_ksm_err"
echo 1 > $ksm/run
check "KSM run=1 again: f1 merging again (merging-pages > 0)" \
    wait_for 120 merging $U1
echo "# after: f1 merging-pages=$(st $U1 ksm merging-pages) host-saved=$(st $U1 balloon host-saved)"
check "KSM run=1 again: same agents, both domains running" \
    all_well

# --- 4. runtime directory full, then read-only ---------------------------------
status=$rt/$U1/status
groups_of() { grep -c '^\[' "$1"; }
complete() {   # the status file is a whole key file: every group, last line ends
    [ -s "$1" ] && [ "$(tail -c1 "$1" | od -An -c | tr -d ' ')" = '\n' ] &&
        grep -q '^\[agent\]' "$1" && grep -q '^updated=' "$1" && [ "$(groups_of "$1")" -ge "$2" ]
}
ngroups=$(groups_of "$status")
echo "# f1 status: $ngroups groups, $(wc -c < "$status") bytes"
dd if=/dev/zero of="$run/filler" bs=64k >/dev/null 2>&1
echo "# runtime fs: $(vmenv_exec df -k /run/memshare | tail -n1)"
check "runtime dir full: f1's agent logs the status path and ENOSPC" \
    wait_for 10 grep -q "cannot write status: .*/run/memshare/domains/$U1/status.*No space left on device" "$logs/$U1.log"
sleep 3
n_warn=$(grep -c "cannot write status" "$logs/$U1.log")
check "runtime dir full: logged once, not every period ($n_warn)" test "$n_warn" = 1
check "runtime dir full: the status file is still complete" complete "$status" "$ngroups"
check "runtime dir full: no half-written temporary files left" \
    bash -c "! ls '$rt/$U1'/*.?????? >/dev/null 2>&1"
check "runtime dir full: agents alive, domains running" \
    all_well
rm -f "$run/filler"
before=$(st $U1 agent updated)
check "space back: the agent says so" wait_for 10 grep -q "status written again" "$logs/$U1.log"
check "space back: status is fresh again (updated > $before)" \
    wait_for 10 fresh $U1 "$before"
check "space back: status complete" complete "$status" "$ngroups"

# read-only: a read-only bind mount over f1's directory (remounting the
# whole tmpfs read-only is refused while agents hold files open for writing)
d1=/run/memshare/domains/$U1
vmenv_exec sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"' sh "$d1" ||
    bail "cannot make $d1 read-only"
check "runtime dir read-only: f1's agent logs the path and EROFS" \
    wait_for 10 grep -q "cannot write status: .*/run/memshare/domains/$U1/status.*Read-only file system" "$logs/$U1.log"
check "runtime dir read-only: status still complete" complete "$status" "$ngroups"
check "runtime dir read-only: agents alive, domains running" all_well
vmenv_exec umount "$d1" || bail "cannot unmount $d1"
check "writable again: status written again (twice in the log now)" \
    wait_for 10 bash -c "[ \$(grep -c 'status written again' '$logs/$U1.log') -ge 2 ]"

# --- 1. QEMU killed --------------------------------------------------------------
q1=$(cat "$dir/run-libvirt/qemu/f1.pid" 2>/dev/null)
check "f1: QEMU pid known ($q1)" test -n "$q1"
t2=$(st $U2 agent ticks)
kill -9 "$q1"
check "QEMU killed: f1's agent exits within 5 s" wait_for 5 dead "$a1"
check "QEMU killed: f1's runtime directory is gone" wait_for 5 test ! -e "$rt/$U1"
# Whichever news comes first ends the agent: its pidfd watch on QEMU or
# libvirt's lifecycle event (CI saw both orders); either reason names the end.
check "QEMU killed: the agent logged why" \
    grep -Eq "stopping: (the QEMU process exited|libvirt reports the domain stopped)" "$logs/$U1.log"
# libvirt learns it from the monitor's EOF, possibly after the agent did
check "QEMU killed: libvirt shows f1 shut off" wait_for 30 shut_off f1
echo "# f1 domstate: $(V domstate f1 --reason 2>/dev/null)"
check "QEMU killed: f2's agent is the same process" test "$(lvt_agent_pid $U2)" = "$a2"
check "QEMU killed: f2's agent keeps publishing (ticks > $t2)" wait_for 10 ticks_after $U2 "${t2:-0}"
check "QEMU killed: f2 still running" running f2
V destroy f2 >/dev/null
check "f2 destroyed: its agent is gone" wait_for 5 dead "$a2"
check "f2 destroyed: runtime directory gone" wait_for 5 test ! -e "$rt/$U2"

# --- 3. shared image missing or corrupt -------------------------------------------
src=$dir/tree
mkdir -p "$src/data"
head -c $((1 << 20)) /dev/urandom > "$src/data/blob"
out=$(vmenv_exec "$MS_CTL" image build --from "$src" --name tools 2>&1) || bail "image build: $out"
manifest=$dir/lib-memshare/images/names/tools.json
sha=$(sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p' "$manifest")
blob=$dir/lib-memshare/images/blobs/sha256-$sha.img
check "image 'tools' in the store" test -f "$blob"
img() { policy "$1" "<memshare:shared-image name='$2' mode='blk'/><memshare:stats period='1s'/>"; }
n=0
mkdom() {   # mkdom NAME ON-ERROR-ATTR IMAGE -> defined, UUID in $u
    n=$((n + 1)); u=8c2d0e61-4a1f-4d66-9e7a-3b1e1d5f6b0$n
    domain_xml "$1" $u 256 256 idle "$dir/$1.serial" "$(img "$2" "$3")" > "$dir/$1.xml"
    V define "$dir/$1.xml" >/dev/null || bail "define $1"
}

mkdom m1 "" nosuch
out=$(V start m1 2>&1); rc=$?
sed 's/^/# virsh said: /' <<< "$out"
check "missing image, default on-error: virsh start fails" test "$rc" != 0
check "the message names the image and the reason" grep -q "<shared-image name='nosuch'>: no such image in the store" <<< "$out"
check "m1 is not running" not_running m1
check "no agent, no runtime directory for m1" test ! -e "$rt/$u"

mkdom m2 "on-error='ignore'" nosuch
out=$(V start m2 2>&1); rc=$?
sed 's/^/# virsh said: /' <<< "$out"
check "missing image, on-error='ignore': virsh start succeeds" test "$rc" = 0
check "m2 running" running m2
grep -h "m2.*nosuch" "$dir"/log-libvirt/libvirtd.log 2>/dev/null | tail -n 2 | sed 's/^/# libvirtd log: /'
# What happens next (see docs/reliability.md): the started hook checks no
# images, so the agent is launched and reports the image as failed; it
# retries every period, so an image added to the store later is attached.
check "m2: the agent runs and reports the image failed" \
    wait_for 10 grep -q '^nosuch.state=failed' "$rt/$u/status"
echo "# m2 status: $(grep '^nosuch' "$rt/$u/status" 2>/dev/null | tr '\n' ' ')"
check "m2: the status names the reason" grep -q "^nosuch.error=.*no such image" "$rt/$u/status"
check "m2: the agent log names image and reason" grep -q "image 'nosuch' (blk) not attached: .*no such image" "$logs/$u.log"
V destroy m2 >/dev/null

# one byte of the blob flipped: the store's sha256 no longer matches
chmod u+w "$blob"
corrupt_byte "$blob" $((1024 * 1024 + 17))
chmod 0444 "$blob"
check "the blob changed (digest differs)" test "$(sha256sum "$blob" | cut -d' ' -f1)" != "$sha"
verify=$(vmenv_exec "$MS_CTL" image verify tools 2>&1); vrc=$?
diag "memsharectl image verify: $verify"
check "memsharectl image verify reports the corruption" test "$vrc" != 0

mkdom c1 "" tools
out=$(V start c1 2>&1); rc=$?
sed 's/^/# virsh said: /' <<< "$out"
# prepare hashes the blob (or finds a stamp for this very file: dev, ino,
# size, mtime, ctime) and refuses a mismatch before QEMU starts.
check "corrupt blob, default on-error: virsh start refused" test "$rc" != 0
check "the message names the image and the digest mismatch" \
    grep -q "<shared-image name='tools'>: image 'tools': .* has sha256 .*, the manifest says $sha" <<< "$out"
check "c1 is not running" not_running c1
check "no agent, no runtime directory for c1" test ! -e "$rt/$u"

mkdom c2 "on-error='ignore'" tools
check "corrupt blob, on-error='ignore': virsh start succeeds" Vq start c2
u_c2=$u
check "c2: the agent reports the image failed (sha256 mismatch)" \
    wait_for 15 grep -q "^tools.error=.*does not match the manifest" "$rt/$u_c2/status"
check "c2: not attached" no_disk c2 "sha256-$sha"
V destroy c2 >/dev/null
check "all agents gone at the end" wait_for 5 bash -c "! ls '$rt'/*/agent.pid >/dev/null 2>&1"

done_testing
