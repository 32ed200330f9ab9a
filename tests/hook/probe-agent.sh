#!/bin/bash
# tests/hook/probe-agent.sh: stands in for memshare-agent in the hook's own
# tests, to observe HOW the hook launches an agent (arguments, session,
# inherited descriptors, environment). The real agent is exercised by the
# qemu and libvirt suites.
out=$PROBE_OUT
[ -n "$out" ] || out=$(dirname "$0")/probe.out
uuid=
while [ $# -gt 0 ]; do
    case "$1" in --uuid) uuid=$2; shift 2 ;; *) shift ;; esac
done
{
    echo "argv: $*"
    echo "sid: $(ps -o sid= -p $$ | tr -d ' ') pid: $$"
    echo "fds: $(ls /proc/$$/fd | sort -n | tr '\n' ' ')"
    echo "stdin: $(readlink /proc/$$/fd/0)"
    echo "stdout: $(readlink /proc/$$/fd/1)"
    echo "env: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
} > "$out.tmp"
mv "$out.tmp" "$out"
