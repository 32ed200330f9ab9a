#!/bin/bash
# tests/ctl/test-help.sh: every memsharectl command answers -h and --help with
# its own help on stdout and exit 0, and so does `memsharectl help COMMAND`.
# The commands are not listed here: they are read from `memsharectl --help`
# (its "Commands:" section) and, for a command group, from the group's own
# help (lines "  NAME ..." after a usage line ending in "COMMAND ..."), so a
# new command is covered the day it is added. A wrong option still exits 2.
# Usage: test-help.sh MEMSHARECTL   (TAP)
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
ctl=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# No libvirt and no agents: help must never need them.
export LIBVIRT_DEFAULT_URI=test:///nonexistent-memshare-help
export MEMSHARE_RUNTIME_DIR=$tmp/run

# help_ok DESC ARGS...: exit 0, something on stdout, nothing on stderr,
# and the help names the command it is for
help_ok() {
    local desc=$1; shift
    local rc=0
    "$ctl" "$@" > "$tmp/out" 2> "$tmp/err" < /dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
        not_ok "$desc: exit $rc, expected 0"; head -3 "$tmp/err" | sed "s/^/#   /"; return
    fi
    if ! grep -q '[^[:space:]]' "$tmp/out"; then
        not_ok "$desc: nothing on stdout"; return
    fi
    if [ -s "$tmp/err" ]; then
        not_ok "$desc: wrote to stderr"; head -3 "$tmp/err" | sed "s/^/#   /"; return
    fi
    ok "$desc"
}

"$ctl" --help > "$tmp/top" 2>&1
commands=$(sed -n '/^Commands:/,/^$/p' "$tmp/top" | awk 'NR > 1 && /^  [a-z]/ { print $1 }')
check "memsharectl --help lists commands" test -n "$commands"
help_ok "memsharectl --help" --help
help_ok "memsharectl -h" -h
help_ok "memsharectl help" help

for c in $commands; do
    for h in --help -h; do
        help_ok "memsharectl $c $h" "$c" "$h"
    done
    help_ok "memsharectl help $c" help "$c"
    "$ctl" "$c" --help > "$tmp/group" 2>/dev/null
    # a command group: its help lists its own commands
    if grep -q "^Usage: .* $c COMMAND" "$tmp/group"; then
        subs=$(awk '/^  [a-z]/ { print $1 }' "$tmp/group")
        check "memsharectl $c --help lists its commands" test -n "$subs"
        for s in $subs; do
            for h in --help -h; do
                help_ok "memsharectl $c $s $h" "$c" "$s" "$h"
            done
            help_ok "memsharectl help $c $s" help "$c" "$s"
            # the sub-command's help is its own, not the group's list
            "$ctl" "$c" "$s" --help > "$tmp/sub" 2>/dev/null
            check "memsharectl $c $s --help is about '$s'" grep -q "$c $s" "$tmp/sub"
        done
    else
        check "memsharectl $c --help shows its usage" grep -q "memsharectl .*$c" "$tmp/group"
    fi
done

# help is not a way around usage errors
rc=0; "$ctl" usedmap --no-such-option > /dev/null 2>&1 || rc=$?
check "usedmap with an unknown option still exits 2" test "$rc" = 2
rc=0; "$ctl" help no-such-command > /dev/null 2> "$tmp/err" || rc=$?
check "help of an unknown command exits 2" test "$rc" = 2
check "help of an unknown command names it" grep -q "no-such-command" "$tmp/err"

done_testing
