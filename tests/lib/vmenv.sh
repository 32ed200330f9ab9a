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

VMENV_DIR=
VMENV_PID=
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
listen_tcp = 0
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
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
    cat > "$dir/etc-libvirt/virtlogd.conf" <<'EOF'
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
EOF
    : > "$dir/etc-libvirt/libvirt.conf"

    # The holder: a process in a fresh mount namespace with private
    # propagation, so our bind mounts never leak to the host.
    unshare -m --propagation private sleep infinity </dev/null >/dev/null 2>&1 9>&- &
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
    nsenter -t "$VMENV_PID" -m -- "$@"
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
    vmenv_exec libvirtd -d -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid </dev/null >/dev/null 2>&1 9>&- ||
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
                timeout 20 nsenter -t "$VMENV_PID" -m -- virsh -q -c qemu:///system destroy "$d" \
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
