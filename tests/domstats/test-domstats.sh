#!/bin/bash
# tests/domstats/test-domstats.sh: `memsharectl domstats` against the fixture
# runtime dir tests/domstats/run (several domains, a stale one, two corrupt
# ones): each case's stdout, stderr and exit status against golden files in
# tests/domstats/golden/ (MS_REGENERATE=1 rewrites them); the Prometheus
# output through promtool, the stats element through the RelaxNG schema.
# Usage: test-domstats.sh MEMSHARECTL SRCDIR RNG [PROMTOOL]   (TAP)
set -uo pipefail
ctl=$1 src=$2 rng=$3 promtool=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/run" "$tmp/run"
# a live pid makes an agent "running": ours
for f in "$tmp"/run/domains/*/agent.pid; do echo $$ > "$f"; done
n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

ms() { MEMSHARE_RUNTIME_DIR=$tmp/run LC_ALL=C.UTF-8 "$ctl" domstats "$@"; }

# golden NAME RC ARGS...: stdout -> NAME.out, stderr -> NAME.err (run dir
# replaced by @RUN@), exit status must be RC
golden() {
    local name=$1 want=$2
    shift 2
    ms "$@" > "$tmp/out" 2> "$tmp/err.raw"
    local rc=$?
    sed "s|$tmp/run|@RUN@|g" "$tmp/err.raw" > "$tmp/err"
    if [ -n "${MS_REGENERATE:-}" ]; then
        cp "$tmp/out" "$src/golden/$name.out"
        if [ -s "$tmp/err" ]; then cp "$tmp/err" "$src/golden/$name.err"; else rm -f "$src/golden/$name.err"; fi
    fi
    local experr=/dev/null
    [ -e "$src/golden/$name.err" ] && experr=$src/golden/$name.err
    if [ "$rc" != "$want" ]; then
        nok "$name: exit status $rc, expected $want"; cat "$tmp/err" | sed 's/^/# /'
    elif ! diff -u "$src/golden/$name.out" "$tmp/out" > "$tmp/diff"; then
        nok "$name: stdout differs from golden/$name.out"; sed 's/^/# /' "$tmp/diff"
    elif ! diff -u "$experr" "$tmp/err" > "$tmp/diff"; then
        nok "$name: stderr differs"; sed 's/^/# /' "$tmp/diff"
    else
        ok "$name (domstats $*)"
    fi
}

golden all 1
golden list-active 1 --list-active
golden raw 0 --raw web1
golden raw-balloon 0 --raw --balloon web1 old1
golden groups 0 --balloon --ksm web1 6B1C4E2A-0F3D-4C51-9A7E-1D2F3B4C5D02
golden used 0 --state --used web1
# sharing trust groups: web1 has a group and its balloon's group figures, old1 none
golden sharing 0 --sharing web1 old1
golden images 1 --images
golden agent 0 --agent 'db "two" ü' old1
golden not-found 4 nosuch web1
golden corrupt-named 1 broken 6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d04 old1
golden usage 2 --bogus
golden usage-exclusive 2 --prometheus --raw
golden prometheus 1 --prometheus
golden prometheus-active 1 --prometheus --list-active
golden xml 0 --xml web1 old1 'db "two" ü'

# An oversized status (a runaway writer) is refused by name, not read.
big=$tmp/run/domains/6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d09
mkdir -p "$big"
{ printf '[agent]\ndomain=huge\n'; head -c 300000 /dev/zero | tr '\0' '#'; echo; } > "$big/status"
ms > "$tmp/out" 2> "$tmp/err"
rc=$?
if [ $rc = 1 ] && grep -q "5d09/status' is larger than the 262144 bytes allowed" "$tmp/err" &&
    grep -q "^Domain: 'web1'" "$tmp/out"; then
    ok "oversized status: named, others still printed, exit 1"
else
    nok "oversized status (rc $rc)"; sed 's/^/# /' "$tmp/err"
fi
rm -rf "$big"

# Prometheus: a real parser accepts the golden output and refuses a broken one.
if [ -n "$promtool" ]; then
    if "$promtool" check metrics < "$src/golden/prometheus.out" > "$tmp/p" 2>&1; then
        ok "promtool check metrics accepts domstats --prometheus"
    else
        nok "promtool check metrics"; sed 's/^/# /' "$tmp/p"
    fi
    # same family twice: promtool must refuse it, or the check above proves nothing
    { cat "$src/golden/prometheus.out"; grep -A2 '^# HELP memshare_agent_up ' "$src/golden/prometheus.out"; } > "$tmp/bad.prom"
    if "$promtool" check metrics < "$tmp/bad.prom" > /dev/null 2>&1; then
        nok "promtool refuses a repeated metric family"
    else
        ok "promtool refuses a repeated metric family"
    fi
else
    skip "promtool check metrics" "promtool not installed (Debian: prometheus)"
    skip "promtool refuses a repeated metric family" "promtool not installed"
fi

# The stats element of every valid fixture domain against the schema.
for d in web1 old1 'db "two" ü'; do
    ms --xml "$d" > "$tmp/s.xml"
    if xmllint --noout --relaxng "$rng" "$tmp/s.xml" > "$tmp/x" 2>&1; then
        ok "stats element of '$d' validates against memshare-stats.rng"
    else
        nok "stats element of '$d'"; sed 's/^/# /' "$tmp/x"
    fi
done
# hand-written cases: *-valid.xml must pass, *-invalid.xml must fail
for f in "$src"/xml/*.xml; do
    b=$(basename "$f")
    if xmllint --noout --relaxng "$rng" "$f" > /dev/null 2>&1; then r=pass; else r=fail; fi
    case $b in
    *-invalid.xml) [ $r = fail ] && ok "$b is refused by the schema" || nok "$b is accepted by the schema" ;;
    *) [ $r = pass ] && ok "$b validates" || nok "$b does not validate" ;;
    esac
done

echo "1..$n"
exit $fail
