#!/usr/bin/env python3
# tests/tracking/check-usedmap.py: an independent reader of the usedmap file
# (docs/usedmap.md), so the test does not trust the C parser it checks.
#   usage: check-usedmap.py FILE PAGE_SIZE TOTAL_BYTES
# Prints the number of set bits; exits 1 (reason on stderr) on any mismatch.
import struct, sys, zlib

path, page_size, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read(64 << 20)

def fail(why):
    print(why, file=sys.stderr)
    sys.exit(1)

if len(data) < 36:
    fail("file too short: %d bytes" % len(data))
magic, ver, psize, n_ext, flags, when = struct.unpack_from("<8sIIIIQ", data, 0)
if magic != b"MSUSEDMP": fail("bad magic %r" % magic)
if ver != 1: fail("version %d" % ver)
if psize != page_size: fail("page size %d, want %d" % (psize, page_size))
if flags != 0: fail("flags %d" % flags)
if not 1 <= n_ext <= 65536: fail("%d extents" % n_ext)
if zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "little"): fail("bad CRC")
off = 32
exts = []
for k in range(n_ext):
    base, pages = struct.unpack_from("<QQ", data, off)
    off += 16
    exts.append((base, pages))
if sum(p for _, p in exts) * psize != total:
    fail("extents cover %d bytes, want %d" % (sum(p for _, p in exts) * psize, total))
for a, b in zip(exts, exts[1:]):
    if a[0] + a[1] * psize > b[0]: fail("extents overlap or out of order")
setbits = 0
for base, pages in exts:
    nbytes = (pages + 7) // 8
    padded = (nbytes + 7) // 8 * 8
    chunk = data[off:off + padded]
    if len(chunk) != padded: fail("truncated bitmap")
    bm = int.from_bytes(chunk, "little")
    if bm >> pages: fail("bits set past the extent's %d pages" % pages)
    setbits += bin(bm).count("1")
    off += padded
if off + 4 != len(data): fail("size %d, layout says %d" % (len(data), off + 4))
print(setbits)
