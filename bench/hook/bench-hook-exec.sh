#!/bin/bash
# bench/hook/bench-hook-exec.sh: what the hook costs per libvirt call, run
# side by side in one process tree so ratios are meaningful on a busy
# machine: /bin/true (the cost of any exec), the hook on a domain WITHOUT a
# policy (every other domain on the host pays this), and the hook at
# `prepare` on a domain WITH a policy (parse + validate).
#   usage: bench-hook-exec.sh HOOK [ROUNDS]
set -euo pipefail
hook=$1
rounds=${2:-300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/none.conf
gen() {
    cat <<XML
<domain type='qemu'><name>b1</name><uuid>0f4a5c1e-9d7b-4d1a-8a62-3c2b1f0e9d88</uuid>
<memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>1048576</currentMemory>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
<devices>$(for i in $(seq 40); do echo "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/d$i.qcow2'/><target dev='vd$i' bus='virtio'/></disk>"; done)
<memballoon model='virtio'><alias name='balloon0'/></memballoon></devices>
$1
</domain>
XML
}
gen "" > "$tmp/plain.xml"
gen "<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'><memshare:balloon mode='ksm-share' division='weighted' weight='2'/><memshare:tracking used-pages='on'/></memshare:policy></metadata>" > "$tmp/policy.xml"

python3 - "$hook" "$rounds" "$tmp" <<'PY'
import subprocess, sys, time, statistics
hook, rounds, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cases = {
    "/bin/true (exec baseline)": (["/bin/true"], f"{tmp}/plain.xml"),
    "hook, domain without policy": ([hook, "b1", "prepare", "begin", "-"], f"{tmp}/plain.xml"),
    "hook prepare, domain with policy": ([hook, "b1", "prepare", "begin", "-"], f"{tmp}/policy.xml"),
}
res = {k: [] for k in cases}
for r in range(rounds):
    for k, (argv, xml) in cases.items():   # interleaved: same conditions
        with open(xml, "rb") as f:
            t = time.perf_counter_ns()
            p = subprocess.run(argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            res[k].append((time.perf_counter_ns() - t) / 1e6)
        if p.returncode != 0:
            sys.exit(f"{k}: exit {p.returncode}: {p.stderr.decode()}")
base = statistics.median(res["/bin/true (exec baseline)"])
print(f"| case | median ms | p90 ms | vs /bin/true |")
print(f"|---|---|---|---|")
for k, v in res.items():
    v.sort()
    med = statistics.median(v)
    print(f"| {k} | {med:.3f} | {v[int(len(v)*0.9)]:.3f} | {med/base:.2f}x |")
PY
