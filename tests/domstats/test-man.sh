#!/bin/bash
# tests/domstats/test-man.sh: every man page in docs/man renders with groff
# -ww (all warnings) and man -l without a single warning, and names itself.
# Usage: test-man.sh DOCS_MAN_DIR   (TAP)
set -uo pipefail
dir=$1
n=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for page in "$dir"/*.[0-9]; do
    b=$(basename "$page")
    name=${b%.*} sec=${b##*.}
    n=$((n + 1))
    LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" > "$tmp/err" 2>&1
    if [ -s "$tmp/err" ]; then
        fail=1; echo "not ok $n - groff -ww $b"; sed 's/^/# /' "$tmp/err"
    else
        echo "ok $n - groff -ww $b: no warning"
    fi
    n=$((n + 1))
    # man checks what groff does not: the NAME line for whatis/apropos
    LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=w -l "$page" > "$tmp/out" 2> "$tmp/err"
    up=$(echo "$name" | tr a-z A-Z)
    if [ -s "$tmp/err" ]; then
        fail=1; echo "not ok $n - man -l $b warns"; sed 's/^/# /' "$tmp/err"
    elif ! grep -q "^$up($sec)" "$tmp/out" || ! grep -q "^NAME" "$tmp/out" ||
        ! grep -A1 "^NAME" "$tmp/out" | grep -q "$name - "; then
        fail=1; echo "not ok $n - man -l $b: no '$up($sec)' header or NAME line"
    else
        echo "ok $n - man -l $b"
    fi
done
[ $n -ge 8 ] || { fail=1; n=$((n + 1)); echo "not ok $n - expected 4 pages in $dir"; }
echo "1..$n"
exit $fail
