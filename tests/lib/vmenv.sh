# tests/lib/vmenv.sh: a private libvirtd for tests and tools/demo.sh,
# isolated from the host's. A long-lived holder process owns a private
# mount namespace in which per-run directories are bind-mounted over
# /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
# /var/cache/libvirt and memshare's own /etc, /run, /var/log, /var/lib
# directories; libvirtd, virtlogd, virsh and everything they start run
# inside it (vmenv_exec), so the host's files and sockets are never touched
# and a host libvirtd, if any, is never talked to.
#   vmenv_setup DIR          create DIR/*, the namespace, the configs
#   vmenv_trap               vmenv_stop on EXIT/INT/TERM (keeps a prior trap)
#   vmenv_exec CMD...        run CMD in the namespace (stdin passed through)
#   vmenv_install_hook PATH  install PATH as hooks/qemu.d/memshare
#   vmenv_start_libvirtd     start virtlogd + libvirtd, wait until virsh answers
#   vmenv_restart_libvirtd   SIGTERM libvirtd, start it again (domains live on)
#   vmenv_stop               tear everything down (idempotent)
# Sets VMENV_DIR and VMENV_PID (the namespace holder's pid).
#
# Two test hosts on one machine (migration tests), each a full instance as
# above whose holder also owns a network and a UTS namespace; a veth pair
# joins them on a private /30 that exists only inside these two namespaces:
#   vmenv_pair_trap          vmenv_pair_stop on EXIT/INT/TERM (set it first:
#                            it also cleans up after a failed setup)
#   vmenv_pair_setup DIR     hosts "a" (DIR/a) and "b" (DIR/b)
#   vmenv_on HOST CMD...     run CMD (any vmenv_* function, or a shell
#                            function calling them) against HOST
#   vmenv_pair_stop          tear both down (idempotent)
# Sets VMENV_ADDR_a/_b (10.254.14.1/.2), VMENV_URI_a/_b
# (qemu+tcp://ADDR/system), VMENV_UUID_a/_b (libvirtd.conf host_uuid).

VMENV_DIR=
VMENV_PID=
# nsenter's namespace flags for vmenv_exec: -m, plus -n -u for a pair host
VMENV_NSFLAGS=-m
# set by vmenv_pair_setup for the instance it creates: its veth address and
# host UUID (empty: a single instance, no network namespace, no TCP)
_VMENV_ADDR=
_VMENV_HOST_UUID=
_vmenv_prev_trap=

# "host path:dir under DIR" pairs: what is bind-mounted where. memshare
# reads SYSCONFDIR/memshare/memshare.conf, and a build with meson's default
# prefix has SYSCONFDIR=/usr/local/etc: both see the same private directory.
_vmenv_binds=(
    /etc/libvirt:etc-libvirt
    /run/libvirt:run-libvirt
    /var/lib/libvirt:lib-libvirt
    /var/log/libvirt:log-libvirt
    /var/cache/libvirt:cache-libvirt
    /etc/memshare:etc-memshare
    /usr/local/etc/memshare:etc-memshare
    /run/memshare:run-memshare
    /var/log/memshare:log-memshare
    /var/lib/memshare:lib-memshare
)

_vmenv_log() { echo "# vmenv: $*" >&2; }

vmenv_setup() {
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    local dir pair host sub
    dir=$(realpath -m "$1") || return 1
    mkdir -p "$dir" || return 1
    VMENV_DIR=$dir
    for pair in "${_vmenv_binds[@]}"; do
        mkdir -p "$dir/${pair#*:}" || return 1
    done
    mkdir -p "$dir/etc-libvirt/hooks/qemu.d" "$dir/etc-libvirt/qemu" \
             "$dir/lib-libvirt/qemu" "$dir/log-libvirt/qemu" || return 1

    # Our own daemon: root only, no auth, no TCP, no polkit.
    cat > "$dir/etc-libvirt/libvirtd.conf" <<'EOF'
listen_tls = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    if [ -n "$_VMENV_ADDR" ]; then
        # A pair host: TCP without auth, but only on the veth address, which
        # exists only inside the two test namespaces (nothing outside can
        # reach it). The host UUID differs per side: libvirt refuses a
        # migration whose destination reports the source's own UUID.
        # (each key once: libvirt's config parser keeps the first)
        cat >> "$dir/etc-libvirt/libvirtd.conf" <<EOF
listen_tcp = 1
auth_tcp = "none"
listen_addr = "$_VMENV_ADDR"
host_uuid = "$_VMENV_HOST_UUID"
EOF
    else
        echo 'listen_tcp = 0' >> "$dir/etc-libvirt/libvirtd.conf"
    fi
    # QEMU as root, no relabelling, no namespaces of libvirt's own (it would
    # build a private /dev in a mount namespace inside ours), no sandbox.
    cat > "$dir/etc-libvirt/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
seccomp_sandbox = 0
cgroup_controllers = []
stdio_handler = "file"
EOF
    if [ -n "$_VMENV_ADDR" ]; then
        # The incoming QEMU listens on the veth address, and it is the
        # address libvirt hands to the source when no --migrateuri is given
        # (both hosts would otherwise offer the same hostname).
        cat >> "$dir/etc-libvirt/qemu.conf" <<EOF
migration_address = "$_VMENV_ADDR"
migration_host = "$_VMENV_ADDR"
EOF
    fi
    cat > "$dir/etc-libvirt/virtlogd.conf" <<'EOF'
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
    : > "$dir/etc-libvirt/libvirt.conf"

    # The holder: a process in a fresh mount namespace with private
    # propagation, so our bind mounts never leak to the host.
    # A pair host also gets its own network and UTS namespace (the veth is
    # moved in by vmenv_pair_setup).
    local unshare_flags=-m
    VMENV_NSFLAGS=-m
    if [ -n "$_VMENV_ADDR" ]; then
        unshare_flags="-m -n -u"
        VMENV_NSFLAGS="-m -n -u"
    fi
    # shellcheck disable=SC2086
    unshare $unshare_flags --propagation private sleep infinity </dev/null >/dev/null 2>&1 9>&- &
    VMENV_PID=$!
    echo "$VMENV_PID" > "$dir/holder.pid"
    local i
    for i in $(seq 50); do
        [ "$(readlink /proc/$VMENV_PID/ns/mnt 2>/dev/null)" != "$(readlink /proc/self/ns/mnt)" ] &&
            [ -n "$(readlink /proc/$VMENV_PID/ns/mnt 2>/dev/null)" ] && break
        sleep 0.1
    done
    if [ "$(readlink /proc/$VMENV_PID/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] ||
       ! kill -0 "$VMENV_PID" 2>/dev/null; then
        _vmenv_log "the namespace holder did not start (unshare -m needs root)"
        return 1
    fi
    for pair in "${_vmenv_binds[@]}"; do
        host=${pair%%:*}; sub=${pair#*:}
        # A missing mount point (e.g. /etc/memshare on a host without
        # memshare) has to be created on the host's file system: an empty
        # directory, recorded so that vmenv_stop removes it again.
        if [ ! -e "$host" ]; then
            local top=$host
            while [ ! -e "$(dirname "$top")" ]; do top=$(dirname "$top"); done
            echo "$top" >> "$dir/created-mountpoints"
        fi
        nsenter -t "$VMENV_PID" -m -- sh -c 'mkdir -p "$1" && mount --bind "$2" "$1"' \
            sh "$host" "$dir/$sub" || { _vmenv_log "cannot bind $dir/$sub over $host"; return 1; }
    done
}

vmenv_exec() {
    [ -n "$VMENV_PID" ] || { _vmenv_log "vmenv_exec before vmenv_setup"; return 1; }
    # shellcheck disable=SC2086
    nsenter -t "$VMENV_PID" $VMENV_NSFLAGS -- "$@"
}

vmenv_install_hook() {
    local src
    src=$(realpath "$1") || return 1
    [ -x "$src" ] || { _vmenv_log "hook $1 is not executable"; return 1; }
    ln -sf "$src" "$VMENV_DIR/etc-libvirt/hooks/qemu.d/memshare"
}

# _vmenv_pid_of NAME: pid of daemon NAME from its pidfile in our /run/libvirt.
# The daemons' default pidfiles are /run/libvirtd.pid and /run/virtlogd.pid,
# outside the bind mounts, where a host instance holds them locked: we
# always pass -p into our own /run/libvirt.
_vmenv_pid_of() {
    local p
    p=$(cat "$VMENV_DIR/run-libvirt/$1.pid" 2>/dev/null) || return 1
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

_vmenv_ready() {
    vmenv_exec virsh -q -c qemu:///system version </dev/null >/dev/null 2>&1
}

_vmenv_wait_ready() {
    local i
    for i in $(seq 150); do
        _vmenv_ready && return 0
        # gone already: no point waiting
        [ "$i" -gt 20 ] && ! _vmenv_pid_of libvirtd >/dev/null && break
        sleep 0.2
    done
    _vmenv_ready && return 0
    _vmenv_log "libvirtd did not answer; its log:"
    tail -n 20 "$VMENV_DIR/log-libvirt/libvirtd.log" 2>/dev/null | sed 's/^/#   /' >&2
    return 1
}

# The daemons never inherit fd 9: callers hold the host KSM lock
# (/tmp/memshare-ksm.lock) on it, and a daemon would keep it locked.
_vmenv_start_daemons() {
    if ! _vmenv_pid_of virtlogd >/dev/null; then
        vmenv_exec virtlogd -d -f /etc/libvirt/virtlogd.conf -p /run/libvirt/virtlogd.pid </dev/null >/dev/null 2>&1 9>&- ||
            { _vmenv_log "virtlogd did not start"; return 1; }
    fi
    # --listen: listen_tcp only takes effect with it (no socket activation)
    local listen=
    grep -q '^listen_tcp = 1' "$VMENV_DIR/etc-libvirt/libvirtd.conf" && listen=--listen
    vmenv_exec libvirtd -d $listen -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid </dev/null >/dev/null 2>&1 9>&- ||
        { _vmenv_log "libvirtd did not start"; return 1; }
    _vmenv_wait_ready
}

vmenv_start_libvirtd() {
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    [ -n "$VMENV_PID" ] || { _vmenv_log "vmenv_start_libvirtd before vmenv_setup"; return 1; }
    _vmenv_start_daemons
}

# _vmenv_kill_wait PID SECONDS: SIGTERM, then SIGKILL after SECONDS
_vmenv_kill_wait() {
    local pid=$1 limit=$2 i
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    sleep 0.1
    return 0
}

vmenv_restart_libvirtd() {
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    local pid
    pid=$(_vmenv_pid_of libvirtd) && _vmenv_kill_wait "$pid" 15
    _vmenv_start_daemons
}

# _vmenv_kill_ns_rest: SIGKILL every process but the holder that lives in
# the holder's mount namespace.
_vmenv_kill_ns_rest() {
    local ns p
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    [ -n "$VMENV_PID" ] || return 0
    ns=$(readlink "/proc/$VMENV_PID/ns/mnt" 2>/dev/null) || return 0
    [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || return 0
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$VMENV_PID" ] && continue
        [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -KILL "$p" 2>/dev/null
    done
    return 0
}

vmenv_stop() {
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    local dir=$VMENV_DIR pid f d
    [ -n "$dir" ] || return 0
    if [ -n "$VMENV_PID" ] && kill -0 "$VMENV_PID" 2>/dev/null; then
        if _vmenv_pid_of libvirtd >/dev/null; then
            for d in $(vmenv_exec virsh -q -c qemu:///system list --name </dev/null 2>/dev/null); do
                timeout 20 nsenter -t "$VMENV_PID" $VMENV_NSFLAGS -- virsh -q -c qemu:///system destroy "$d" \
                    </dev/null >/dev/null 2>&1 || true
            done
        fi
    fi
    pid=$(_vmenv_pid_of libvirtd) && _vmenv_kill_wait "$pid" 10
    # QEMUs of this instance only: their pidfiles are in our /run/libvirt.
    for f in "$dir"/run-libvirt/qemu/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null)
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    done
    # memshare agents of this instance (pidfiles in our /run/memshare).
    for f in "$dir"/run-memshare/domains/*/agent.pid "$dir"/run-memshare/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null)
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    done
    pid=$(_vmenv_pid_of virtlogd) && _vmenv_kill_wait "$pid" 5
    # Whatever else still runs in our namespace was started by this
    # instance (an agent's --respawn supervisor, a hook child, a QEMU whose
    # pidfile libvirt had already removed): nothing outside it is touched.
    _vmenv_kill_ns_rest
    if [ -n "$VMENV_PID" ]; then
        # the bind mounts die with the namespace's last process
        kill -KILL "$VMENV_PID" 2>/dev/null
        wait "$VMENV_PID" 2>/dev/null || true
    fi
    VMENV_PID=
    VMENV_NSFLAGS=-m
    # Mount points we had to create: removed if still empty (rmdir only)
    # and no other instance's namespace mounts something there (removing
    # it would silently detach that instance's bind mount).
    if [ -f "$dir/created-mountpoints" ]; then
        while read -r f; do
            [ -d "$f" ] || continue
            grep -qsF " $f" /proc/[0-9]*/mountinfo && continue
            find "$f" -depth -type d -empty -delete 2>/dev/null
        done < "$dir/created-mountpoints"
        rm -f "$dir/created-mountpoints"
    fi
    if [ -n "${MS_KEEP_TMP:-}" ]; then
        _vmenv_log "kept $dir"
    else
        rm -rf "$dir"
    fi
    VMENV_DIR=
    return 0
}

# vmenv_trap: run vmenv_stop on exit or signal, after whatever EXIT trap was
# set before (so a test's own cleanup still runs).
vmenv_trap() {
    _vmenv_prev_trap=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
    trap '_vmenv_on_exit' EXIT
    trap '_vmenv_on_exit; trap - EXIT; exit 130' INT
    trap '_vmenv_on_exit; trap - EXIT; exit 143' TERM
}

_vmenv_on_exit() {
    local rc=$?
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    if [ -n "$_vmenv_prev_trap" ]; then eval "$_vmenv_prev_trap"; fi
    vmenv_stop
    return $rc
}

# --- two hosts ------------------------------------------------------------------
# Each host is one instance of the above, its state kept in _vmenv_h_* and
# swapped into VMENV_DIR/VMENV_PID/VMENV_NSFLAGS by vmenv_on for the length
# of one command (bash's dynamic scoping: the functions CMD calls see the
# host's values; the globals stay as they were).
declare -A _vmenv_h_dir=() _vmenv_h_pid=() _vmenv_h_flags=()
_vmenv_pair_top=
VMENV_ADDR_a=10.254.14.1
VMENV_ADDR_b=10.254.14.2
VMENV_URI_a=qemu+tcp://$VMENV_ADDR_a/system
VMENV_URI_b=qemu+tcp://$VMENV_ADDR_b/system
VMENV_UUID_a=5e1f0c9a-14a0-4d6e-9b8e-00000000000a
VMENV_UUID_b=5e1f0c9a-14a0-4d6e-9b8e-00000000000b

vmenv_on() {
    local h=$1; shift
    [ -n "${_vmenv_h_pid[$h]:-}" ] || { _vmenv_log "vmenv_on: no host '$h' (vmenv_pair_setup first)"; return 1; }
    local VMENV_DIR=${_vmenv_h_dir[$h]} VMENV_PID=${_vmenv_h_pid[$h]} VMENV_NSFLAGS=${_vmenv_h_flags[$h]}
    "$@"
}

vmenv_pair_setup() {
    local -; set +e  # callers may run under set -e; we check statuses ourselves
    local top h addr uuid
    top=$(realpath -m "$1") || return 1
    mkdir -p "$top" || return 1
    _vmenv_pair_top=$top
    for h in a b; do
        addr=VMENV_ADDR_$h; uuid=VMENV_UUID_$h
        # a subshell-free call: vmenv_setup sets the globals, we keep them
        _VMENV_ADDR=${!addr} _VMENV_HOST_UUID=${!uuid}
        local VMENV_DIR= VMENV_PID= VMENV_NSFLAGS=-m
        vmenv_setup "$top/$h"; local rc=$?
        _vmenv_h_dir[$h]=$VMENV_DIR; _vmenv_h_pid[$h]=$VMENV_PID; _vmenv_h_flags[$h]=$VMENV_NSFLAGS
        _VMENV_ADDR= _VMENV_HOST_UUID=
        [ "$rc" = 0 ] || { _vmenv_log "host $h: setup failed"; return 1; }
        echo "$VMENV_PID" > "$top/$h.holder.pid"
        # lo is down in a fresh network namespace; libvirt and QEMU want it
        nsenter -t "$VMENV_PID" -n ip link set lo up || return 1
        nsenter -t "$VMENV_PID" -u hostname "memshare-test-$h" || return 1
    done
    # The veth pair is created directly in the two namespaces (its names are
    # per namespace: nothing appears in the host's, and it vanishes with
    # the holders).
    ip link add ms-mig0 netns "${_vmenv_h_pid[a]}" type veth peer name ms-mig0 netns "${_vmenv_h_pid[b]}" ||
        { _vmenv_log "cannot create the veth pair"; return 1; }
    for h in a b; do
        addr=VMENV_ADDR_$h
        nsenter -t "${_vmenv_h_pid[$h]}" -n sh -c \
            'ip addr add "$1/30" dev ms-mig0 && ip link set ms-mig0 up' sh "${!addr}" ||
            { _vmenv_log "host $h: cannot configure ms-mig0"; return 1; }
    done
    # wait for the carrier on both ends (IPv4 has no DAD to wait for)
    local i
    for i in $(seq 50); do
        nsenter -t "${_vmenv_h_pid[a]}" -n ip -o link show ms-mig0 | grep -q LOWER_UP &&
            nsenter -t "${_vmenv_h_pid[b]}" -n ip -o link show ms-mig0 | grep -q LOWER_UP && return 0
        sleep 0.1
    done
    _vmenv_log "the veth pair did not come up"
    return 1
}

vmenv_pair_stop() {
    local -; set +e
    local h
    for h in a b; do
        [ -n "${_vmenv_h_pid[$h]:-}" ] || continue
        vmenv_on "$h" vmenv_stop
        unset "_vmenv_h_pid[$h]" "_vmenv_h_dir[$h]" "_vmenv_h_flags[$h]"
    done
    # DIR itself, as vmenv_stop removes its own (MS_KEEP_TMP=1 keeps it)
    if [ -n "$_vmenv_pair_top" ] && [ -z "${MS_KEEP_TMP:-}" ]; then
        rm -rf "$_vmenv_pair_top"
    fi
    _vmenv_pair_top=
    return 0
}

vmenv_pair_trap() {
    _vmenv_prev_trap=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
    trap '_vmenv_pair_on_exit' EXIT
    trap '_vmenv_pair_on_exit; trap - EXIT; exit 130' INT
    trap '_vmenv_pair_on_exit; trap - EXIT; exit 143' TERM
}

_vmenv_pair_on_exit() {
    local rc=$?
    local -; set +e
    if [ -n "$_vmenv_prev_trap" ]; then eval "$_vmenv_prev_trap"; fi
    vmenv_pair_stop
    return $rc
}
