#!/bin/bash
# tests/hook/probe-agent.sh: stands in for memshare-agent in the hook's own
# tests, to observe HOW the hook launches an agent (arguments, session,
# inherited descriptors, environment). The real agent is exercised by the
# qemu and libvirt suites.
out=$PROBE_OUT
[ -n "$out" ] || out=$(dirname "$0")/probe.out
# Read everything about this process before any redirection below
# changes its descriptors.
argv="$*"
# The glob's own directory descriptor is closed again once the list is
# made, so "-e" drops it; no command substitution may run before this
# (each opens a pipe in this shell).
entries=(/proc/$$/fd/*)
fds=
for f in "${entries[@]}"; do [ -e "$f" ] && fds+="${f##*/} "; done
fds=$(tr ' ' '\n' <<< "$fds" | sort -n | tr '\n' ' ' | sed 's/^ *//')
stdin=$(readlink /proc/$$/fd/0)
stdout=$(readlink /proc/$$/fd/1)
uuid=
while [ $# -gt 0 ]; do
    case "$1" in --uuid) uuid=$2; shift 2 ;; *) shift ;; esac
done
{
    echo "argv: $argv"
    echo "sid: $(ps -o sid= -p $$ | tr -d ' ') pid: $$"
    echo "fds: $fds"
    echo "stdin: $stdin"
    echo "stdout: $stdout"
    echo "env: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
} > "$out.tmp"
mv "$out.tmp" "$out"
