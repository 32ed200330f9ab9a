/* images/ms-image-disk.h: reading a guest's ext2/3/4 disk as an image
 * builder source, read-only through libext2fs (no mount, no loop device, no
 * privilege beyond reading the file). A disk is a raw file system image or a
 * raw disk with an MBR or GPT partition table (one ext partition is found by
 * itself; several need a partition number). qcow2 and other formats are
 * refused with the qemu-img line that converts them. Everything read from
 * the disk is untrusted: names with '/' or NUL, entries naming reserved
 * inodes, extents outside the file system, sizes no ext4 file can have and
 * directories reached twice are refused with the disk and the path named. */
#pragma once

#include <glib.h>
#include <sys/stat.h>

G_BEGIN_DECLS

typedef struct MsImageDisk MsImageDisk;

/* One piece of a file's data: LEN bytes at byte OFFSET of the file, stored
 * at byte PHYS of the file system (G_MAXUINT64: inline data, read through
 * libext2fs). Unwritten extents and holes are left out. */
typedef struct {
    guint64 offset;
    guint64 len;
    guint64 phys;
} MsImageDiskExtent;

/* Opens DISK read-only. PARTITION 0: the whole disk if it holds an ext file
 * system, else the only ext partition; N >= 1: partition N (MBR 1-4 or GPT
 * entry N, as Linux numbers them). */
MsImageDisk *ms_image_disk_open(const char *disk, guint partition, GError **error);
void ms_image_disk_free(MsImageDisk *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsImageDisk, ms_image_disk_free)

/* "DISK" or "DISK partition N", for messages. */
const char *ms_image_disk_describe(const MsImageDisk *d);

/* The partition opened (0: the whole disk). */
guint ms_image_disk_partition(const MsImageDisk *d);

/* The inode of absolute PATH inside the file system (no symlink is
 * followed; PATH must be a directory). */
gboolean ms_image_disk_resolve(MsImageDisk *d, const char *path, guint32 *ino, GError **error);

/* The entries of directory INO (no "." and ".."): NAMES (char*) and, in the
 * same order, INOS (guint32). WHERE names the directory in messages. */
gboolean ms_image_disk_list(MsImageDisk *d, guint32 ino, const char *where, GPtrArray *names, GArray *inos,
                            GError **error);

/* A struct stat of inode INO as lstat(2) would fill it (st_dev 0, st_ino
 * INO); encrypted inodes and impossible sizes are refused. */
gboolean ms_image_disk_stat(MsImageDisk *d, guint32 ino, struct stat *st, const char *where, GError **error);

/* The target of symbolic link INO (LEN bytes, as its stat said). */
char *ms_image_disk_readlink(MsImageDisk *d, guint32 ino, gsize len, const char *where, GError **error);

/* Extended attributes of INO: NAMES (char*) and VALUES (GBytes*) in the same
 * order, POSIX ACLs in the xattr format the kernel hands out. */
gboolean ms_image_disk_xattrs(MsImageDisk *d, guint32 ino, const char *where, GPtrArray *names,
                              GPtrArray *values, GError **error);

/* The data extents of regular file INO of SIZE bytes, sorted, clamped to
 * SIZE, checked to lie inside the file system and not to overlap. */
GArray *ms_image_disk_extents(MsImageDisk *d, guint32 ino, guint64 size, const char *where, GError **error);

/* Reads LEN bytes of file INO at OFFSET into BUF through its EXTENTS: holes
 * and bytes past the extents read as zeros. */
gboolean ms_image_disk_pread(MsImageDisk *d, guint32 ino, const GArray *extents, guint8 *buf, gsize len,
                             guint64 offset, const char *where, GError **error);

G_END_DECLS
