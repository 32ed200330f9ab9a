#!/bin/bash
# bench/hook/bench-virsh-start.sh: what the memshare hook adds to
# `virsh start`, measured in one run with a private libvirtd: phases with
# the hook installed and phases without it alternate (libvirtd restarted
# between them, so drift of the machine hits both sides alike); in each
# phase the same domains are started (--paused: the guest CPU would only add
# TCG noise) and destroyed. A third kind of phase installs /bin/true as the
# hook: what libvirtd's own hook machinery costs (it forks and feeds the
# domain XML for every phase), apart from what memshare's hook does.
# Prints medians and the added time.
#   usage: bench-virsh-start.sh BUILDDIR [PHASES] [STARTS_PER_PHASE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd); phases=${2:-4}; starts=${3:-8}
source "$here/../../tests/lib/libvirt-test.sh"
lvt_guest_env "$build"
# each phase installs its own hook (or none) before libvirtd restarts
MS_HOOK=$build/hooks/memshare-hook MS_AGENT=$build/qmp-plugin/memshare-agent lvt_setup ms-bench
domain_xml plain 11111111-2222-4333-8444-555555555501 256 256 idle "$dir/p.serial" > "$dir/plain.xml"
domain_xml pol 11111111-2222-4333-8444-555555555502 256 256 idle "$dir/q.serial" \
    "<memshare:policy xmlns:memshare='$NS'><memshare:stats period='5s'/></memshare:policy>" > "$dir/pol.xml"
results=$dir/results.txt
: > "$results"
for ph in $(seq "$phases"); do
    for mode in nohook truehook hook; do
        vmenv_exec rm -f /etc/libvirt/hooks/qemu.d/memshare
        [ $mode = hook ] && vmenv_install_hook "$build/hooks/memshare-hook"
        [ $mode = truehook ] && vmenv_install_hook /bin/true
        vmenv_restart_libvirtd
        for d in plain pol; do vmenv_exec virsh -q define "$dir/$d.xml" >/dev/null; done
        for i in $(seq "$starts"); do
            for d in plain pol; do
                t0=$(date +%s%N)
                vmenv_exec virsh -q start --paused $d >/dev/null
                echo "$mode $d $(( ($(date +%s%N) - t0) / 1000 ))" >> "$results"
                vmenv_exec virsh -q destroy $d >/dev/null
            done
        done
    done
done
python3 - "$results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for mode in ("nohook", "truehook", "hook"):
    for d in ("plain", "pol"):
        v = [int(r[2]) / 1000 for r in rows if r[0] == mode and r[1] == d]
        med[(mode, d)] = statistics.median(v)
print("| domain | no hook (median ms) | /bin/true as hook | memshare hook | added by any hook (true - none) | added by memshare (memshare - true) | memshare / none |")
print("|---|---|---|---|---|---|---|")
for d, label in (("plain", "no memshare policy"), ("pol", "memshare policy (agent launched)")):
    a, t, b = med[("nohook", d)], med[("truehook", d)], med[("hook", d)]
    print(f"| {label} | {a:.1f} | {t:.1f} | {b:.1f} | {t-a:+.1f} | {b-t:+.1f} | {b/a:.3f} |")
print(f"n = {len(rows)//6} starts per cell")
PY
