# tests/lib/nspawn-host.sh: a Debian 12 host with systemd as PID 1, booted
# with `systemd-nspawn -b` from the cached tree tests/systemd/build-host.sh
# makes (sourced). The cached tree is never written: the container runs on
# an overlayfs (lower = cached tree, upper = a per-run directory), so every
# run starts from the same freshly installed Debian and leaves nothing in
# the cache. docs/systemd.md says which nspawn options this needs and why.
#   nspawn_host_setup TREE DIR   overlay TREE at DIR/root (upper in DIR/upper)
#   nspawn_host_trap             nspawn_host_stop on EXIT/INT/TERM (keeps a prior trap)
#   nspawn_host_boot             boot it, wait until `systemctl is-system-running`
#                                answers running (120 s max); console in DIR/console.log
#   nspawn_host_exec CMD...      run CMD inside (all its namespaces; stdin passed)
#   nspawn_host_stop             power it off, unmount, remove DIR (idempotent;
#                                MS_KEEP_TMP=1 keeps DIR)
# Sets NSPAWN_DIR, NSPAWN_ROOT (the container's / as seen from the host),
# NSPAWN_PID (systemd-nspawn) and NSPAWN_LEADER (the container's PID 1).

NSPAWN_DIR=
NSPAWN_ROOT=
NSPAWN_PID=
NSPAWN_LEADER=
NSPAWN_MACHINE=${NSPAWN_MACHINE:-memshare-host}
_nspawn_prev_trap=

_nspawn_log() { echo "# nspawn-host: $*" >&2; }

nspawn_host_setup() {
    local tree=$1 dir
    dir=$(realpath -m "$2") || return 1
    NSPAWN_DIR=$dir
    NSPAWN_ROOT=$dir/root
    mkdir -p "$dir/upper" "$dir/work" "$dir/root" || return 1
    [ -x "$tree/lib/systemd/systemd" ] || { _nspawn_log "$tree is not a built host tree"; return 1; }
    mount -t overlay overlay -o "lowerdir=$tree,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
}

nspawn_host_trap() {
    _nspawn_prev_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
    trap 'nspawn_host_stop; eval "$_nspawn_prev_trap"' EXIT
    trap 'exit 130' INT TERM
}

# Options, each needed on these machines (docs/systemd.md):
#   --register=no --keep-unit  the outer host has no systemd/machined to
#                              register with or allocate a scope from (without
#                              them: "Failed to open system bus")
#   --private-network          the host's network is none of the test's business;
#                              libvirt's default network can still be created inside
#   --console=read-only        no terminal here; the boot log goes to console.log
#   SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1  the host's v1 controllers are mounted
#                              read-only inside, and libvirt then fails every
#                              start ("Failed to create v1 controller cpu for
#                              group: Read-only file system"); a cgroup2-only
#                              container (no controllers) works
# /sys is read-only inside (KSM readable, not writable; a --bind of
# /sys/kernel/mm/ksm is hidden by nspawn's own /sys mounts): nothing here
# writes host KSM.
nspawn_host_boot() {
    local i state
    rm -rf "/run/systemd/nspawn/propagate/$NSPAWN_MACHINE"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -D "$NSPAWN_ROOT" -b --machine="$NSPAWN_MACHINE" \
        --register=no --keep-unit --private-network \
        --console=read-only \
        > "$NSPAWN_DIR/console.log" 2>&1 < /dev/null &
    NSPAWN_PID=$!
    for i in $(seq 100); do
        NSPAWN_LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd | head -1)
        [ -n "$NSPAWN_LEADER" ] && break
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$NSPAWN_LEADER" ]; then
        _nspawn_log "systemd-nspawn did not start systemd:"; sed 's/^/# /' "$NSPAWN_DIR/console.log" >&2
        return 1
    fi
    # degraded (a unit failed) is reported, not hidden: the caller decides
    for i in $(seq 1200); do
        state=$(nspawn_host_exec systemctl is-system-running 2>/dev/null)
        case "$state" in running|degraded) break ;; esac
        sleep 0.1
    done
    _nspawn_log "booted (PID 1 = $NSPAWN_LEADER on the host), system state: ${state:-none}"
    [ "$state" = running ] || nspawn_host_exec systemctl --failed --no-pager >&2
    [ "$state" = running ] || [ "$state" = degraded ]
}

# nsenter rather than machinectl: nothing is registered (see above). The
# user namespace is the host's (no --private-users), so it is not entered.
nspawn_host_exec() {
    # from /: the caller's directory may not exist inside
    (cd / && nsenter -t "$NSPAWN_LEADER" -m -u -i -n -p -C --root --wd=/ \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 HOME=/root TERM=dumb "$@")
}

nspawn_host_stop() {
    local i
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        # SIGRTMIN+4 to the container's PID 1: systemd's poweroff
        kill -s RTMIN+4 "$NSPAWN_LEADER" 2>/dev/null
        for i in $(seq 300); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            _nspawn_log "container did not power off in 30 s: killing it"
            kill -KILL "$NSPAWN_PID" 2>/dev/null
        fi
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    NSPAWN_PID=
    if [ -n "$NSPAWN_ROOT" ] && mountpoint -q "$NSPAWN_ROOT"; then
        umount "$NSPAWN_ROOT" || umount -l "$NSPAWN_ROOT"
    fi
    rm -rf "/run/systemd/nspawn/propagate/$NSPAWN_MACHINE"
    if [ -n "$NSPAWN_DIR" ] && [ "${MS_KEEP_TMP:-0}" != 1 ]; then
        rm -rf "$NSPAWN_DIR"
    elif [ -n "$NSPAWN_DIR" ]; then
        _nspawn_log "kept $NSPAWN_DIR"
    fi
    NSPAWN_DIR=
}
