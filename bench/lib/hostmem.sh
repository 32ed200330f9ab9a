# bench/lib/hostmem.sh: host memory of TCG guests, as bench/density and
# bench/debian-usr measure it (sourced). Moved here from
# bench/density/run-bench.sh so that both count the same way.
#   HOSTMEM_RAM_MIB     guest RAM size: the QEMU mapping of exactly that size
#                       (anonymous, rw-p) is "ram"
#   HOSTMEM_IMAGE_DIR   mappings of *.img files under this directory are
#                       "image" (counted in the host page cache instead)
# hostmem_measure PID...     "ram tcg other image" PSS in MiB summed over the QEMUs
# hostmem_cache_mib FILE...  host page cache of the files (fincore), MiB
# hostmem_drop_file_cache FILE...  drops those files' page cache only
# hostmem_settle PID...      waits until guest RAM stops moving; prints seconds
#   (HOSTMEM_SETTLE_MIN, default 15 s; HOSTMEM_SETTLE_MAX, default 120 s)

# Drops the host page cache of the given files only (never the whole
# machine's): what a fresh copy or a build left behind is not what the
# guests cost.
hostmem_drop_file_cache() {
    python3 - "$@" <<'PY'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd) if os.access(p, os.W_OK) else None
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
}

# PSS summed over the QEMUs (smaps): ram = the guest RAM mapping, tcg =
# TCG's translated-code buffer (the anonymous executable mapping; KVM hosts
# have none, so it is reported but left out of totals), image = mappings
# of the image files (counted in the page cache instead), other = the rest
# of QEMU (heap, libraries...).
hostmem_measure() {
    python3 - "${HOSTMEM_IMAGE_DIR:?}" "$(( ${HOSTMEM_RAM_MIB:?} * 1024 ))" "$@" <<'PY'
import sys
tmp, ram_kb, pids = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
acc = {"ram": 0, "tcg": 0, "other": 0, "image": 0}
for pid in pids:
    try:
        f = open(f"/proc/{pid}/smaps")
    except OSError:
        continue
    kind, size = "other", 0
    with f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if not parts[0].endswith(":"):      # a mapping header
                perms = parts[1]
                path = parts[5] if len(parts) > 5 else ""
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                size = (hi - lo) // 1024
                if path.startswith(tmp) and path.endswith(".img"):
                    kind = "image"
                elif path == "" and "x" in perms:
                    kind = "tcg"
                elif path == "" and perms == "rw-p" and size == ram_kb:
                    kind = "ram"
                else:
                    kind = "other"
                continue
            if parts[0] == "Pss:":
                acc[kind] += int(parts[1])
print(" ".join(f"{acc[k] / 1024:.1f}" for k in ("ram", "tcg", "other", "image")))
PY
}

hostmem_cache_mib() {
    fincore --bytes --noheadings --output RES "$@" | awk '{s += $1} END {printf "%.1f", s / 1048576}'
}

# Free page reporting works in passes 2 s apart: at least
# HOSTMEM_SETTLE_MIN s, then four polls 3 s apart within 1 MiB of each
# other, at most HOSTMEM_SETTLE_MAX s.
hostmem_settle() {
    local t=0 prev="" stable=0 a min=${HOSTMEM_SETTLE_MIN:-15} max=${HOSTMEM_SETTLE_MAX:-120}
    while [ "$t" -lt "$max" ]; do
        sleep 3; t=$((t + 3))
        a=$(hostmem_measure "$@" | cut -d' ' -f1)
        if [ -n "$prev" ] && awk -v a="$a" -v b="$prev" 'BEGIN { d = a - b; exit !(d < 1 && d > -1) }'; then
            stable=$((stable + 1))
            [ "$stable" -ge 3 ] && [ "$t" -ge "$min" ] && break
        else
            stable=0
        fi
        prev=$a
    done
    echo "$t"
}
