#!/bin/bash
# tests/policy/test-ctl-policy.sh: memsharectl policy's offline paths, run on
# the parser's case files: `validate` of standalone policies and of whole
# domain XMLs (exit 0 valid, 3 invalid with "memsharectl: FILE: <the
# parser's message>" on stderr), `validate --print` and `defaults` (canonical
# XML that validates against the schema), usage errors (2), unreadable
# files (1), unknown domains (4, through the test:///default driver).
#   usage: test-ctl-policy.sh MEMSHARECTL   env: MS_TEST_SRCDIR=tests/policy
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
CTL=${1:?usage: $0 MEMSHARECTL}
SRC=${MS_TEST_SRCDIR:-$here}
RNG=$SRC/../../xml-schemas/memshare-policy.rng
cases=$SRC/cases
tmp=$(mktemp -d /tmp/ms-ctl-policy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# No libvirtd is needed: test:///default is libvirt's in-process driver.
export LIBVIRT_DEFAULT_URI=test:///default

xmllint_q() { xmllint "$@" 2>/dev/null; }
# run_ctl ARGS...: sets rc, out, err
run_ctl() {
    "$CTL" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
}

# --- every case file through validate ----------------------------------------
for expect in "$cases"/*.expect; do
    name=$(basename "$expect" .expect)
    xml=$cases/$name.xml
    kind=$(grep -v '^#' "$expect" | head -1)
    msg=$(sed -n 's/^message=//p' "$expect" | sed "s|@STORE@|$SRC/store|g")
    opts=(--store "$SRC/store")
    grep -q '^flags=images' "$expect" || opts=(--no-image-check)
    run_ctl policy validate "${opts[@]}" "$xml"
    case $kind in
    valid)
        check "$name: valid, exit 0" test "$rc" = 0 -a "$out" = "$xml: valid" -a -z "$err" ;;
    none)
        check "$name: no policy, exit 0" test "$rc" = 0 -a "$out" = "$xml: no memshare policy" ;;
    invalid)
        first=$(head -1 "$tmp/err")
        # a root that is neither <domain> nor <policy> is judged as a policy
        [ "$name" = dom-root-not-domain ] && msg="<vm>: not a memshare policy (expected <policy xmlns='https://memshare.dev/xmlns/policy/1.0'>)"
        if [ "$rc" = 3 ] && [ "$first" = "memsharectl: $xml: $msg" ]; then
            ok "$name: invalid, exit 3, message"
        else
            not_ok "$name: invalid, exit 3, message (rc=$rc, stderr: $first)"
        fi ;;
    esac
done

# --- on-error='ignore' is mentioned ------------------------------------------
run_ctl policy validate --no-image-check "$cases/dom-on-error-ignore-cross.xml"
check "on-error='ignore' is reported" grep -q "on-error='ignore'" "$tmp/err"

# --- image check defaults on for domains, uses --store ----------------------
run_ctl policy validate --store "$tmp/empty-store" "$cases/dom-images-store-ok.xml"
check "domain XML: images are checked by default (exit 3)" test "$rc" = 3
check "... and the message names the store" grep -q "no such image in the store ($tmp/empty-store)" "$tmp/err"
run_ctl policy validate --store "$SRC/store" "$cases/dom-images-store-ok.xml"
check "domain XML: image found with --store (exit 0)" test "$rc" = 0

# --- canonical output -------------------------------------------------------
run_ctl policy defaults
check "defaults: exit 0" test "$rc" = 0
echo "$out" > "$tmp/defaults.xml"
check "defaults: validates against the schema" xmllint_q --noout --relaxng "$RNG" "$tmp/defaults.xml"
check "defaults: spells out max-step" grep -q "max-step='64MiB'" "$tmp/defaults.xml"
run_ctl policy validate "$tmp/defaults.xml"
check "defaults: validate accepts them" test "$rc" = 0
for ex in "$SRC"/../../policies/examples/*.xml; do
    run_ctl policy validate --print "$ex"
    echo "$out" > "$tmp/canon.xml"
    check "example $(basename "$ex"): --print is schema-valid" \
        xmllint_q --noout --relaxng "$RNG" "$tmp/canon.xml"
    run_ctl policy validate "$tmp/canon.xml"
    check "example $(basename "$ex"): canonical form re-validates" test "$rc" = 0
done

# --- exit codes ---------------------------------------------------------------
run_ctl policy
check "no subcommand: exit 2" test "$rc" = 2
run_ctl policy frobnicate
check "unknown subcommand: exit 2" test "$rc" = 2
run_ctl policy validate
check "validate without argument: exit 2" test "$rc" = 2
run_ctl policy validate --bogus "$cases/pol-defaults.xml"
check "unknown option: exit 2" test "$rc" = 2
run_ctl policy get dom --live --config
check "get --live --config: exit 2" test "$rc" = 2
run_ctl policy remove dom --current --live
check "remove --current --live: exit 2" test "$rc" = 2
run_ctl policy set onlyone
check "set without FILE: exit 2" test "$rc" = 2
run_ctl policy defaults extra
check "defaults with an argument: exit 2" test "$rc" = 2
run_ctl policy validate "$tmp/does-not-exist.xml"
check "unreadable file: exit 1" test "$rc" = 1
check "... message names the file" grep -q "^memsharectl: $tmp/does-not-exist.xml: " "$tmp/err"
head -c 4194400 /dev/zero | tr '\0' ' ' > "$tmp/big.xml"
run_ctl policy validate "$tmp/big.xml"
check "file over 4 MiB: exit 3" test "$rc" = 3
run_ctl policy validate no-such-domain
check "unknown domain: exit 4" test "$rc" = 4
check "... memsharectl: NAME: no such domain" grep -qx "memsharectl: no-such-domain: no such domain" "$tmp/err"
run_ctl policy get no-such-domain
check "get of an unknown domain: exit 4" test "$rc" = 4
# test:///default has one running domain, 'test', without our metadata
run_ctl policy validate test
check "validate DOMAIN without policy: exit 0" test "$rc" = 0 -a -n "$out"
run_ctl policy get test
check "get of a domain without policy: exit 4" test "$rc" = 4
check "... no memshare policy" grep -q "no memshare policy" "$tmp/err"
run_ctl policy set test "$cases/pol-image-traversal.xml"
check "set of an invalid policy: exit 3 before touching libvirt" test "$rc" = 3
run_ctl policy set no-such-domain "$cases/pol-defaults.xml"
check "set on an unknown domain: exit 4" test "$rc" = 4

done_testing
