#!/bin/bash
# tests/policy/test-ctl-policy-libvirt.sh: memsharectl policy get/set/remove/
# validate against a real, isolated libvirtd (tests/lib/vmenv.sh): set
# validates against the domain before writing (a policy that does not fit
# the domain leaves the metadata alone, exit 3), writes with key 'memshare'
# as virsh does (what virsh shows, memsharectl reads back, and the reverse),
# foreign elements and unprefixed children are refused (issue 17), --config
# and --live are kept apart, lookups by name and UUID, exit 4 for unknown
# domains and missing policies.
#   env: MS_CTL (memsharectl), MS_GUEST_KERNEL, MS_GUEST_INITRD (for the live part)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/libvirt-test.sh"
ex=$here/../../policies/examples

# memsharectl against libvirt: no hook, no agent
LVT_HOOK=none lvt_setup ms-ctl-policy-lv
lvt_start
U=7c2d8e63-4c1f-4d66-9a7f-3b0e1d5f6a01

# ctl ARGS...: memsharectl inside the namespace; sets rc, out, err
ctl() {
    vmenv_exec "$MS_CTL" -c qemu:///system "$@" >"$dir/out" 2>"$dir/err"
    rc=$?
    out=$(cat "$dir/out")
    err=$(cat "$dir/err")
    # diagnostics for the TAP log
    [ -z "$err" ] || sed 's/^/# memsharectl: /' "$dir/err"
}

domain_xml ms-p1 $U 512 512 idle "$dir/ms-p1.serial" > "$dir/ms-p1.xml"
vmenv_exec virsh -q -c qemu:///system define "$dir/ms-p1.xml" >/dev/null || bail "cannot define ms-p1"

ctl policy get ms-p1
check "get without a policy: exit 4" test "$rc" = 4
check "... says so" grep -q "memsharectl: ms-p1: no memshare policy" "$dir/err"
ctl policy validate ms-p1
check "validate DOMAIN without policy: exit 0" test "$rc" = 0
check "... no memshare policy" grep -q "no memshare policy" "$dir/out"

ctl policy set ms-p1 "$ex/tracking-only.xml" --config
check "set --config of a fitting policy: exit 0" test "$rc" = 0
ctl policy get ms-p1 --config
check "get --config: exit 0" test "$rc" = 0
echo "$out" > "$dir/got.xml"
check "get shows the policy" grep -q "used-pages=.on." "$dir/got.xml"
dumpxml_has() { V dumpxml --inactive ms-p1 | grep -q "$1"; }
virsh_meta_has() { V metadata ms-p1 "$NS" --config | grep -q "$1"; }
check "virsh dumpxml has it under key memshare in our namespace" dumpxml_has "<memshare:policy xmlns:memshare=.$NS.>"
check "virsh metadata shows what memsharectl set" virsh_meta_has "working-set=.on."
ctl policy validate "$dir/got.xml"
check "get's output is itself a valid policy file" test "$rc" = 0
ctl policy validate ms-p1
check "validate DOMAIN with the policy: exit 0" test "$rc" = 0 -a "$out" = "ms-p1 (config): valid"
ctl policy get $U --config
check "lookup by UUID" test "$rc" = 0

# A policy that does not fit this domain (512MiB) is refused before writing.
cat > "$dir/bad.xml" <<XML
<ms:policy xmlns:ms='$NS'><ms:balloon mode='ksm-share' floor='2GiB'/></ms:policy>
XML
ctl policy set ms-p1 "$dir/bad.xml" --config
check "set of a policy that does not fit the domain: exit 3" test "$rc" = 3
check "... with the cross-check message" \
    grep -qF "memsharectl: ms-p1 (config): domain 'ms-p1': <balloon floor='2GiB'>: larger than <memory> (512MiB)" "$dir/err"
ctl policy get ms-p1 --config
check "... and the old policy is still there" grep -q "used-pages=.on." "$dir/out"

# Images are checked against the store (the isolated, empty one).
ctl policy set ms-p1 "$ex/web-usr.xml" --config
check "set with an image missing from the store: exit 3" test "$rc" = 3
check "... no such image in the store" grep -q "no such image in the store" "$dir/err"
ctl policy set ms-p1 "$ex/web-usr.xml" --config --no-image-check
check "set --no-image-check (dax falls back to blk): exit 0" test "$rc" = 0

# An element of another namespace is refused (issue 17), not stored.
cat > "$dir/ext.xml" <<XML
<policy xmlns='$NS' xmlns:x='urn:example:ext'>
  <stats period='7s'/>
  <x:future><x:knob>1</x:knob></x:future>
</policy>
XML
ctl policy set ms-p1 "$dir/ext.xml" --config
check "set of a policy with a foreign element: exit 3" test "$rc" = 3
check "... naming the element and the reason" \
    grep -qF "memsharectl: $dir/ext.xml: <x:future>: in namespace 'urn:example:ext', not the memshare namespace" "$dir/err"
ctl policy get ms-p1 --config
check "... and the old policy is still there" grep -q "debian12-usr" "$dir/out"
# The default namespace form, without the extension.
sed -i '/x:future/d' "$dir/ext.xml"
ctl policy set ms-p1 "$dir/ext.xml" --config
check "set of a policy in the default namespace form: exit 0" test "$rc" = 0
ctl policy get ms-p1 --config
check "the policy survives" grep -q "period=.7s." "$dir/out"

# virsh's own way, read back by memsharectl
V metadata ms-p1 "$NS" --key memshare --set "<policy><stats period='9s'/></policy>" --config >/dev/null
ctl policy get ms-p1 --config
check "a policy set by virsh metadata is read back" grep -q "period=.9s." "$dir/out"

# virsh define keeps a child without the prefix in no namespace (libvirt
# namespaces only what `virsh metadata --set` hands it): memsharectl, like
# the hook, refuses it instead of reading a policy without its balloon.
domain_xml ms-p2 7c2d8e63-4c1f-4d66-9a7f-3b0e1d5f6a02 512 512 idle "$dir/ms-p2.serial" \
    "<memshare:policy xmlns:memshare='$NS'><balloon mode='ksm-share'/></memshare:policy>" > "$dir/ms-p2.xml"
V define "$dir/ms-p2.xml" >/dev/null
ctl policy validate ms-p2
check "validate DOMAIN with an unprefixed child: exit 3" test "$rc" = 3
check "... <balloon>: not in the memshare namespace" \
    grep -qF "domain 'ms-p2': <balloon>: not in the memshare namespace (write <memshare:balloon>)" "$dir/err"
V undefine ms-p2 >/dev/null 2>&1

ctl policy remove ms-p1 --config
check "remove --config: exit 0" test "$rc" = 0
ctl policy get ms-p1 --config
check "get after remove: exit 4" test "$rc" = 4

ctl policy set no-such-domain "$ex/tracking-only.xml"
check "set on an unknown domain: exit 4" test "$rc" = 4

# <migration free-page-hint='on'/>: the device property goes into the
# persistent definition with the policy (virtio-balloon free-page-hint via
# <qemu:override>, and the iothread QEMU requires for it)
cat > "$dir/fph.xml" <<XML
<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on'/><memshare:migration free-page-hint='on'/></memshare:policy>
XML
ctl policy set ms-p1 "$dir/fph.xml" --config
check "set --config with free-page-hint: exit 0" test "$rc" = 0
check "... says the definition changed" grep -q "^ms-p1: free-page-hint on in the persistent definition" "$dir/out"
V dumpxml --inactive ms-p1 > "$dir/fph-def.xml"
check "... the definition has the override of balloon0" \
    grep -q "<qemu:property name=.free-page-hint. type=.bool. value=.true./>" "$dir/fph-def.xml"
check "... with an iothread" grep -q "<iothreads>1</iothreads>" "$dir/fph-def.xml"
check "... and the policy" grep -q "free-page-hint=.on." "$dir/fph-def.xml"
ctl policy validate ms-p1
check "the policy parser sees the override (validate: exit 0)" test "$rc" = 0
ctl policy set ms-p1 "$dir/fph.xml" --config
check "set again: exit 0, the definition left alone" \
    sh -c "test $rc = 0 && ! grep -q 'free-page-hint on' '$dir/out'"

# --- live: a running domain -----------------------------------------------------
if [ -n "${MS_GUEST_KERNEL:-}" ] && [ -f "$MS_GUEST_KERNEL" ] && V start ms-p1 >/dev/null 2>"$dir/start.err"; then
    # the QEMU libvirt started has the property (qom of the balloon device)
    fph=$(V qemu-monitor-command ms-p1 '{"execute":"qom-get","arguments":{"path":"/machine/peripheral/balloon0","property":"free-page-hint"}}' 2>&1)
    check "the started QEMU's balloon has free-page-hint on" grep -q '"return": *true' <<< "$fph"
    echo "# qom-get free-page-hint: $fph"
    ctl policy set ms-p1 "$ex/tracking-only.xml"
    check "set on a running domain (current = live): exit 0" test "$rc" = 0
    ctl policy get ms-p1 --live
    check "get --live shows it" test "$rc" = 0
    ctl policy get ms-p1 --config
    check "... and --config keeps its own" sh -c "test $rc = 0 && grep -q 'free-page-hint=.on.' '$dir/out' && ! grep -q 'working-set' '$dir/out'"
    ctl policy validate ms-p1
    check "validate DOMAIN checks the live XML too" grep -qx "ms-p1 (live): valid" "$dir/out"
    ctl policy set ms-p1 "$dir/bad.xml" --live
    check "set --live of a policy that does not fit: exit 3" test "$rc" = 3
    check "... names the live definition" grep -q "ms-p1 (live): domain 'ms-p1'" "$dir/err"
    ctl policy remove ms-p1 --live
    check "remove --live: exit 0" test "$rc" = 0
    ctl policy get ms-p1 --live
    check "get --live after remove: exit 4" test "$rc" = 4
    V destroy ms-p1 >/dev/null 2>&1
else
    echo "# live part skipped: $(cat "$dir/start.err" 2>/dev/null || echo 'no guest kernel')"
fi
# a policy without the hint takes back what the hint's policy wrote
ctl policy get ms-p1 --config
check "the config still carries the free-page-hint policy" grep -q "free-page-hint=.on." "$dir/out"
ctl policy set ms-p1 "$ex/tracking-only.xml" --config
check "set --config without free-page-hint: exit 0" test "$rc" = 0
check "... says it was removed" grep -q "^ms-p1: free-page-hint off in the persistent definition" "$dir/out"
V dumpxml --inactive ms-p1 > "$dir/fph-def.xml"
check "... no override left" sh -c "! grep -q 'qemu:override' '$dir/fph-def.xml'"
check "... the new policy is stored" grep -q "used-pages=.on." "$dir/fph-def.xml"
V undefine ms-p1 >/dev/null 2>&1
done_testing
