#!/bin/bash
# tests/e2e/test-hook-agent.sh: the whole path a user takes, in a real,
# isolated libvirtd with the memshare hook installed in its qemu.d/:
#   virsh start of a domain with a policy -> its agent runs within 2 s and
#   has logged the QEMU version and balloon size it read over QMP (libvirt
#   pass-through); used-page tracking reports figures; a metadata change is
#   picked up live; a libvirtd restart is ridden out; virsh destroy -> the
#   agent is gone within 2 s and its runtime directory is empty;
#   a domain without a policy gets no agent; an invalid policy (also one
#   whose child lacks the prefix) stops `virsh start` with the message;
#   on-error='ignore' starts without agent.
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_setup ms-e2e
lvt_start

policy() { echo "<memshare:policy xmlns:memshare='$NS' $1>$2</memshare:policy>"; }
U1=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f11
U2=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f22
U3=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f33
U4=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f44
rt=$dir/run-memshare/domains
logs=$dir/log-memshare

# --- a domain with a policy --------------------------------------------------
domain_xml ms1 $U1 512 512 idle "$dir/ms1.serial" \
    "$(policy "" "<memshare:tracking used-pages='on' period='1s'/><memshare:stats period='1s'/>")" > "$dir/ms1.xml"
V define "$dir/ms1.xml" >/dev/null || bail "define ms1"
V start ms1 >/dev/null || bail "start ms1"
check "agent running within 2 s of virsh start" wait_for 2 lvt_agent_alive $U1
check "agent logged the QEMU version read over QMP" wait_for 5 grep -q "attached: QEMU 7\.2" "$logs/$U1.log"
check "agent logged the balloon size (512 MiB)" grep -q "balloon actual 512 MiB" "$logs/$U1.log"
check "agent used libvirt's monitor pass-through" grep -q "transport libvirt" "$logs/$U1.log"
check "status file published" wait_for 5 grep -q "^actual=536870912" "$rt/$U1/status"
check "used-page tracking reports used memory" wait_for 10 grep -Eq "^used=[1-9][0-9]*" "$rt/$U1/status"
if [ -x "${MS_CTL:-}" ]; then
    out=$(MEMSHARE_RUNTIME_DIR=$dir/run-memshare "$MS_CTL" domstats ms1)
    check "memsharectl domstats shows the domain" grep -q "^Domain: 'ms1'" <<< "$out"
    check "memsharectl domstats shows memshare.tracking.used" grep -q "^  memshare.tracking.used=[1-9]" <<< "$out"
fi
wait_for 120 grep -q MS-GUEST-READY "$dir/ms1.serial" || echo "# guest not ready yet (continuing)"

# --- policy changed while running: the agent re-reads it -----------------------
# virsh/libvirt put the element and its children into the namespace given
# on the command line: the XML itself carries none
echo "<policy><tracking used-pages='on' period='2s'/><stats period='2s'/></policy>" > "$dir/p2.xml"
V metadata ms1 "$NS" --key memshare --set "$(cat "$dir/p2.xml")" --live >/dev/null
check "agent noticed the metadata change" wait_for 5 grep -q "policy changed: reloaded" "$logs/$U1.log"

# --- an invalid policy set live: refused with the reason, the old one kept ----
# (virsh bypasses memsharectl's validation, so the agent is the last check)
echo "<policy><tracking used-pages='maybe'/></policy>" > "$dir/p3.xml"
V metadata ms1 "$NS" --key memshare --set "$(cat "$dir/p3.xml")" --live >/dev/null
check "agent refused the invalid live policy, naming attribute and value" \
    wait_for 5 grep -q "policy changed but the new one is invalid, keeping the old one: .*used-pages.*maybe" "$logs/$U1.log"
check "agent still running after the invalid policy" lvt_agent_alive $U1
check "domain still running after the invalid policy" grep -q running <<< "$(V domstate ms1)"
V metadata ms1 "$NS" --key memshare --set "$(cat "$dir/p2.xml")" --live >/dev/null
check "a valid policy set after it is loaded again" \
    wait_for 5 bash -c "[ \$(grep -c 'policy changed: reloaded' '$logs/$U1.log') -ge 2 ]"

# --- libvirtd restart: the agent rides it out ----------------------------------
a1=$(lvt_agent_pid $U1)
vmenv_restart_libvirtd
check "agent survived a libvirtd restart" lvt_agent_alive $U1
check "same agent (not a second one)" test "$(lvt_agent_pid $U1)" = "$a1"
check "agent reconnected to libvirtd" wait_for 15 grep -q "reconnected to libvirtd" "$logs/$U1.log"

# --- virsh destroy: agent gone, nothing left ----------------------------------
V destroy ms1 >/dev/null
check "agent gone within 2 s of virsh destroy" wait_for 2 bash -c "! kill -0 $a1 2>/dev/null"
check "runtime directory of the domain is gone" wait_for 2 test ! -e "$rt/$U1"

# --- no policy: no agent ---------------------------------------------------------
domain_xml plain $U2 256 256 idle "$dir/plain.serial" > "$dir/plain.xml"
V define "$dir/plain.xml" >/dev/null && V start plain >/dev/null
check "domain without policy started" Vq domstate plain
sleep 1
check "no agent, no runtime directory, no log for it" \
    test ! -e "$rt/$U2" -a ! -e "$logs/$U2.log"
V destroy plain >/dev/null

# --- invalid policy: virsh start fails with the message ------------------------
domain_xml bad $U3 256 256 idle "$dir/bad.serial" \
    "$(policy "" "<memshare:balloon mode='ksm-share' floor='2GiB'/>")" > "$dir/bad.xml"
V define "$dir/bad.xml" >/dev/null
out=$(V start bad 2>&1); rc=$?
sed 's/^/# virsh said: /' <<< "$out"
check "virsh start of an invalid policy fails" test "$rc" != 0
check "the error names domain, element and reason" grep -q "domain 'bad'.*<balloon floor='2GiB'>" <<< "$out"
running=$(V list --name)
check "the domain is not running" bash -c "! grep -qx bad <<< '$running'"

# --- a child without the prefix (issue 17): refused, not skipped ---------------
U5=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f55
domain_xml unpfx $U5 256 256 idle "$dir/unpfx.serial" \
    "$(policy "" "<balloon mode='ksm-share'/>")" > "$dir/unpfx.xml"
V define "$dir/unpfx.xml" >/dev/null
out=$(V start unpfx 2>&1); rc=$?
sed 's/^/# virsh said: /' <<< "$out"
check "virsh start with an unprefixed policy child fails" test "$rc" != 0
check "... with the element and the reason" \
    grep -qF "domain 'unpfx': <balloon>: not in the memshare namespace (write <memshare:balloon>)" <<< "$out"

# --- on-error='ignore': starts, no agent -------------------------------------------
domain_xml ign $U4 256 256 idle "$dir/ign.serial" \
    "$(policy "on-error='ignore'" "<memshare:balloon mode='ksm-share' floor='2GiB'/>")" > "$dir/ign.xml"
V define "$dir/ign.xml" >/dev/null
check "on-error='ignore': virsh start succeeds" Vq start ign
sleep 1
check "on-error='ignore': no agent runs" test ! -e "$rt/$U4/agent.pid"
V destroy ign >/dev/null

done_testing
