#!/bin/bash
# tests/migrate/test-migrate-estimate.sh: `memsharectl migrate-estimate`
# against the fixture runtime dir tests/domstats/run (no libvirt, no QEMU):
# the page classes turned into QEMU 7.2's precopy figures, worked out by hand
# here from the fixture's [tracking] bytes; refusals (no agent, a stale one,
# no tracking, classes that do not add up) with the reason and exit status.
# The check against what QEMU really sent is in test-migrate-policy.sh.
# Usage: test-migrate-estimate.sh MEMSHARECTL DOMSTATS-SRCDIR   (TAP)
set -u
ctl=$1 src=$2
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/run" "$tmp/run"
for f in "$tmp"/run/domains/*/agent.pid; do echo $$ > "$f"; done
est() { MEMSHARE_RUNTIME_DIR=$tmp/run "$ctl" migrate-estimate "$@"; }
key() { sed -n "s/^  memshare\.migrate\.$1=//p" "$tmp/out"; }

# web1 (…5d01): total 1 GiB; private 320 MiB + ksm 60 MiB + swapped 4 MiB =
# 98304 pages in full; zero 128 MiB + unpopulated 512 MiB + freed 0 = 163840
# markers; 98304 * (4096 + 8) + 163840 * (8 + 1) bytes on the wire
est web1 > "$tmp/out" 2> "$tmp/err"
check "web1: exit 0" [ $? = 0 ]
check "normal-pages = private + ksm + swapped" [ "$(key normal-pages)" = 98304 ]
check "zero-pages = zero + unpopulated + freed" [ "$(key zero-pages)" = 163840 ]
check "normal-bytes" [ "$(key normal-bytes)" = 402653184 ]
check "transfer-bytes: a 4104-byte record per used page, 9 per other" [ "$(key transfer-bytes)" = 404914176 ]
check "guest-ram, ksm, swapped as published" \
    [ "$(key guest-ram)/$(key ksm)/$(key swapped)" = 1073741824/62914560/4194304 ]
check "sample-age printed" grep -q '^  memshare.migrate.sample-age=[0-9]' "$tmp/out"
est 6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01 > "$tmp/out2" 2>&1
check "by UUID: the same figures" diff <(grep -v sample-age "$tmp/out") <(grep -v sample-age "$tmp/out2")

est no-such-domain > "$tmp/out" 2> "$tmp/err"
check "unknown domain: exit 4" [ $? = 4 ]
check "unknown domain: names it" grep -q "no memshare agent for domain 'no-such-domain'" "$tmp/err"

# a dead agent's scan says nothing about the guest now
echo 999999999 > "$tmp/run/domains/6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01/agent.pid"
est 6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01 > "$tmp/out" 2> "$tmp/err"
check "stale agent: exit 1" [ $? = 1 ]
check "stale agent: says so" grep -q "agent is not running" "$tmp/err"
echo $$ > "$tmp/run/domains/6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01/agent.pid"

# classes that do not partition guest RAM
st=$tmp/run/domains/6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01/status
sed -i 's/^private=335544320$/private=335548416/' "$st"
est web1 > "$tmp/out" 2> "$tmp/err"
check "classes not adding up: exit 1" [ $? = 1 ]
check "classes not adding up: says which" grep -q "do not add up to total=1073741824" "$tmp/err"

# no tracking group: tracking off
sed -i '/^\[tracking\]/,/^$/d' "$st"
est web1 > "$tmp/out" 2> "$tmp/err"
check "tracking off: exit 1" [ $? = 1 ]
check "tracking off: names the policy element" grep -q "used-pages='on'" "$tmp/err"

est > /dev/null 2>&1
check "no DOMAIN: usage, exit 2" [ $? = 2 ]
est --help > "$tmp/out"
check "--help: exit 0, names the QEMU counterparts" grep -q "ram duplicate" "$tmp/out"
done_testing
