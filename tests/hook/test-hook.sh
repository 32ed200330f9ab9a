#!/bin/bash
# tests/hook/test-hook.sh: the hook binary as libvirt calls it (arguments,
# domain XML on stdin), without libvirtd: domains without a policy are left
# alone; an invalid policy stops `prepare` unless on-error='ignore'; at
# `started` the agent is launched detached (own session, no inherited
# descriptors, libvirt's pipes closed) and the hook returns at once; at
# `release` the agent is stopped and the runtime directory removed; the
# KSM-group rule of sharing groups refuses a second group's merging domain.
#   usage: test-hook.sh HOOK
set -euo pipefail
source "$(dirname "$0")/../lib/tap.sh"
hook=$1
ctl=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/ms-hook.XXXXXX)
trap 'pkill -f "$tmp/probe" 2>/dev/null || true; rm -rf "$tmp"' EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/memshare.conf
uuid=0f4a5c1e-9d7b-4d1a-8a62-3c2b1f0e9d88

# The probe agent sleeps so the hook's return proves it does not wait.
cat > "$tmp/probe" <<PROBE
#!/bin/bash
export PROBE_OUT=$tmp/probe.out
mkdir -p $tmp/run/domains/$uuid
echo \$\$ > $tmp/run/domains/$uuid/agent.pid
bash $here/probe-agent.sh "\$@"
exec sleep 300
PROBE
chmod +x "$tmp/probe"
# Trailing comments as README's example writes them: the hook must read
# the value without its comment (a launcher 'detached   # ...' is refused)
cat > "$MEMSHARE_CONFIG" <<CONF
[agent]
path=$tmp/probe          # which agent the hook starts
launcher=detached        # never a unit in this test
log-dir=$tmp/log
CONF

domain() { # domain NAME POLICY-ATTRS POLICY-BODY
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>$uuid</uuid>
  <memory unit='KiB'>1048576</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices><memballoon model='virtio'><alias name='balloon0'/></memballoon></devices>
  ${3:+<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0' $2>$3</memshare:policy></metadata>}
</domain>
XML
}

# 1. no policy: nothing at all happens
domain plain "" "" > "$tmp/plain.xml"
for op in prepare started stopped release; do
    out=$("$hook" plain $op begin - < "$tmp/plain.xml" 2>&1); rc=$?
    check "no policy, $op: exit 0, silent" test "$rc" = 0 -a -z "$out"
done
check "no policy: no runtime directory created" test ! -e "$tmp/run"
check "no policy: no agent launched" test ! -e "$tmp/probe.out"

# 1b. what libvirt runs for every domain loads nothing but libc: the
# dynamic loading of glib/libxml2/libsystemd is what a plain domain would pay
# (an ASan/UBSan build adds the sanitizer runtimes and what they need)
libs=$(ldd "$hook" | awk '{print $1}' | grep -Ev '^(linux-vdso|/lib64/ld-linux|libc\.so)' || true)
grep -q libasan <<< "$libs" && libs=$(grep -Ev '^lib(asan|ubsan|stdc\+\+|m|gcc_s)\.so' <<< "$libs" || true)
check "hook front end links only libc (got: ${libs:-nothing else})" test -z "$libs"
check "the full hook sits next to it" test -x "$(dirname "$(readlink -f "$hook")")/memshare-hook-full"

# 2. invalid policy refuses prepare with a message naming domain and element
domain web1 "" "<memshare:balloon mode='ksm-share' floor='2GiB'/>" > "$tmp/bad.xml"
set +e; out=$("$hook" web1 prepare begin - < "$tmp/bad.xml" 2>&1); rc=$?; set -e
check "invalid policy: prepare exits 1" test "$rc" = 1
check "invalid policy: message names domain and element" \
    grep -q "domain 'web1'.*<balloon floor='2GiB'>" <<< "$out"
diag "$out"

# 3. on-error='ignore': prepare passes, started launches nothing
domain web1 "on-error='ignore'" "<memshare:balloon mode='ksm-share' floor='2GiB'/>" > "$tmp/ign.xml"
set +e; out=$("$hook" web1 prepare begin - < "$tmp/ign.xml" 2>&1); rc=$?; set -e
check "on-error=ignore: prepare exits 0" test "$rc" = 0
check "on-error=ignore: says it starts without memshare" grep -q "without memshare" <<< "$out"
"$hook" web1 started begin - < "$tmp/ign.xml" 2>/dev/null
sleep 0.3
check "on-error=ignore: no agent launched" test ! -e "$tmp/probe.out"

# 4. valid policy: started launches the agent detached and returns at once
domain web2 "" "<memshare:tracking used-pages='on'/>" > "$tmp/good.xml"
check "valid policy: prepare exits 0" "$hook" web2 prepare begin - < "$tmp/good.xml"
# libvirt reads the hook's stdout/stderr until EOF: run the hook with pipes
# and require EOF while the (sleeping) agent still runs.
start=$(date +%s%N)
"$hook" web2 started begin - < "$tmp/good.xml" 2>&1 | cat > "$tmp/started.out"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "# started hook returned, pipes closed, after $elapsed_ms ms"
check "started: hook's pipes reach EOF while the agent lives" wait_for 5 test -s "$tmp/probe.out"
check "started: hook printed nothing" test ! -s "$tmp/started.out"
check "agent got --uuid and --name" grep -q -- "--uuid $uuid --name web2 --connect qemu:///system" "$tmp/probe.out"
agent_pid=$(cat "$tmp/run/domains/$uuid/agent.pid")
sid=$(sed -n 's/^sid: \([0-9]*\).*/\1/p' "$tmp/probe.out")
check "agent runs in its own session" test "$sid" != "$(ps -o sid= -p $$ | tr -d ' ')"
check "agent inherited only stdin/stdout/stderr (+ its own)" grep -Eq "^fds: 0 1 2 (255 )?$" "$tmp/probe.out"
check "agent stdin is /dev/null" grep -q "^stdin: /dev/null" "$tmp/probe.out"
check "agent stdout goes to its log file" grep -q "^stdout: $tmp/log/$uuid.log" "$tmp/probe.out"
check "agent environment is clean (no MEMSHARE_CONFIG leak)" bash -c "! grep -q MEMSHARE_CONFIG '$tmp/probe.out'"

# 5. reconnect with a live agent: no second agent
rm -f "$tmp/probe.out"
"$hook" web2 reconnect begin - < "$tmp/good.xml"
sleep 0.3
check "reconnect with a live agent launches nothing" test ! -e "$tmp/probe.out"

# 6. stopped + release end the agent and remove the runtime directory
"$hook" web2 stopped end - < "$tmp/good.xml"
"$hook" web2 release end - < "$tmp/good.xml"
check "release: agent gone" wait_for 3 bash -c "! kill -0 $agent_pid"
check "release: runtime directory removed" test ! -e "$tmp/run/domains/$uuid"

# 7. reconnect with the agent gone: relaunched
"$hook" web2 reconnect begin - < "$tmp/good.xml"
check "reconnect without an agent relaunches it" wait_for 5 test -s "$tmp/probe.out"
"$hook" web2 release end - < "$tmp/good.xml"

# 8. hostile input: a UUID that is a path, oversized stdin
sed "s#<uuid>$uuid</uuid>#<uuid>../../../etc</uuid>#" "$tmp/good.xml" > "$tmp/evil.xml"
set +e; "$hook" evil prepare begin - < "$tmp/evil.xml" >/dev/null 2>&1; rc=$?; set -e
check "a UUID that is not a UUID is refused at prepare" test "$rc" = 1
check "and nothing is created from it" test ! -e "$tmp/etc" -a ! -e "$tmp/run/etc"
head -c $((11 * 1024 * 1024)) /dev/zero | tr '\0' 'x' > "$tmp/huge.xml"
set +e; "$hook" huge prepare begin - < "$tmp/huge.xml" >/dev/null 2>&1; rc=$?; set -e
check "oversized domain XML does not block a start" test "$rc" = 0

# 9. an image mounted at /usr must have been built with --usr: prepare
# warns (into libvirt's log) for an unmarked one but lets the domain start
if [ -n "$ctl" ]; then
    export MEMSHARE_IMAGE_STORE=$tmp/store
    printf '[images]\nstore=%s\n' "$tmp/store" >> "$MEMSHARE_CONFIG"
    mkdir -p "$tmp/usr/bin" "$tmp/usr/lib" "$tmp/opt"
    echo x > "$tmp/usr/bin/sh"; echo x > "$tmp/opt/tool"
    "$ctl" image build --usr --from "$tmp/usr" --name usr-ok >/dev/null 2>&1 || bail "build usr-ok"
    "$ctl" image build --from "$tmp/opt" --name tools >/dev/null 2>&1 || bail "build tools"
    for img in usr-ok tools; do
        domain web3 "" "<memshare:shared-image name='$img' mount='/usr' mode='blk'/>" > "$tmp/img-$img.xml"
        set +e; out=$("$hook" web3 prepare begin - < "$tmp/img-$img.xml" 2>&1); rc=$?; set -e
        diag "$img: $out"
        check "image '$img' at /usr: prepare exits 0" test "$rc" = 0
        if [ "$img" = tools ]; then
            check "unmarked image at /usr: prepare warns naming it" grep -q "warning:.*tools" <<< "$out"
        else
            check "--usr image at /usr: no warning" bash -c '! grep -q warning <<< "$1"' _ "$out"
        fi
        "$hook" web3 release end - < "$tmp/img-$img.xml"
    done
fi

# 10. an incoming migration: the XML's <currentMemory> is the balloon's size
# on the source (320 MiB here); the base the destination agent must keep is
# the source agent's carried <balloon base=> (384 MiB), recorded at migrate
# and kept by prepare
mig_xml() { # CURRENT_KIB BASE_BYTES
    domain mig1 "" "<memshare:balloon mode='ksm-share'/>" |
        sed "s#<currentMemory unit='KiB'>1048576</currentMemory>#<currentMemory unit='KiB'>$1</currentMemory>#;
             s#</metadata>#<s:stats xmlns:s='https://memshare.dev/xmlns/stats/1.0' time='1764680000'><s:balloon base='$2'/></s:stats></metadata>#"
}
mig_xml 327680 402653184 > "$tmp/mig.xml"
rt=$tmp/run/domains/$uuid
"$hook" mig1 migrate begin - < "$tmp/mig.xml" >/dev/null 2>&1
"$hook" mig1 prepare begin - < "$tmp/mig.xml" >/dev/null 2>&1
check "incoming migration: boot-memory keeps the source's base, not the ballooned <currentMemory>" \
    grep -q '^current-memory=393216$' "$rt/boot-memory"
"$hook" mig1 release end - < "$tmp/mig.xml"
"$hook" mig1 prepare begin - < "$tmp/mig.xml" >/dev/null 2>&1
check "a plain start records <currentMemory> (no migration record left by release)" \
    grep -q '^current-memory=327680$' "$rt/boot-memory"
"$hook" mig1 release end - < "$tmp/mig.xml"
mig_xml 327680 99999999999999 > "$tmp/mig-bad.xml"
out=$("$hook" mig1 migrate begin - < "$tmp/mig-bad.xml" 2>&1)
"$hook" mig1 prepare begin - < "$tmp/mig-bad.xml" >/dev/null 2>&1
check "a carried base above <memory> is refused by name and <currentMemory> used" \
    bash -c "grep -q 'carried balloon base' <<< \"\$1\" && grep -q '^current-memory=327680$' '$rt/boot-memory'" _ "$out"
"$hook" mig1 release end - < "$tmp/mig-bad.xml"

# 10b. <migration missing-images='fetch'/>: at `migrate` the destination's
# hook fetches an image its store lacks from the peers memshare.conf names
# (the peer here: a second store, reached through an --rsh-style wrapper)
if [ -n "$ctl" ]; then
    peer=$tmp/peer-store
    mkdir -p "$tmp/pt/bin"; echo peer > "$tmp/pt/bin/sh"
    MEMSHARE_IMAGE_STORE=$peer "$ctl" image build --from "$tmp/pt" --name fetched >/dev/null 2>&1 || bail "peer image"
    psha=$(sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p' "$peer/names/fetched.json")
    printf '#!/bin/bash\nshift 2\nMEMSHARE_IMAGE_STORE=%q exec %q "$@"\n' "$peer" "$ctl" > "$tmp/peer-rsh"
    chmod +x "$tmp/peer-rsh"
    fetch_xml() { domain mig2 "" "<memshare:shared-image name='$1' mode='blk'/>$2"; }
    migin() { set +e; out=$("$hook" mig2 migrate begin - < "$1" 2>&1); rc=$?; set -e; "$hook" mig2 release end - < "$1"; }
    fetch_xml fetched "<memshare:migration missing-images='fetch'/>" > "$tmp/fetch.xml"
    fetch_xml fetched "" > "$tmp/nofetch.xml"
    fetch_xml nowhere "<memshare:migration missing-images='fetch'/>" > "$tmp/nowhere.xml"
    migin "$tmp/fetch.xml"; diag "$out"
    check "fetch wanted, no [migration] image-peers: refused" test "$rc" = 1
    check "  the message names the image, this host and the missing setting" \
        grep -q "migration refused: <shared-image name='fetched'>: not in the image store .* of host '$(hostname)'.*; <migration missing-images='fetch'>: no \[migration\] image-peers in" <<< "$out"
    cp "$MEMSHARE_CONFIG" "$tmp/conf.before-peers"
    printf '[migration]\nimage-peers=-oProxyCommand=x\n' >> "$MEMSHARE_CONFIG"
    migin "$tmp/fetch.xml"; diag "$out"
    check "a peer starting with '-': refused, naming the config line" \
        bash -c "test $rc = 1 && grep -q 'image-peers: .*not a host name' <<< \"\$1\"" _ "$out"
    cp "$tmp/conf.before-peers" "$MEMSHARE_CONFIG"
    printf '[migration]\nimage-peers=hosta\nimage-rsh=%s\n' "$tmp/peer-rsh" >> "$MEMSHARE_CONFIG"
    migin "$tmp/nofetch.xml"
    check "peers configured, but the policy does not allow fetching: refused, nothing fetched" \
        bash -c "test $rc = 1 && test ! -e '$MEMSHARE_IMAGE_STORE/names/fetched.json'"
    migin "$tmp/fetch.xml"; diag "$out"
    check "fetch from the peer: migrate exits 0" test "$rc" = 0
    check "  the hook says what it fetched and from where" \
        grep -q "image 'fetched' sha256 $psha fetched from hosta for the incoming migration" <<< "$out"
    check "  the image is in this host's store and verifies" bash -c "'$ctl' image verify fetched >/dev/null"
    migin "$tmp/nowhere.xml"; diag "$out"
    check "an image no peer has: refused, naming it, the peer and the peer's words" \
        bash -c "test $rc = 1 && grep -q \"<shared-image name='nowhere'>: not in the image store.*fetch from hosta: image 'nowhere': the sending end sent nothing (hosta said: .*no such image\" <<< \"\$1\"" _ "$out"
    # a dax image: the digest asked for is the one the source's carried
    # placement names (what the guest maps), not whatever the peer has
    MEMSHARE_IMAGE_STORE=$peer "$ctl" image build --from "$tmp/pt" --name dimg >/dev/null 2>&1 || bail "peer dax image"
    dsha=$(sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p' "$peer/names/dimg.json")
    dsize=$(stat -c %s "$peer/blobs/sha256-$dsha.img")
    dax_xml() { # SHA256 the placement names
        domain mig2 "" "<memshare:shared-image name='dimg' mode='dax'/><memshare:migration missing-images='fetch'/>" |
            sed "s#<memory unit='KiB'>#<maxMemory slots='4' unit='KiB'>4194304</maxMemory><memory unit='KiB'>#;
                 s#</metadata>#<m:migration xmlns:m='https://memshare.dev/xmlns/migration/1.0'><m:dax name='dimg' sha256='$1' size='$dsize' index='0' bus='pci.1' addr='0' memaddr='4294967296'/></m:migration></metadata>#"
    }
    other=$(printf 'a%.0s' $(seq 64))
    dax_xml "$other" > "$tmp/dax-other.xml"
    dax_xml "$dsha" > "$tmp/dax.xml"
    migin "$tmp/dax-other.xml"; diag "$out"
    check "dax: the peer has another build than the placement names: refused, nothing fetched" \
        bash -c "test $rc = 1 && grep -q \"image 'dimg' is sha256 $dsha in .*, not the sha256 $other asked for\" <<< \"\$1\" && test ! -e '$MEMSHARE_IMAGE_STORE/names/dimg.json'" _ "$out"
    migin "$tmp/dax.xml"
    check "dax: the build the placement names is fetched, and migrate exits 0" \
        bash -c "test $rc = 0 && grep -q \"image 'dimg' sha256 $dsha fetched from hosta\" <<< \"\$1\"" _ "$out"
    check "  the incoming QEMU gets this host's copy of it as its pmem backend" \
        grep -q "memory-backend-file.*$MEMSHARE_IMAGE_STORE/.*sha256-$dsha.img" <<< "$out"
    cp "$tmp/conf.before-peers" "$MEMSHARE_CONFIG"
fi

# 11. sharing groups: the KSM-group rule at prepare (docs/security.md)
sdom() { # sdom NAME UUID POLICY-BODY [EXTRA-DOMAIN-XML [POLICY-ATTRS]]
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>$2</uuid>
  <metadata>${6:-}<memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0' ${5:-}>$3</memshare:policy></metadata>
  <memory unit='KiB'>1048576</memory>
  ${4:-}
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
</domain>
XML
}
ua=00000000-0000-4000-8000-00000000000a ub=00000000-0000-4000-8000-00000000000b
uc=00000000-0000-4000-8000-00000000000c ud=00000000-0000-4000-8000-00000000000d
nosh="<memoryBacking><nosharepages/></memoryBacking>"
prep() { set +e; out=$("$hook" "$1" prepare begin - < "$2" 2>&1); rc=$?; set -e; }
sdom ga $ua "<memshare:sharing group='tenant-a'/>" > "$tmp/ga.xml"
sdom gb $ub "<memshare:sharing group='tenant-b'/>" > "$tmp/gb.xml"
sdom gb $ub "<memshare:sharing group='tenant-b'/>" "$nosh" > "$tmp/gb-nosh.xml"
sdom gb $ub "<memshare:sharing group='tenant-b'/>" "" "on-error='ignore'" > "$tmp/gb-ign.xml"
sdom gc $uc "<memshare:sharing group='tenant-a'/>" > "$tmp/gc.xml"
sdom gd $ud "<memshare:tracking used-pages='on'/>" > "$tmp/gd.xml"
prep ga "$tmp/ga.xml"
check "first group: prepare exits 0" test "$rc" = 0 -a -z "$out"
check "its record: group tenant-a, merging" \
    grep -qz "group=tenant-a.*merging=true" "$tmp/run/domains/$ua/sharing"
prep gb "$tmp/gb.xml"
check "another group without nosharepages: prepare exits 1" test "$rc" = 1
want="memshare: domain 'gb': sharing group 'tenant-b' cannot run with KSM merging: domain 'ga' of group 'tenant-a' is already merging (add <memoryBacking><nosharepages/></memoryBacking> to domain 'gb', or start it when no domain of group 'tenant-a' merges; or put them in one group: the same <memshare:sharing group=...> in both policies, or [sharing] default-group=host in memshare.conf on a host whose guests are all one tenant's)"
check "the refusal names the domain, its group and the group merging" test "$out" = "$want"
diag "$out"
check "a refused domain leaves no runtime directory" test ! -e "$tmp/run/domains/$ub"
prep gb "$tmp/gb-ign.xml"
check "on-error='ignore' does not lift the rule" test "$rc" = 1
prep gb "$tmp/gb-nosh.xml"
check "another group with nosharepages: prepare exits 0" test "$rc" = 0
check "its record: not merging" grep -q "merging=false" "$tmp/run/domains/$ub/sharing"
prep gc "$tmp/gc.xml"
check "the merging group's second domain: prepare exits 0" test "$rc" = 0
prep gd "$tmp/gd.xml"
check "default group (the domain alone) while tenant-a merges: refused" \
    grep -q "domain 'gd': sharing group 'domain:$ud' cannot run with KSM merging: domain 'ga' of group 'tenant-a'" <<< "$out"
"$hook" ga release end - < "$tmp/ga.xml"
"$hook" gc release end - < "$tmp/gc.xml"
prep gd "$tmp/gd.xml"
check "once tenant-a released: the default-group domain starts" test "$rc" = 0
"$hook" gd release end - < "$tmp/gd.xml"
"$hook" gb release end - < "$tmp/gb-nosh.xml"
# Nova: with default-group=nova-project the owner's project is the group
cp "$MEMSHARE_CONFIG" "$tmp/conf.saved"
printf '[sharing]\ndefault-group=nova-project   # OpenStack host\n' >> "$MEMSHARE_CONFIG"
nova() { echo "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'><nova:owner><nova:project uuid='$1'>p</nova:project></nova:owner></nova:instance>"; }
sdom na $ua "<memshare:tracking used-pages='on'/>" "" "" "$(nova 4b2f0c6e1d9a4c7b8e5f3a2d1c0b9e8f)" > "$tmp/na.xml"
sdom nb $ub "<memshare:tracking used-pages='on'/>" "" "" "$(nova 4b2f0c6e1d9a4c7b8e5f3a2d1c0b9e8f)" > "$tmp/nb.xml"
sdom nc $uc "<memshare:tracking used-pages='on'/>" "" "" "$(nova 99990000111122223333444455556666)" > "$tmp/nc.xml"
sdom nd $ud "<memshare:tracking used-pages='on'/>" "" "" "$(nova ../../etc)" > "$tmp/nd.xml"
prep na "$tmp/na.xml"
check "nova-project: the project is the group" grep -q "group=nova:4b2f0c6e1d9a4c7b8e5f3a2d1c0b9e8f" "$tmp/run/domains/$ua/sharing"
prep nb "$tmp/nb.xml"
check "nova-project: a second instance of the project starts" test "$rc" = 0
prep nc "$tmp/nc.xml"
check "nova-project: another project's instance is refused" \
    grep -q "domain 'nc': sharing group 'nova:99990000111122223333444455556666' cannot run" <<< "$out"
prep nd "$tmp/nd.xml"
check "nova-project: a hostile project id is refused by name" \
    test "$out" = "memshare: domain 'nd': <nova:project uuid='../../etc'>: not a project id (A-Z a-z 0-9 and '-' only)"
"$hook" na release end - < "$tmp/na.xml"
"$hook" nb release end - < "$tmp/nb.xml"
printf '[sharing]\ndefault-group=tenant\n' >> "$tmp/conf.saved"
cp "$tmp/conf.saved" "$MEMSHARE_CONFIG"
prep na "$tmp/na.xml"
check "a bad [sharing] default-group refuses, naming the file" \
    test "$out" = "memshare: $MEMSHARE_CONFIG: [sharing] default-group: 'tenant' is not a default group (expected domain, host or nova-project)"
done_testing
