#!/usr/bin/env python3
# tests/image/mkpart.py: writes a raw disk with a partition table around
# file system images, the way a libvirt guest's disk looks (no fdisk on the
# test machines). Partitions start at 1 MiB and follow each other, 1 MiB
# aligned.
#   usage: mkpart.py mbr|gpt DISK FS-IMAGE...   (an argument "-": an empty
#   8 MiB partition, e.g. for an EFI system partition)
import struct, sys, uuid, zlib

kind, disk, images = sys.argv[1], sys.argv[2], sys.argv[3:]
MiB = 1 << 20
parts, off = [], MiB
for img in images:
    size = 8 * MiB if img == "-" else -(-len(open(img, "rb").read()) // MiB) * MiB
    parts.append((off, size, img))
    off += size
total = off + MiB   # room for the GPT backup
with open(disk, "wb") as f:
    f.truncate(total)
    for o, size, img in parts:
        if img != "-":
            f.seek(o)
            f.write(open(img, "rb").read())
    mbr = bytearray(512)
    if kind == "mbr":
        for i, (o, size, img) in enumerate(parts):
            mbr[446 + 16 * i:446 + 16 * i + 16] = struct.pack(
                "<B3sB3sII", 0, b"\0\0\0", 0xef if img == "-" else 0x83, b"\0\0\0", o // 512, size // 512)
    else:
        sectors = total // 512
        mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0xee, b"\0\0\0", 1, min(sectors - 1, 0xffffffff))
        linux = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4").bytes_le
        esp = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").bytes_le
        entries = bytearray(128 * 128)
        for i, (o, size, img) in enumerate(parts):
            entries[128 * i:128 * i + 56] = struct.pack(
                "<16s16sQQQ", esp if img == "-" else linux, uuid.uuid4().bytes_le, o // 512, (o + size) // 512 - 1, 0)
        hdr = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, 1, sectors - 1, 34,
                          sectors - 34, uuid.uuid4().bytes_le, 2, 128, 128, zlib.crc32(entries))
        hdr = hdr[:16] + struct.pack("<I", zlib.crc32(hdr)) + hdr[20:]
        f.seek(512)
        f.write(hdr)
        f.seek(1024)
        f.write(entries)
    mbr[510:512] = b"\x55\xaa"
    f.seek(0)
    f.write(mbr)
