#!/bin/bash
# tests/systemd/test-systemd-host.sh: memshare on a Debian 12 host where
# systemd is PID 1, the way a user installs and runs it. A cached debootstrap
# tree (build-host.sh) is booted with systemd-nspawn (tests/lib/nspawn-host.sh);
# inside it, memshare is built and installed by README.md's own install
# lines (read from README.md, so the two cannot drift), with Debian's
# socket-activated libvirtd, its default configuration and no memshare.conf
# (launcher=auto). Then:
#   virsh start of a policy-carrying TCG domain starts memshare-agent@UUID
#   (active, sandboxed: seccomp, no_new_privs, three capabilities), also
#   where /var/lib/memshare does not exist; the agent works under the
#   sandbox: QMP through libvirt, used-page tracking with kpageflags, KSM
#   figures, the balloon, a DAX image the guest mounts (memsharectl domstats
#   inside); virsh destroy + start at once gives the new QEMU a new agent;
#   `systemctl restart libvirtd` leaves exactly one agent;
#   `systemctl restart` of the agent keeps the hook's boot-memory record and
#   the balloon's base (even when the balloon was moved while no agent ran);
#   `systemd-analyze security` of the installed unit < 3.0; `virsh destroy`
#   leaves no unit, no runtime directory, no agent process.
#   args: SOURCE_ROOT HOST_CACHE_DIR; env: MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
source "$here/../lib/nspawn-host.sh"
source "$here/../lib/domain.sh"
src=$(realpath "$1")
cache=$2

for t in systemd-nspawn debootstrap nsenter; do
    command -v "$t" >/dev/null || bail "$t is missing (tools/install-deps.sh installs it)"
done
t0=$(date +%s)
bash "$here/build-host.sh" "$cache" | sed 's/^/# /'
[ "${PIPESTATUS[0]}" = 0 ] || bail "cannot build the Debian 12 host tree"
echo "# host tree ready after $(( $(date +%s) - t0 )) s"

dir=$(mktemp -d /tmp/ms-sdhost.XXXXXX)
nspawn_host_setup "$cache/root" "$dir" || bail "cannot overlay the host tree"
nspawn_host_trap
R=$NSPAWN_ROOT
X() { nspawn_host_exec "$@"; }
V() { X virsh -q -c qemu:///system "$@"; }

# The source as a user has it (tracked and new files, no build trees), and
# the test guest where a libvirt user keeps images: libvirt's dynamic
# ownership chowns kernel and initrd to libvirt-qemu at start, which a
# read-only bind of the build tree would refuse.
mkdir -p "$R/root/memshare"
if git -C "$src" rev-parse >/dev/null 2>&1; then
    (cd "$src" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$R/root/memshare" -xf -
else
    tar -C "$src" --exclude='./build*' --exclude='./_build*' --exclude=./.git -cf - . | tar -C "$R/root/memshare" -xf -
fi
cp "$MS_GUEST_KERNEL" "$R/var/lib/libvirt/images/ms-vmlinuz"
cp "$MS_GUEST_INITRD" "$R/var/lib/libvirt/images/ms-initramfs.img"
export MS_GUEST_KERNEL=/var/lib/libvirt/images/ms-vmlinuz MS_GUEST_INITRD=/var/lib/libvirt/images/ms-initramfs.img

t1=$(date +%s)
nspawn_host_boot || bail "the host did not boot (console: $dir/console.log)"
check "systemd is PID 1 inside and the system is running" test "$(X systemctl is-system-running)" = running
echo "# booted in $(( $(date +%s) - t1 )) s"

# --- install: README.md's lines, verbatim ----------------------------------------
readme_install() {
    awk '/^## Install/ { f = 1; next } f && /^    / { print substr($0, 5); g = 1; next } f && g && !/^$/ { exit }' "$1"
}
mapfile -t lines < <(readme_install "$src/README.md")
check "README.md has an install block (${#lines[@]} lines)" test "${#lines[@]}" -ge 2
t1=$(date +%s)
for l in "${lines[@]}"; do
    echo "# \$ $l"
    X bash -c "cd /root/memshare && $l" >> "$dir/install.log" 2>&1; rc=$?
    [ "$rc" = 0 ] || { tail -20 "$dir/install.log" | sed 's/^/#   /'; }
    check "install line exits 0: $l" test "$rc" = 0
done
echo "# installed in $(( $(date +%s) - t1 )) s"
unit_known() { X systemctl cat memshare-agent@.service >/dev/null; }
check "systemd knows the agent's template unit" unit_known
# /run inside is the container's own tmpfs, not under $R: read it with X
check "tmpfiles created /run/memshare/domains" X test -d /run/memshare/domains
check "libvirtd runs (socket-activated, restarted by the install)" test "$(X systemctl is-active libvirtd.service)" = active
check "no memshare.conf: the defaults (launcher=auto) are what runs" test ! -e "$R/etc/memshare/memshare.conf"

NS=https://memshare.dev/xmlns/policy/1.0
unit_of() { echo "memshare-agent@$1.service"; }
unit_state() { X systemctl is-active "$(unit_of "$1")"; }
main_pid() { X systemctl show -p MainPID --value "$(unit_of "$1")"; }
stat_of() { X memsharectl domstats "$1" | sed -n "s/^  $2=//p"; }
agents_of() { X pgrep -c -f "memshare-agent --uuid $1"; }
unit_active() { [ "$(unit_state "$1")" = active ]; }
journal_has() { X journalctl -u "$(unit_of "$1")" -o cat | grep -Eq "$2"; }
stats_match() { X memsharectl domstats "$1" | grep -Eq "$2"; }
rt_cat() { X cat "/run/memshare/domains/$1/$2" 2>/dev/null; }
pidfile_is() { [ "$(rt_cat "$1" agent.pid)" = "$2" ]; }
restarted() { unit_active "$1" && [ "$(main_pid "$1")" != "$2" ]; }
actual_kib() { V dommemstat "$1" | awk '$1 == "actual" { print $2 }'; }
actual_is() { [ "$(actual_kib "$1")" = "$2" ]; }
actual_ge() { local a; a=$(actual_kib "$1"); [ -n "$a" ] && [ "$a" -ge "$2" ]; }
# nothing of the domain's agent left: no unit loaded, no runtime dir, no process
agent_gone() {
    [ -z "$(X systemctl list-units --all --plain --no-legend "$(unit_of "$1")")" ] &&
        ! X test -e "/run/memshare/domains/$1" && [ "$(agents_of "$1")" = 0 ]
}

# --- a domain with a policy, on a host without /var/lib/memshare ----------------
# (a host that never ran the tmpfiles line, or keeps its store elsewhere)
X rm -rf /var/lib/memshare
U0=6c1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f00
domain_xml sd0 $U0 256 256 idle /var/log/libvirt/qemu/sd0.serial \
    "<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='1s'/><memshare:stats period='1s'/></memshare:policy>" \
    > "$R/root/sd0.xml"
V define /root/sd0.xml >/dev/null || bail "define sd0"
V start sd0 >/dev/null || bail "start sd0"
check "virsh start (launcher auto) started $(unit_of $U0): active" wait_for 20 unit_active $U0
check "... without /var/lib/memshare" test ! -e "$R/var/lib/memshare"
p0=$(main_pid $U0)
check "the unit's main process is the agent (agent.pid = MainPID $p0)" \
    wait_for 10 pidfile_is $U0 "$p0"
st=$(X cat /proc/"$p0"/status)
check "sandbox applied: no_new_privs" grep -q "^NoNewPrivs:[[:space:]]*1" <<< "$st"
check "sandbox applied: seccomp filter" grep -q "^Seccomp:[[:space:]]*2" <<< "$st"
# CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21)
check "sandbox applied: bounding set is the three capabilities" grep -q "^CapBnd:[[:space:]]*0000000000280004" <<< "$st"
check "QMP through libvirt: the agent logged QEMU's version" \
    wait_for 10 journal_has $U0 'attached: QEMU 7\.2.*transport libvirt'
check "used-page tracking under the sandbox: memshare.tracking.used > 0" \
    wait_for 15 stats_match sd0 '^  memshare.tracking.used=[1-9]'
check "kpageflags readable under the sandbox" test "$(stat_of sd0 memshare.tracking.kpageflags)" = yes
# destroy and start again at once (a script's "restart"): the old agent's
# stop and the new one's start must not cancel each other
V destroy sd0 >/dev/null
V start sd0 >/dev/null || bail "start sd0 again"
check "destroy + start at once: the unit is active with a new agent" wait_for 20 restarted $U0 "$p0"
qpid=$(X cat /run/libvirt/qemu/sd0.pid)
check "... attached to the new QEMU (pid $qpid)" wait_for 15 stats_match sd0 "^  memshare.agent.qemu-pid=$qpid\$"
V destroy sd0 >/dev/null
check "virsh destroy: no unit, no runtime directory, no agent left" wait_for 10 agent_gone $U0

# --- the whole policy: balloon, tracking, a DAX image --------------------------------
mkdir -p "$R/root/tree/bin"
printf '#!/bin/sh\necho hello-from-shared-image\n' > "$R/root/tree/bin/ms-hello"; chmod 755 "$R/root/tree/bin/ms-hello"
out=$(X memsharectl image build --from /root/tree --name tiny 2>&1) || bail "image build: $out"
diag "$out"
U1=6c1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f01
MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=2048 MS_DOMAIN_ROOT_PORTS=4 MS_GUEST_CMDLINE="ms.wait=120" \
    domain_xml sd1 $U1 512 384 mount-dax /var/log/libvirt/qemu/sd1.serial \
    "<memshare:policy xmlns:memshare='$NS'><memshare:balloon mode='ksm-share' floor='256MiB' period='1s'/><memshare:tracking used-pages='on' period='1s'/><memshare:shared-image name='tiny' mount='/opt/tools' mode='dax'/><memshare:stats period='1s'/></memshare:policy>" \
    > "$R/root/sd1.xml"
V define /root/sd1.xml >/dev/null || bail "define sd1"
V start sd1 >/dev/null || bail "start sd1"
check "sd1: $(unit_of $U1) active" wait_for 20 unit_active $U1
serial=$R/var/log/libvirt/qemu/sd1.serial
check "sd1: the agent attached the image (memshare.images.attached=1)" \
    wait_for 60 stats_match sd1 '^  memshare.images.attached=1$'
check "sd1: the guest mounted it with DAX" wait_for 240 grep -q "MS-MOUNTED /dev/pmem0 dax" "$serial"
check "sd1: and ran a program from it" wait_for 60 grep -q "MS-HELLO hello-from-shared-image" "$serial"
check "sd1: the balloon module computed a target" \
    wait_for 30 stats_match sd1 '^  memshare.balloon.target=[1-9][0-9]*$'
check "sd1: balloon base is <currentMemory> (384 MiB)" test "$(stat_of sd1 memshare.balloon.base)" = $((384 << 20))
ds=$(X memsharectl domstats sd1)
sed 's/^/# /' <<< "$ds"
check "sd1: KSM figures read (memshare.ksm.host-saved)" grep -Eq "^  memshare.ksm.host-saved=[0-9]+$" <<< "$ds"
check "sd1: KSM figures read (memshare.ksm.merging-pages)" grep -Eq "^  memshare.ksm.merging-pages=[0-9]+$" <<< "$ds"
check "sd1: used-page tracking (memshare.tracking.used > 0)" grep -Eq "^  memshare.tracking.used=[1-9]" <<< "$ds"

# --- systemctl restart libvirtd with the domain running ---------------------------------
p1=$(main_pid $U1)
X systemctl restart libvirtd.service
check "libvirtd restarted" test "$(X systemctl is-active libvirtd.service)" = active
check "the agent reconnected to libvirtd" \
    wait_for 30 journal_has $U1 'reconnected to libvirtd'
sleep 2 # the hook's `reconnect` call has run by now (libvirtd answers virsh)
V domstate sd1 >/dev/null
check "exactly one agent for sd1 after the restart" test "$(agents_of $U1)" = 1
check "and it is the same process, still the unit's main process" test "$(main_pid $U1)" = "$p1"
check "the unit was not restarted by systemd" test "$(X systemctl show -p NRestarts --value "$(unit_of $U1)")" = 0

# --- systemctl restart of the agent keeps the balloon's base --------------------------
boot=$(rt_cat $U1 boot-memory)
check "the hook recorded the boot sizes (boot-memory: $(echo $boot))" grep -q "^current-memory=$((384 << 10))$" <<< "$boot"
X systemctl restart "$(unit_of $U1)"
check "agent restarted: unit active with a new main process" \
    wait_for 10 restarted $U1 "$p1"
check "the hook's boot-memory survived the restart, unchanged" test "$(rt_cat $U1 boot-memory)" = "$boot"
# The balloon moved while no agent runs (libvirt then reports it as the
# live <currentMemory>): the next agent must still take 384 MiB as its base.
X systemctl stop "$(unit_of $U1)"
check "boot-memory survives a stop of the unit" test "$(rt_cat $U1 boot-memory)" = "$boot"
V setmem sd1 320M --live >/dev/null
check "balloon moved to 320 MiB while no agent runs" wait_for 30 actual_is sd1 $((320 << 10))
X systemctl start "$(unit_of $U1)"
check "agent started again" wait_for 10 unit_active $U1
check "its balloon base is still 384 MiB (not the 320 MiB it found)" \
    wait_for 10 stats_match sd1 "^  memshare.balloon.base=$((384 << 20))\$"
check "and it gives the guest back at least its base" wait_for 60 actual_ge sd1 $((384 << 10))

# --- exposure of the installed unit, as systemd on the host scores it -------------------
sec=$(X systemd-analyze security --no-pager "$(unit_of $U1)" 2>&1)
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<< "$sec")
echo "# systemd-analyze security $(unit_of $U1): $score"
check "exposure level of the running unit '$score' < 3.0" awk "BEGIN { exit !(\"$score\" != \"\" && $score < 3.0) }"

# --- virsh destroy: nothing left ---------------------------------------------------------
V destroy sd1 >/dev/null
check "virsh destroy: the unit stopped and is gone, no runtime directory, no agent" wait_for 15 agent_gone $U1
check "no memshare agent process at all" test "$(X pgrep -c memshare-agent)" = 0
failed=$(X systemctl list-units --failed --plain --no-legend)
check "no failed unit on the host" test -z "$failed"
[ -z "$failed" ] || sed 's/^/# failed: /' <<< "$failed"
echo "# whole test: $(( $(date +%s) - t0 )) s"
done_testing
