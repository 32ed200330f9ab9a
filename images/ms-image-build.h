/* images/ms-image-build.h: the reproducible ext4 image builder. It turns a
 * source tree into an ext4 file system image with libext2fs directly (no
 * mke2fs process): 4 KiB blocks (DAX needs block size = page size), no
 * journal, extents, sized to fit the tree and rounded up to 2 MiB (virtio-pmem
 * maps hot-plugged memory in 2 MiB units). The same tree gives the same bytes:
 * UUID and hash seed come from a sha256 of the tree listing, entries are added
 * in byte-sorted order, every timestamp is a fixed value. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MS_IMAGE_BUILDER_VERSION "memshare-image-build 1"
#define MS_IMAGE_BLOCK_SIZE 4096
/* Image sizes are multiples of this (virtio-pmem granularity). */
#define MS_IMAGE_SIZE_ALIGN (2 * 1024 * 1024)
/* Longest relative path (bytes) the builder accepts, and deepest nesting. */
#define MS_IMAGE_PATH_MAX 4095
#define MS_IMAGE_DEPTH_MAX 512
/* ext4's file name limit (same as the host's NAME_MAX). */
#define MS_IMAGE_NAME_MAX 255
/* ext4 volume label field. */
#define MS_IMAGE_LABEL_MAX 16

typedef struct {
    /* Volume label (at most 16 bytes); NULL: none. */
    const char *label;
    /* Refuse trees whose image would be larger than this (bytes); 0: no limit. */
    guint64 max_size;
    /* Only these paths (relative to the source, their parent directories
     * are kept); NULL or empty: the whole tree. */
    const char *const *paths;
    /* Timestamp given to every inode and to the superblock's time fields.
     * 0: $SOURCE_DATE_EPOCH if set, else 1 (libext2fs reads 0 as "now"). */
    gint64 epoch;
    /* TRUE: keep source mtimes older than epoch (SOURCE_DATE_EPOCH clamp);
     * FALSE: every timestamp is epoch. */
    gboolean clamp_mtime;
    /* Longest relative path accepted; 0: MS_IMAGE_PATH_MAX. */
    gsize path_max;
    /* Non-NULL: the source is an absolute path inside the ext2/3/4 file
     * system of this raw disk (or disk image), read through libext2fs
     * (ms-image-disk.h), not a directory. The same tree gives the same
     * image either way. */
    const char *disk;
    /* With disk: the partition (1-based); 0: the whole disk, or its only
     * ext partition. */
    guint partition;
    /* TRUE: the tree must look like a /usr (ms_image_check_usr). */
    gboolean usr;
} MsImageBuildOptions;

typedef struct {
    guint64 size;          /* image bytes */
    guint64 files;         /* inodes taken from the tree (root included) */
    guint64 blocks_used;
    char sha256[65];       /* of the whole image file */
    char uuid[37];         /* file system UUID */
    GPtrArray *warnings;   /* char*: entries skipped (sockets, unreadable xattrs) */
    guint partition;       /* with opts->disk: the partition read (0: the whole disk) */
} MsImageBuildResult;

void ms_image_build_result_clear(MsImageBuildResult *result);

/* Builds the image of SOURCE into PATH (created or truncated, never through
 * a symlink). Bad trees are refused before PATH is touched; a failure while
 * writing removes PATH. The error names the source path and the reason. The caller renames PATH into place: the store writes a temp
 * file in its own directory first, so nobody ever sees half an image. */
gboolean ms_image_build(const char *source, const char *path,
                        const MsImageBuildOptions *opts,
                        MsImageBuildResult *result, GError **error);

/* sha256 (lowercase hex) and size of everything FD holds from offset 0. */
gboolean ms_image_sha256_fd(int fd, char out[65], guint64 *size, const char *what, GError **error);

/* Which of FD's first LEN bytes' pages are in the page cache (mincore
 * vector, *NPAGES entries), or NULL when that cannot be told. */
guint8 *ms_image_residency(int fd, guint64 len, gsize *npages);
/* Drops from the page cache the pages of FD that BEFORE (a residency
 * vector) says were not there: reading a blob leaves the cache as found. */
void ms_image_drop_new_pages(int fd, const guint8 *before, gsize npages);

/* Normalizes one entry of the path list ("./a//b/" -> "a/b"); refuses
 * absolute-looking "..", empty and over-long paths. */
char *ms_image_path_normalize(const char *path, GError **error);

G_END_DECLS
