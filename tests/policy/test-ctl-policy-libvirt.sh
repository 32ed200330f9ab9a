#!/bin/bash
# tests/policy/test-ctl-policy-libvirt.sh: memsharectl policy get/set/remove/
# validate against a real, isolated libvirtd (tests/lib/vmenv.sh): set
# validates against the domain before writing (a policy that does not fit
# the domain leaves the metadata alone, exit 3), writes with key 'memshare'
# as virsh does (what virsh shows, memsharectl reads back, and the reverse),
# foreign extensions survive, --config and --live are kept apart, lookups by
# name and UUID, exit 4 for unknown domains and missing policies.
#   env: MS_CTL (memsharectl), MS_GUEST_KERNEL, MS_GUEST_INITRD (for the live part)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
source "$here/../lib/vmenv.sh"
source "$here/../lib/domain.sh"
ex=$here/../../policies/examples

dir=$(mktemp -d /tmp/ms-ctl-policy-lv.XXXXXX)
vmenv_setup "$dir" || bail "cannot set up the isolated libvirtd"
vmenv_trap
vmenv_start_libvirtd || bail "libvirtd did not start"
V() { vmenv_exec virsh -q -c qemu:///system "$@"; }
NS=https://memshare.dev/xmlns/policy/1.0
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

# Foreign extensions keep their namespace through set/get.
cat > "$dir/ext.xml" <<XML
<policy xmlns='$NS' xmlns:x='urn:example:ext'>
  <stats period='7s'/>
  <x:future><x:knob>1</x:knob></x:future>
</policy>
XML
ctl policy set ms-p1 "$dir/ext.xml" --config
check "set of a policy with an extension (default namespace form): exit 0" test "$rc" = 0
ctl policy get ms-p1 --config
echo "$out" > "$dir/got2.xml"
check "the extension survives in its namespace" grep -q "urn:example:ext" "$dir/got2.xml"
check "the policy survives" grep -q "period=.7s." "$dir/got2.xml"

# virsh's own way, read back by memsharectl
V metadata ms-p1 "$NS" --key memshare --set "<policy><stats period='9s'/></policy>" --config >/dev/null
ctl policy get ms-p1 --config
check "a policy set by virsh metadata is read back" grep -q "period=.9s." "$dir/out"

ctl policy remove ms-p1 --config
check "remove --config: exit 0" test "$rc" = 0
ctl policy get ms-p1 --config
check "get after remove: exit 4" test "$rc" = 4

ctl policy set no-such-domain "$ex/tracking-only.xml"
check "set on an unknown domain: exit 4" test "$rc" = 4

# --- live: a running domain -----------------------------------------------------
if [ -n "${MS_GUEST_KERNEL:-}" ] && [ -f "$MS_GUEST_KERNEL" ] && V start ms-p1 >/dev/null 2>"$dir/start.err"; then
    ctl policy set ms-p1 "$ex/tracking-only.xml"
    check "set on a running domain (current = live): exit 0" test "$rc" = 0
    ctl policy get ms-p1 --live
    check "get --live shows it" test "$rc" = 0
    ctl policy get ms-p1 --config
    check "... and --config does not" test "$rc" = 4
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
V undefine ms-p1 >/dev/null 2>&1
done_testing
