#!/bin/sh
# tests/guest/debian/density.sh: installed in the Debian test guest as
# /etc/ms-test/density.sh and run by ms-density.service, only when the
# kernel command line has ms.bench=density (bench/density-host): the other
# tests boot the same disk without a network or a service.
#   ms.ws=MIB   the web server's working set: MIB of files (16 KiB each,
#               random content, made at boot, so unique to this guest) under
#               /var/www/html/ws/, served by nginx (nginx-light, Debian's)
# Then every 2 s it copies /proc/stat, /proc/vmstat and /proc/meminfo to
# /var/www/html/ms/ so that the host's load generator reads the guest's
# CPU steal and its OOM kills over the same HTTP path it loads.
# Console markers (ttyS0): MS-DENSITY-READY FILES | MS-DENSITY-FAILED WHY
exec > /dev/ttyS0 2>&1
ws=$(sed -n 's/.*ms\.ws=\([0-9]*\).*/\1/p' /proc/cmdline)
exec python3 - "${ws:-64}" <<'PY'
import os, shutil, sys, time
ws_mib = int(sys.argv[1])
root = "/var/www/html"
try:
    os.makedirs(root + "/ws", exist_ok=True)
    os.makedirs(root + "/ms", exist_ok=True)
    n = ws_mib * 64
    for i in range(n):
        with open(f"{root}/ws/f{i}.bin", "wb") as f:
            f.write(os.urandom(16384))
    os.sync()
    with open(root + "/ms/ready", "w") as f:
        f.write(f"{n}\n")
except OSError as e:
    print(f"MS-DENSITY-FAILED {e}", flush=True)
    sys.exit(1)
print(f"MS-DENSITY-READY {n}", flush=True)
while True:
    for name in ("stat", "vmstat", "meminfo"):
        try:
            shutil.copyfile("/proc/" + name, f"{root}/ms/{name}.tmp")
            os.replace(f"{root}/ms/{name}.tmp", f"{root}/ms/{name}")
        except OSError:
            pass
    time.sleep(2)
PY
