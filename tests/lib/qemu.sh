# tests/lib/qemu.sh: the bare TCG test guest that tests and benches start
# without libvirt: one QEMU command line (q35, RAM in a memory-backend-ram
# named pc.ram as libvirt names it, QMP socket, serial console in a file),
# its optional devices, waiting for a console marker, a one-shot QMP client
# and stopping. Sourced; needs nothing else from tests/lib, so benches use it
# too. Files of guest NAME, in $QEMU_DIR (default $tmp):
#   NAME.sock (QMP, for the agent), NAME.mon (a second QMP monitor: QEMU
#   serves one client per socket), NAME.console (ttyS0), NAME.qemu.log.
# Usage (tests/lib/README.md):
#   qemu_start NAME [mem=MIB] [uuid=U] [slots=N maxmem=MIB] [ports=N]
#       [balloon=on|fpr|nofpr|none] [balloon-bus=BUS] [mon] [noqmp] [nomerge]
#       [guest="APPEND"] [kernel=PATH] [initrd=PATH] [pmem=FILE] [blk=FILE]
#       [-- EXTRA QEMU ARGS]
#   -> $QEMU_PID and qemu_NAME = the pid; returns 1 (log printed) when QEMU
#      does not open its QMP socket.
#   qemu_wait_console NAME MARKER SECONDS; qemu_console NAME; qemu_stop NAME;
#   qemu_stop_all; qemu_qmp SOCKET JSON...
# QEMU=PATH runs another binary.

qemu_pids=()

# Deadline of a start-up or a marker: a bound on a hang, never a measurement.
_qemu_poll() {   # _qemu_poll SECONDS command...
    local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@" > /dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

qemu_start() {
    local name=$1; shift
    local dir=${QEMU_DIR:-$tmp}
    local mem=256 uuid= slots= maxmem= ports=0 balloon=on bbus= mon=0 qmp=1 machine=q35
    local append= kernel=${MS_GUEST_KERNEL:-} initrd=${MS_GUEST_INITRD:-} guest=0
    local -a dev=() extra=()
    local nd=0
    while [ $# -gt 0 ]; do
        case $1 in
            mem=*) mem=${1#mem=} ;;
            uuid=*) uuid=${1#uuid=} ;;
            slots=*) slots=${1#slots=} ;;
            maxmem=*) maxmem=${1#maxmem=} ;;
            ports=*) ports=${1#ports=} ;;
            balloon=on|balloon=fpr|balloon=nofpr|balloon=none) balloon=${1#balloon=} ;;
            balloon-bus=*) bbus=,bus=${1#balloon-bus=} ;;
            mon) mon=1 ;;
            noqmp) qmp=0 ;;
            # KSM off for QEMU's RAM: benches that count every guest's own pages
            nomerge) machine=q35,mem-merge=off ;;
            guest=*) guest=1; append=${1#guest=} ;;
            kernel=*) kernel=${1#kernel=} ;;
            initrd=*) initrd=${1#initrd=} ;;
            # shared images are read-only on the host side, always
            pmem=*) nd=$((nd + 1))
                    dev+=(-object "memory-backend-file,id=img$nd,mem-path=${1#pmem=},size=$(stat -c %s "${1#pmem=}"),share=on,readonly=on"
                          -device "virtio-pmem-pci,memdev=img$nd,id=pmem$nd") ;;
            blk=*) nd=$((nd + 1))
                   dev+=(-drive "file=${1#blk=},format=raw,if=none,id=img$nd,readonly=on"
                         -device "virtio-blk-pci,drive=img$nd,id=blk$nd") ;;
            --) shift; extra=("$@"); break ;;
            *) echo "qemu_start $name: unknown option '$1'" >&2; return 1 ;;
        esac
        shift
    done
    local m=$mem
    [ -n "$slots" ] && m="$mem,slots=$slots,maxmem=${maxmem:?qemu_start $name: slots= needs maxmem=}M"
    local -a cmd=("${QEMU:-qemu-system-x86_64}" -name "$name" -M "$machine" -accel tcg -smp 1 -m "$m"
                  -object "memory-backend-ram,id=pc.ram,size=${mem}M" -machine memory-backend=pc.ram
                  -nodefaults -display none -no-user-config)
    [ -n "$uuid" ] && cmd+=(-uuid "$uuid")
    local i
    for (( i = 1; i <= ports; i++ )); do cmd+=(-device "pcie-root-port,id=pci.$i,chassis=$i"); done
    case $balloon in
        on) cmd+=(-device "virtio-balloon-pci,id=balloon0$bbus") ;;
        fpr) cmd+=(-device "virtio-balloon-pci,id=balloon0,free-page-reporting=on$bbus") ;;
        nofpr) cmd+=(-device "virtio-balloon-pci,id=balloon0,free-page-reporting=off$bbus") ;;
    esac
    [ "$qmp" = 1 ] && cmd+=(-qmp "unix:$dir/$name.sock,server=on,wait=off")
    [ "$mon" = 1 ] && cmd+=(-qmp "unix:$dir/$name.mon,server=on,wait=off")
    if [ "$guest" = 1 ]; then
        cmd+=(-serial "file:$dir/$name.console" -kernel "${kernel:?qemu_start $name: no guest kernel (MS_GUEST_KERNEL)}"
              -initrd "${initrd:?qemu_start $name: no guest initrd (MS_GUEST_INITRD)}"
              -append "console=ttyS0 quiet $append")
    fi
    cmd+=("${dev[@]}" "${extra[@]}")
    # 9>&-: a flock held by the caller's fd 9 must not live on in QEMU
    "${cmd[@]}" < /dev/null > "$dir/$name.qemu.log" 2>&1 9>&- &
    QEMU_PID=$!
    qemu_pids+=("$QEMU_PID")
    printf -v "qemu_${name//[^A-Za-z0-9_]/_}" %s "$QEMU_PID"
    if [ "$qmp" = 1 ] && ! _qemu_poll 30 test -S "$dir/$name.sock"; then
        echo "# QEMU $name did not open its QMP socket:"; sed 's/^/# /' "$dir/$name.qemu.log"
        return 1
    fi
    return 0
}

qemu_console() { tr -d '\r' 2> /dev/null < "${QEMU_DIR:-$tmp}/$1.console"; }

# qemu_wait_console NAME MARKER SECONDS: the console shows MARKER; if not,
# the console's tail as TAP comments and 1.
qemu_wait_console() {
    local f=${QEMU_DIR:-$tmp}/$1.console
    _qemu_poll "$3" grep -q -- "$2" "$f" && return 0
    echo "# guest $1 never printed $2; console:"; tail -20 "$f" 2> /dev/null | tr -d '\r' | sed 's/^/# /'
    return 1
}

qemu_stop() {   # qemu_stop NAME: kill -9 and reap
    local v="qemu_${1//[^A-Za-z0-9_]/_}"
    [ -n "${!v:-}" ] || return 0
    kill -9 "${!v}" 2> /dev/null || true
    wait "${!v}" 2> /dev/null || true
    printf -v "$v" %s ""
    return 0
}

qemu_stop_all() {
    local p
    for p in "${qemu_pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
    for p in "${qemu_pids[@]}"; do wait "$p" 2> /dev/null || true; done
    qemu_pids=()
    return 0
}

# qemu_qmp SOCKET JSON...: one reply line per command on stdout, events
# skipped (on NAME.mon: the agent holds NAME.sock).
qemu_qmp() {
    python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def rd():
    while True:
        m = json.loads(f.readline())
        if "event" not in m: return m
rd(); f.write('{"execute":"qmp_capabilities"}\n'); f.flush(); rd()
for c in sys.argv[2:]:
    f.write(c + "\n"); f.flush(); print(json.dumps(rd()))
PY
}

# qemu_test_tmp NAME: the run directory of a TAP test that runs agents
# against bare QEMUs: tmp=$(mktemp -d /tmp/NAME.XXXXXX) and pids=() for its
# other processes. At exit those and the QEMUs are killed, when a check
# failed the tail of every $tmp/*.log is printed as TAP comments, and $tmp
# is removed (MS_KEEP_TMP=1 keeps it).
qemu_test_tmp() {
    tmp=$(mktemp -d "/tmp/$1.XXXXXX")
    pids=()
    trap _qemu_test_exit EXIT
}

_qemu_test_exit() {
    local p f
    for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null || true; done
    qemu_stop_all
    if [ "${_tap_failed:-0}" -gt 0 ]; then
        for f in "$tmp"/*.log; do [ -f "$f" ] && { echo "# --- $f"; tail -20 "$f" | sed 's/^/# /'; }; done
    fi
    if [ -n "${MS_KEEP_TMP:-}" ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}

# qemu_domain_xml NAME UUID MIB BALLOON-ATTRS POLICY-ELEMENTS: the domain XML
# libvirt would give the agent (--domain-xml) for a bare guest of MIB MiB
# with the virtio balloon balloon0.
qemu_domain_xml() {
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>$2</uuid>
  <memory unit='MiB'>$3</memory>
  <currentMemory unit='MiB'>$3</currentMemory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><memballoon model='virtio'$4><alias name='balloon0'/></memballoon></devices>
  <metadata>
    <memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>
      $5
    </memshare:policy>
  </metadata>
</domain>
XML
}

# qemu_agent NAME UUID [ARG...]: memshare's agent ($MS_AGENT) for guest NAME
# on NAME.sock with the domain XML $QEMU_DIR/NAME.xml, logging to
# NAME.agent.log; its pid in pids and agent_NAME.
qemu_agent() {
    local name=$1 uuid=$2 dir=${QEMU_DIR:-$tmp}; shift 2
    local qv="qemu_${name//[^A-Za-z0-9_]/_}"
    "${MS_AGENT:?}" --uuid "$uuid" --qmp-socket "$dir/$name.sock" --domain-xml "$dir/$name.xml" \
        --qemu-pid "${!qv}" "$@" >> "$dir/$name.agent.log" 2>&1 &
    pids+=("$!")
    printf -v "agent_${name//[^A-Za-z0-9_]/_}" %s "$!"
}
