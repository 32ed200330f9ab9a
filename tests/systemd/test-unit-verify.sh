#!/bin/bash
# tests/systemd/test-unit-verify.sh: `systemd-analyze verify` accepts the
# agent's template unit (instantiated with a UUID) and finds no problem.
# systemd-analyze exits 0 even on warnings, so any output is a failure; a
# deliberately broken copy proves the check can fail.
set -euo pipefail
unit_in=$1
agent=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
uuid=c7a5fdbd-edaf-9455-926a-d65c16db1809
sed "s#@libexecdir@/memshare-agent#$agent#" "$unit_in" > "$tmp/memshare-agent@.service"
cp "$tmp/memshare-agent@.service" "$tmp/memshare-agent@$uuid.service"
echo "1..3"
out=$(cd "$tmp" && systemd-analyze verify --man=no "memshare-agent@$uuid.service" 2>&1) || true
if [ -z "$out" ]; then echo "ok 1 - unit verifies cleanly"; else echo "not ok 1 - $out"; exit 1; fi
sed 's/^NoNewPrivileges=yes/NoNewPrivileges=maybe/' "$tmp/memshare-agent@.service" > "$tmp/broken@$uuid.service"
out=$(cd "$tmp" && systemd-analyze verify --man=no "broken@$uuid.service" 2>&1) || true
if [ -n "$out" ]; then echo "ok 2 - a broken copy is reported"; else echo "not ok 2 - verify did not notice a bad value"; exit 1; fi
score=$(cd "$tmp" && systemd-analyze security --offline=yes "memshare-agent@$uuid.service" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk "BEGIN{exit !($score < 3.0)}"; then
    echo "ok 3 - exposure level $score < 3.0"
else
    echo "not ok 3 - exposure level '$score' (want < 3.0)"; exit 1
fi
