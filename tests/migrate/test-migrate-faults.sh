#!/bin/bash
# tests/migrate/test-migrate-faults.sh: what goes wrong when a memshare
# domain (a `blk` shared image, used-page tracking) is live-migrated between
# two test hosts (vmenv_pair_*), and that each case leaves the domain
# running on one side with one agent and says why:
#   - the destination's store lacks the image: the hook refuses at the
#     destination's `migrate` op, naming image and host; domain and agent
#     stay on the source;
#   - the destination has another content under that name: refused, naming
#     both digests and the host;
#   - the migration cancelled midway (virsh domjobabort, bandwidth-limited
#     so it is still running): domain and the same agent on the source,
#     nothing left on the destination, whose agent (launched by `started`
#     while the migration runs) waited for it and exits cleanly;
#   - the destination fetches the image itself (the policy's
#     <migration missing-images='fetch'/>, host b's [migration] image-peers
#     naming host a): the migration succeeds with the same blob, and back;
#   - the image pushed from the source's store to the destination's
#     (memsharectl image push; refused first while the destination has
#     another content under the name);
#   - then a good migration: agent on the destination, same blob attached;
#   - a destination without memshare (no hook): the domain migrates and runs
#     there without an agent (nothing can refuse or start one); a `dax`
#     domain migrated to such a host arrives without its pmem device in the
#     destination QEMU (what the destination's hook adds).
#   env: MS_HOOK, MS_AGENT, MS_CTL, MS_GUEST_KERNEL, MS_GUEST_INITRD
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"

lvt_pair_setup ms-mig
top=$dir
C() { local h=$1; shift; vmenv_on "$h" vmenv_exec "$MS_CTL" "$@"; }
U=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f91
rt() { lvt_pair_rt "$1" $U; }
agent_pid() { lvt_pair_agent_pid "$1" $U; }
agent_alive() { lvt_pair_agent_alive "$1" $U; }
sha_of() { sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p' "$top/$1/lib-memshare/images/names/$2.json"; }
# blob_attached HOST SHA: the live XML on HOST has the store blob SHA as a disk
# the store's blob or the domain's group copy (default-group=domain): either names the content
blob_attached() { V "$1" dumpxml mig3 2>/dev/null | grep -Eq "/(blobs|groups/[^/]+)/sha256-$2.img"; }
runs_on() { grep -qx running <<< "$(V "$1" domstate mig3 2>&1)"; }
absent_on() { ! grep -qx mig3 <<< "$(V "$1" list --all --name)"; }
migrate() { local from=$1 to=$2; shift 2; lvt_pair_migrate "$from" "$to" mig3 "$@" 2>&1; }
# stays_on HOST PID WHAT: after a failed migration the domain and the same
# agent are on HOST, the other host has neither
stays_on() {
    local h=$1 pid=$2 what=$3 o
    o=$([ "$h" = a ] && echo b || echo a)
    check "$what: mig3 still runs on host $h" runs_on "$h"
    check "$what: the same agent still runs on host $h" test "$(agent_pid "$h")" = "$pid" -a -n "$pid"
    check "$what: agent alive" agent_alive "$h"
    check "$what: no mig3 on host $o" wait_for 10 absent_on "$o"
    check "$what: no runtime directory (no agent) on host $o" wait_for 10 test ! -e "$(rt "$o")"
}

# --- images: 'usr' on host a; host b gets it later ----------------------------------
mkdir -p "$top/src1/bin" "$top/src2/bin"
echo "hello from the image" > "$top/src1/bin/hello"
echo "another content, same name" > "$top/src2/bin/hello"
C a image build --from "$top/src1" --name usr > "$top/build.log" 2>&1 || bail "image build usr on host a"
sha_a=$(sha_of a usr)

export MS_GUEST_CMDLINE="ms.size=16 ms.hold=100000"
# a free PCIe root port for the blk image the agent hot-plugs
export MS_DOMAIN_ROOT_PORTS=4
policy="<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='1s'/><memshare:stats period='1s'/><memshare:shared-image name='usr' mode='blk'/><memshare:migration missing-images='fetch'/></memshare:policy>"
domain_xml mig3 $U 320 320 touch-free /var/log/libvirt/qemu/mig3.serial "$policy" > "$top/mig3.xml"
V a create "$top/mig3.xml" >/dev/null || bail "cannot start mig3 on host a"
check "agent runs on host a" wait_for 10 agent_alive a
check "the blk image is attached on host a (blob path in the live XML)" \
    wait_for 300 blob_attached a "$sha_a"
wait_for 300 grep -q "^MS-TOUCHED" "$top/a/log-libvirt/qemu/mig3.serial" || echo "# guest not ready yet (continuing)"
pid_a=$(agent_pid a)

# --- the destination's store lacks the image ----------------------------------------
out=$(migrate a b); rc=$?
sed 's/^/# virsh migrate: /' <<< "$out"
check "missing image: migration refused" test "$rc" != 0
check "missing image: the message names image and host" \
    grep -q "migration refused: <shared-image name='usr'>: not in the image store .* of host 'memshare-test-b'" <<< "$out"
check "missing image: the refusal says no peer is configured to fetch it from" \
    grep -q "<migration missing-images='fetch'>: no \[migration\] image-peers in" <<< "$out"
stays_on a "$pid_a" "missing image"

# --- the destination fetches it (missing-images='fetch', host b trusts a) ----------
# The remote shell of b's hook: ssh would run `memsharectl image send ...`
# on host a; this one drops HOST and "memsharectl" and runs the rest in
# host a's namespaces (a's store).
cat > "$top/rsh-a" <<EOF
#!/bin/bash
shift 2
exec nsenter -t $(cat "$top/a.holder.pid") ${_vmenv_h_flags[a]} -- env -u MEMSHARE_IMAGE_STORE "$MS_CTL" "\$@"
EOF
chmod +x "$top/rsh-a"
vmenv_on b vmenv_exec bash -c "printf '[migration]\nimage-peers=memshare-test-a\nimage-rsh=%s\n' '$top/rsh-a' >> /etc/memshare/memshare.conf" ||
    bail "cannot configure host b's image peers"
out=$(migrate a b); rc=$?
sed 's/^/# virsh migrate: /' <<< "$out"
check "fetch: the migration succeeds" test "$rc" = 0
check "fetch: host b's store now has 'usr', the source's digest" test "$(sha_of b usr)" = "$sha_a"
out=$(C b image verify usr 2>&1); rc=$?
check "fetch: host b's image verify passes" test "$rc" = 0
check "fetch: mig3 runs on host b" wait_for 30 runs_on b
check "fetch: agent on host b" wait_for 30 agent_alive b
check "fetch: the same blob attached on host b" wait_for 60 blob_attached b "$sha_a"
check "fetch: no mig3 left on host a" wait_for 30 absent_on a
out=$(migrate b a); rc=$?
[ "$rc" = 0 ] || sed 's/^/# virsh migrate back: /' <<< "$out"
check "and back to host a" test "$rc" = 0
check "back: agent on host a" wait_for 30 agent_alive a
check "back: no runtime directory on host b" wait_for 30 test ! -e "$(rt b)"
pid_a=$(agent_pid a)
# the cancel below reads host b's agent log for this domain from its start
mv "$top/b/log-memshare/$U.log" "$top/b/log-memshare/$U.fetch-leg.log" 2>/dev/null
# b's copy goes: the next faults need a 'usr' of other content on b
C b image remove usr >> "$top/build.log" 2>&1 || bail "image remove usr on host b (after the fetch)"

# --- another content under the same name ---------------------------------------------
C b image build --from "$top/src2" --name usr >> "$top/build.log" 2>&1 || bail "image build usr (src2) on host b"
sha_b=$(sha_of b usr)
check "the two hosts' 'usr' differ" test -n "$sha_b" -a "$sha_b" != "$sha_a"
out=$(migrate a b); rc=$?
sed 's/^/# virsh migrate: /' <<< "$out"
check "digest mismatch: migration refused" test "$rc" != 0
check "digest mismatch: the message names both digests, the image and the host" \
    grep -q "digest mismatch: the domain has sha256 $sha_a attached, host 'memshare-test-b' has 'usr' (sha256 $sha_b)" <<< "$out"
stays_on a "$pid_a" "digest mismatch"

# --- the same image on b, pushed from a (memsharectl image push) ---------------------
# push's remote shell: ssh would run `memsharectl image receive ...` on host
# b; this one drops HOST and "memsharectl" and runs the rest in host b's
# namespaces, where b's store is /var/lib/memshare/images
cat > "$top/rsh-b" <<EOF
#!/bin/bash
shift 2
exec nsenter -t $(cat "$top/b.holder.pid") ${_vmenv_h_flags[b]} -- env -u MEMSHARE_IMAGE_STORE "$MS_CTL" "\$@"
EOF
chmod +x "$top/rsh-b"
push() { "$MS_CTL" image push --store "$top/a/lib-memshare/images" --rsh "$top/rsh-b" usr \
    qemu+ssh://memshare-test-b/system 2>&1; }
out=$(push); rc=$?
sed 's/^/# image push: /' <<< "$out"
check "push onto another digest: refused" test "$rc" != 0
check "push onto another digest: both digests named" \
    grep -q "image 'usr' is sha256 $sha_b in .*, the one sent is sha256 $sha_a" <<< "$out"
check "push onto another digest: image, digest and host named" \
    grep -q "image 'usr' sha256 $sha_a to memshare-test-b: " <<< "$out"
check "push onto another digest: host b's 'usr' unchanged" test "$(sha_of b usr)" = "$sha_b"
C b image remove usr >> "$top/build.log" 2>&1 || bail "image remove usr on host b"
out=$(push); rc=$?
sed 's/^/# image push: /' <<< "$out"
check "push: exits 0" test "$rc" = 0
check "push: says what it sent to host b" \
    grep -q "image 'usr' sha256 $sha_a: [0-9]* bytes sent to memshare-test-b, verified there" <<< "$out"
check "host b now has the same 'usr' (pushed from a)" test "$(sha_of b usr)" = "$sha_a"
out=$(C b image verify usr 2>&1); rc=$?
check "host b's image verify passes" test "$rc" = 0
out=$(push); rc=$?
check "push again: nothing sent" grep -q "image 'usr' sha256 $sha_a: memshare-test-b has it already, nothing sent" <<< "$out"

# --- a migration cancelled midway ------------------------------------------------------
# 1 MiB/s: the guest's touched memory alone takes many seconds to send
migrate a b --bandwidth 1 > "$top/abort.out" 2>&1 &
mpid=$!
job_running() { V a domjobinfo mig3 2>/dev/null | grep -q "Job type: *Unbounded"; }
check "migration in progress" wait_for 120 job_running
V b list --all --name | sed 's/^/# host b has during the migration: /'
# host b's `started` hook already launched an agent; it must wait for the
# migration (libvirt holds the incoming job) instead of attaching. Abort
# only once it says so, so the cancel below meets a waiting agent.
# (the log file by name: a glob would be expanded once, before it exists)
blog=$top/b/log-memshare/$U.log
check "host b's agent waits for the incoming migration" \
    wait_for 60 grep -q "still arriving by an incoming migration" "$blog"
pid_bwait=$(agent_pid b)
V a domjobabort mig3 >/dev/null 2>&1
wait "$mpid"; rc=$?
sed 's/^/# virsh migrate: /' "$top/abort.out"
check "cancelled: virsh migrate failed" test "$rc" != 0
# libvirt reports whichever side noticed first: the source's "operation
# aborted: migration out: canceled by client", or, when the destination
# QEMU saw the stream cut before that, its "load of migration failed"
# (seen once in the full suite, 2026-12-07)
check "cancelled: the message says the job was cancelled (or the destination saw the stream cut)" \
    grep -qiE "cancel|load of migration failed" "$top/abort.out"
stays_on a "$pid_a" "cancelled"
check "cancelled: host b's waiting agent is gone" wait_for 10 bash -c "! kill -0 ${pid_bwait:-0} 2>/dev/null"
# gone on its own (the domain vanished) or by the hook's SIGTERM at
# `stopped`: whichever comes first, a clean exit, not a failed attach
ls "$top"/b/log-memshare/ | sed 's/^/# host b log dir: /'
tail -n 4 "$blog" 2>&1 | cut -c1-300 | sed 's/^/# host b agent log: /'
check "cancelled: host b's agent stopped waiting cleanly" \
    grep -qE "did not complete: the domain is gone|signal received while waiting for the migration" "$blog"
check "cancelled: host b's agent did not give up attaching" \
    bash -c "! grep -h 'cannot attach' '$blog'"

# --- a good migration ---------------------------------------------------------------
out=$(migrate a b); rc=$?
[ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
check "same image: migration a -> b succeeds" test "$rc" = 0
check "mig3 runs on host b" runs_on b
check "an agent runs on host b" wait_for 30 agent_alive b
check "host a's agent is gone" wait_for 10 bash -c "! kill -0 $pid_a 2>/dev/null"
check "host b's QEMU has the same blob attached" blob_attached b "$sha_a"
pid_b=$(agent_pid b)

# --- a DAX domain for the last case (test-migrate-dax.sh migrates one between
# two hosts with memshare) ------------------------------------------------------
U4=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5f92
rt4() { echo "$top/$1/run-memshare/domains/$U4"; }
policy4="<memshare:policy xmlns:memshare='$NS'><memshare:shared-image name='usr' mode='dax'/></memshare:policy>"
MS_DOMAIN_SLOTS=2 MS_DOMAIN_MAXMEM_MIB=1024 MS_GUEST_CMDLINE= \
    domain_xml mig4 $U4 256 256 idle /var/log/libvirt/qemu/mig4.serial "$policy4" > "$top/mig4.xml"

# --- a destination without memshare ----------------------------------------------
rm -f "$top/a/etc-libvirt/hooks/qemu.d/memshare"
vmenv_on a vmenv_restart_libvirtd || bail "libvirtd on host a did not restart"
out=$(migrate b a); rc=$?
[ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
check "no memshare on the destination: migration b -> a succeeds" test "$rc" = 0
check "mig3 runs on host a" runs_on a
check "host b's agent is gone" wait_for 10 bash -c "! kill -0 $pid_b 2>/dev/null"
check "host b's runtime directory is gone" wait_for 10 test ! -e "$(rt b)"
check "no agent on host a (nothing there starts one)" test ! -e "$(rt a)/agent.pid"
V a destroy mig3 >/dev/null

# --- why the destination's hook must act for dax: without it, the
# migration "succeeds" but the destination QEMU, built from libvirt's XML,
# has neither the QMP-attached backend nor the virtio-pmem device, while
# the guest kernel still has the device it saw on the source (observed
# with QEMU 7.2 / libvirt 9.0: QEMU does not fail the migration) -----------
V b create "$top/mig4.xml" >/dev/null || bail "cannot start mig4 on host b"
check "dax on host b: the image is attached" wait_for 60 grep -q "^attached=1" "$(rt4 b)/status"
memdevs() { V "$1" qemu-monitor-command mig4 '{"execute":"query-memory-devices"}' 2>&1; }
check "dax on host b: QEMU has the virtio-pmem device" grep -q '"id":"ms-pmem0"' <<< "$(memdevs b)"
out=$(lvt_pair_migrate b a mig4 2>&1); rc=$?
[ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
echo "# rc $rc; host a's QEMU memory devices after the migration: $(memdevs a)"
check "dax, no hook on the destination: the destination QEMU lacks the pmem device (what the hook adds)" \
    bash -c "[ $rc != 0 ] || ! grep -q '\"id\":\"ms-pmem0\"' <<< '$(memdevs a)'"
V a destroy mig4 >/dev/null 2>&1; V b destroy mig4 >/dev/null 2>&1

done_testing
