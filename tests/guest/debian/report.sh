#!/bin/sh
# tests/guest/debian/report.sh: installed in the Debian test guest as
# /etc/ms-test/report.sh (on the root disk, not under /usr) and run by
# ms-report.service once the boot is queued. Prints the markers the tests
# and the benchmark read from the serial console (ttyS0):
#   MS-DEBIAN-READY STATE      systemctl is-system-running --wait (running|degraded)
#   MS-USR SOURCE FSTYPE OPTS  findmnt /usr
#   MS-USR-WRITE ok|refused: ERROR   a write under /usr
#   MS-PYTHON OUT, MS-JQ OUT   packaged programs run from /usr
#   MS-FAILED-UNITS LIST       systemctl --failed
#   MS-USR-CACHE KIB           guest page cache of the files under /usr (fincore)
#   MS-DEBIAN-DONE
# ttyS0 is ours alone: the guest has no serial getty (build-debian.sh).
state=$(systemctl is-system-running --wait 2>/dev/null)
exec > /dev/ttyS0 2>&1
echo "MS-DEBIAN-READY ${state:-unknown}"
echo "MS-USR $(findmnt -n -o SOURCE,FSTYPE,OPTIONS /usr 2>&1 | tr -s ' ')"
if err=$(touch /usr/ms-write-test 2>&1); then
    echo "MS-USR-WRITE ok"
    rm -f /usr/ms-write-test
else
    echo "MS-USR-WRITE refused: $err"
fi
echo "MS-PYTHON $(python3 -c 'import sys, json, hashlib, sqlite3, email, http.client, decimal; print(json.dumps({"python": sys.version.split()[0], "sha": hashlib.sha256(b"memshare").hexdigest()[:12]}))' 2>&1)"
echo "MS-JQ $(echo '{"a":[1,2,3]}' | jq -c '{sum: (.a | add)}' 2>&1)"
echo "MS-FAILED-UNITS $(systemctl --failed --no-legend --plain 2>/dev/null | awk '{print $1}' | tr '\n' ' ')"
# what /usr costs inside the guest: its files' pages in the guest page
# cache (0 with DAX: reads go to the host's copy)
kib=$(find /usr -xdev -type f -print0 2>/dev/null | xargs -0 fincore --bytes --noheadings --output RES 2>/dev/null |
      awk '{s += $1} END {printf "%d", s / 1024}')
echo "MS-USR-CACHE ${kib:-0}"
echo "MS-DEBIAN-DONE"
