# tests/lib/libvirt-test.sh: the preamble of every test (and demo, bench)
# that runs memshare in a real, isolated libvirtd (vmenv.sh): the run
# directory, the EXIT trap, the hook, memshare.conf, the host KSM lock and
# the helpers all of them spell the same way. Sources tap.sh, vmenv.sh and
# domain.sh.
#   lvt_ksm_lock          SKIP (exit 0) without a writable host KSM; take
#                         /tmp/memshare-ksm.lock (30 min at most, then bail);
#                         KSM's run, pages_to_scan, sleep_millisecs (and
#                         advisor_mode, where the kernel has it) restored
#                         at exit; sets ksm=/sys/kernel/mm/ksm. Call it
#                         first: before lvt_setup.
#   lvt_setup NAME [CONF] dir=$(mktemp -d ${LVT_TMP:-/tmp}/NAME.XXXXXX),
#                         vmenv_setup + vmenv_trap, then lvt_install CONF
#                         (LVT_HOOK=none: a libvirtd without memshare: no
#                         hook, no memshare.conf)
#   lvt_install [CONF]    in the current instance (also via vmenv_on HOST):
#                         install ${LVT_HOOK:-$MS_HOOK} as the qemu hook and
#                         write memshare.conf: [agent] path=$MS_AGENT,
#                         launcher=detached, log-dir=/var/log/memshare, then
#                         CONF (more sections, e.g. "$LVT_CONF_ONE_TENANT")
#   lvt_start             start libvirtd (bail if it does not answer)
#   lvt_guest_env [BUILD] export MS_GUEST_KERNEL/INITRD from BUILD's
#                         tests/guest; without BUILD bail unless both are set
#   V ARGS / Vq ARGS      virsh -q -c qemu:///system in the namespace (Vq:
#                         stdout dropped, for `check`, whose "ok" must reach TAP)
#   lvt_agent_pid UUID / lvt_agent_alive UUID   the domain's agent
#   lvt_image_build NAME ARGS...   memsharectl image build ... --name NAME in
#                         the namespace, its output as TAP comments; bail on failure
#   lvt_image_sha NAME    the sha256 of store image NAME (its manifest)
#   lvt_pair_setup NAME [CONF]   two test hosts a and b instead of one
#                         (vmenv_pair_*): dir as above, vmenv_pair_trap +
#                         vmenv_pair_setup, then on each host lvt_install CONF
#                         (unless LVT_HOOK=none) and libvirtd; V and Vq then
#                         take the host first (V a list), and
#                         lvt_pair_migrate FROM TO DOMAIN [VIRSH-OPTIONS]
#                         migrates live, peer to peer, data over the veth
#   lvt_pair_rt HOST UUID, lvt_pair_agent_pid HOST UUID,
#   lvt_pair_agent_alive HOST UUID   the domain's runtime dir and agent on HOST
# Variables: dir (the run directory), NS (the policy XML namespace), and
# LVT_RT / LVT_LOGS (the agents' runtime and log directories under $dir).
# At exit, when a check failed, the tail of every agent log is printed as
# TAP comments (before vmenv_stop removes them), tracking lines left out.

_lvt_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$_lvt_here/tap.sh"
source "$_lvt_here/vmenv.sh"
source "$_lvt_here/domain.sh"

NS=https://memshare.dev/xmlns/policy/1.0
# Several policy domains merging at once: the host opts in to one sharing
# group (docs/security.md; the default puts each domain in a group alone).
LVT_CONF_ONE_TENANT='[sharing]
default-group=host'
LVT_RT=
LVT_LOGS=
_lvt_ksm=/sys/kernel/mm/ksm
_lvt_saved_ksm=

_lvt_on_exit() {
    local r p s a f
    if [ -n "$_lvt_saved_ksm" ]; then
        read -r r p s a <<< "$_lvt_saved_ksm"
        # advisor_mode first: while the kernel's advisor runs (6.8+,
        # memshare's tuner turns it on) writes to pages_to_scan fail (EINVAL)
        [ -z "$a" ] || echo "$a" > $_lvt_ksm/advisor_mode 2> /dev/null || true
        echo "$p" > $_lvt_ksm/pages_to_scan; echo "$s" > $_lvt_ksm/sleep_millisecs; echo "$r" > $_lvt_ksm/run
    fi
    if [ "$_tap_failed" -gt 0 ] && [ -n "$LVT_LOGS" ]; then
        for f in "$LVT_LOGS"/*.log; do
            [ -f "$f" ] || continue
            echo "# --- $f"; grep -v "tracking:" "$f" | tail -n 25 | sed 's/^/# /'
        done
    fi
}
# vmenv_trap runs an EXIT trap set before it first: ours, so that KSM is
# restored and the logs are shown while the run directory still exists.
trap _lvt_on_exit EXIT

lvt_ksm_lock() {
    [ -w $_lvt_ksm/run ] || { echo "1..0 # SKIP no writable $_lvt_ksm"; exit 0; }
    # Host KSM is shared by everyone on the machine: one script at a time
    # changes it, for its whole run (fd 9 stays open until exit).
    exec 9>/tmp/memshare-ksm.lock
    flock -w 1800 9 || bail "KSM lock /tmp/memshare-ksm.lock held for 30 min"
    ksm=$_lvt_ksm
    _lvt_saved_ksm="$(cat $_lvt_ksm/run) $(cat $_lvt_ksm/pages_to_scan) $(cat $_lvt_ksm/sleep_millisecs) $(sed -n 's/.*\[\(.*\)\].*/\1/p' $_lvt_ksm/advisor_mode 2> /dev/null)"
}

lvt_install() {
    local conf=${1:-}
    vmenv_install_hook "${LVT_HOOK:-${MS_HOOK:?}}" || return 1
    vmenv_exec bash -c "cat > /etc/memshare/memshare.conf" <<CONF
[agent]
path=${MS_AGENT:?}
launcher=detached
log-dir=/var/log/memshare
$conf
CONF
}

lvt_setup() {
    local name=$1 conf=${2:-}
    dir=$(mktemp -d "${LVT_TMP:-/tmp}/$name.XXXXXX") || bail "mktemp in ${LVT_TMP:-/tmp}"
    LVT_RT=$dir/run-memshare/domains
    LVT_LOGS=$dir/log-memshare
    vmenv_setup "$dir" || bail "cannot set up the isolated libvirtd"
    vmenv_trap
    [ "${LVT_HOOK:-}" = none ] && return 0
    lvt_install "$conf" || bail "cannot install the memshare hook and memshare.conf"
}

lvt_start() { vmenv_start_libvirtd || bail "libvirtd did not start"; }

lvt_guest_env() {
    if [ $# -gt 0 ]; then
        export MS_GUEST_KERNEL=$1/tests/guest/vmlinuz MS_GUEST_INITRD=$1/tests/guest/initramfs.img
    fi
    [ -n "${MS_GUEST_KERNEL:-}" ] || bail "MS_GUEST_KERNEL is not set (the test guest's kernel)"
    [ -n "${MS_GUEST_INITRD:-}" ] || bail "MS_GUEST_INITRD is not set (the test guest's initramfs)"
}

V() { vmenv_exec virsh -q -c qemu:///system "$@"; }
Vq() { V "$@" >/dev/null; }

lvt_agent_pid() { cat "$LVT_RT/$1/agent.pid" 2>/dev/null; }
lvt_agent_alive() { local p; p=$(lvt_agent_pid "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

lvt_image_build() {
    local name=$1 out; shift
    out=$(vmenv_exec "${MS_CTL:?}" image build "$@" --name "$name" 2>&1) || bail "image build: $out"
    echo "$out" | sed 's/^/# /'
}

lvt_image_sha() {
    sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p' "$dir/lib-memshare/images/names/$1.json"
}

lvt_pair_setup() {
    local name=$1 conf=${2:-} h
    dir=$(mktemp -d "${LVT_TMP:-/tmp}/$name.XXXXXX") || bail "mktemp in ${LVT_TMP:-/tmp}"
    vmenv_pair_trap
    vmenv_pair_setup "$dir" || bail "cannot set up the two test hosts"
    for h in a b; do
        if [ "${LVT_HOOK:-}" != none ]; then
            vmenv_on $h lvt_install "$conf" || bail "cannot install the memshare hook on host $h"
        fi
        vmenv_on $h vmenv_start_libvirtd || bail "libvirtd on host $h did not start"
    done
    V() { local h=$1; shift; vmenv_on "$h" vmenv_exec virsh -q -c qemu:///system "$@"; }
}

lvt_pair_migrate() {
    local from=$1 to=$2 domain=$3 uri addr; shift 3
    uri=VMENV_URI_$to; addr=VMENV_ADDR_$to
    vmenv_on "$from" vmenv_exec timeout 600 virsh -q -c qemu:///system migrate --live --p2p "$@" "$domain" \
        "${!uri}" --migrateuri "tcp://${!addr}"
}

lvt_pair_rt() { echo "$dir/$1/run-memshare/domains/$2"; }
lvt_pair_agent_pid() { cat "$(lvt_pair_rt "$1" "$2")/agent.pid" 2>/dev/null; }
lvt_pair_agent_alive() { local p; p=$(lvt_pair_agent_pid "$1" "$2") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
