/* images/ms-image-build.c: the reproducible ext4 image builder (libext2fs).
 * The source is a directory tree, or a path inside a guest's disk
 * (ms-image-disk.c): the same tree gives the same bytes from either.
 *
 * Two passes over the source tree. The first reads the whole listing (names
 * sorted bytewise, lstat, link targets, xattrs), refuses bad trees before any
 * byte is written (names over 255 bytes, paths over the limit, directory
 * loops through bind mounts, trees over --max-size), sizes the file system
 * and hashes the listing into the UUID and the directory hash seed. The
 * second creates the file system with ext2fs_initialize and copies the tree
 * in the same order, so the same tree always yields the same bytes.
 *
 * Pitfalls learnt from e2fsprogs' misc/create_inode.c: ext2fs_link fails
 * with EXT2_ET_DIR_NO_SPACE when a directory block is full (expand, retry);
 * ext2fs_write_new_inode and ext2fs_close stamp "now" unless fs->now is set,
 * and fs->now == 0 means "now", so the smallest epoch is 1 (as Nix does);
 * regular files need an initialised extent header before blocks are mapped;
 * lost+found must exist or e2fsck complains. File data is not written
 * through ext2fs_file_write (one block allocated and written at a time, as
 * mke2fs -d does) but as runs: ext2fs_fallocate a run of blocks, then one
 * io_channel write per physically contiguous piece. Sparse files keep their holes
 * (SEEK_DATA/SEEK_HOLE), and all-zero blocks inside data are not written
 * either, so the image depends on the content, not on how the source file
 * system happens to store it. */
#include "ms-image-build.h"
#include "ms-error.h"
#include "ms-image-disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifdef MS_HAVE_LIBCRYPTO
#include <openssl/evp.h>
#endif

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#define MS_BS MS_IMAGE_BLOCK_SIZE
#define MS_FS_DAX_FL 0x02000000   /* FS_DAX_FL, not in every ext2_fs.h */
#define MS_INODE_SIZE 256
#define MS_COPY_BUF (1024 * 1024)
#define MS_XATTR_LIST_MAX (64 * 1024)
#define MS_XATTR_VALUE_MAX (64 * 1024)
/* Estimates are retried with more room when libext2fs runs out. */
#define MS_BUILD_ATTEMPTS 4

typedef struct {
    char *name;
    guint8 *value;
    gsize len;
} MsXattr;

typedef struct MsNode MsNode;
struct MsNode {
    char *name;            /* NULL for the root */
    struct stat st;
    char *target;          /* symlinks */
    GPtrArray *xattrs;     /* MsXattr*, sorted by name; NULL: none */
    GPtrArray *children;   /* MsNode*, sorted; directories only */
};

typedef struct {
    dev_t dev;
    ino_t ino;
} MsDevIno;

/* A directory of the source: an open fd for a directory tree, an inode
 * number for a disk (MsBuild.disk). */
typedef struct {
    int fd;
    guint32 ino;
} MsSrcDir;

typedef struct {
    const char *source;
    const MsImageBuildOptions *opts;
    gsize path_max;
    guint32 epoch;
    GPtrArray *paths;       /* normalized selection, NULL: everything */
    gboolean *matched;
    GChecksum *listing;
    GPtrArray *warnings;
    GArray *ancestors;      /* MsDevIno of the directories being scanned */
    GHashTable *seen;       /* "dev:ino" of hard-linked inodes, pass 1 */
    guint64 inodes;         /* estimates */
    guint64 blocks;
    guint64 files;
    MsNode *root;
    /* the source is a path inside this disk, not a directory */
    MsImageDisk *disk;
    char *disk_path;        /* that path, absolute, for the disk's messages */
    char *display;          /* "DISK:PATH", what messages call the source */
    GHashTable *disk_dirs;  /* directory inodes seen: a disk can link one twice */

    /* pass 2 */
    ext2_filsys fs;
    GHashTable *links;      /* "dev:ino" -> GUINT_TO_POINTER(ext2 ino) */
    guint8 *buf;
    gboolean no_space;
    guint64 blocks_used;
} MsBuild;

static void
ms_xattr_free(gpointer p)
{
    MsXattr *x = p;
    g_free(x->name);
    g_free(x->value);
    g_free(x);
}

static void
ms_node_free(gpointer p)
{
    MsNode *n = p;
    if (n == NULL)
        return;
    g_free(n->name);
    g_free(n->target);
    if (n->xattrs)
        g_ptr_array_unref(n->xattrs);
    if (n->children)
        g_ptr_array_unref(n->children);
    g_free(n);
}

void
ms_image_build_result_clear(MsImageBuildResult *result)
{
    if (result == NULL)
        return;
    g_clear_pointer(&result->warnings, g_ptr_array_unref);
    memset(result, 0, sizeof(*result));
}

char *
ms_image_path_normalize(const char *path, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);
    g_autoptr(GString) out = g_string_new(NULL);
    for (guint i = 0; parts[i]; i++) {
        if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0)
            continue;
        if (strcmp(parts[i], "..") == 0) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "path '%s': '..' is not allowed (paths are relative to the source)", path);
            return NULL;
        }
        if (strlen(parts[i]) > MS_IMAGE_NAME_MAX) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "path '%s': a name is longer than %d bytes", path, MS_IMAGE_NAME_MAX);
            return NULL;
        }
        if (out->len)
            g_string_append_c(out, '/');
        g_string_append(out, parts[i]);
    }
    if (out->len == 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "path '%s' names the source itself", path);
        return NULL;
    }
    if (out->len > MS_IMAGE_PATH_MAX) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "path '%.64s...' is longer than %d bytes",
                    path, MS_IMAGE_PATH_MAX);
        return NULL;
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

static char *
ms_build_where(MsBuild *b, const char *rel)
{
    return rel && *rel ? g_build_filename(b->source, rel, NULL) : g_strdup(b->source);
}

static gboolean
ms_build_errno(MsBuild *b, const char *rel, const char *what, int e, GError **error)
{
    g_autofree char *where = ms_build_where(b, rel);
    g_set_error(error, MS_ERROR, e == ENOENT ? MS_ERROR_NOT_FOUND : MS_ERROR_FAILED,
                "%s: %s: %s", where, what, g_strerror(e));
    return FALSE;
}

static gboolean
ms_build_invalid(MsBuild *b, const char *rel, const char *why, GError **error)
{
    g_autofree char *where = ms_build_where(b, rel);
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: %s", where, why);
    return FALSE;
}

static gboolean
ms_build_ext2(MsBuild *b, const char *rel, const char *what, errcode_t err, GError **error)
{
    if (err == EXT2_ET_BLOCK_ALLOC_FAIL || err == EXT2_ET_INODE_ALLOC_FAIL ||
        err == EXT2_ET_DIR_NO_SPACE || err == ENOSPC)
        b->no_space = TRUE;
    g_autofree char *where = ms_build_where(b, rel);
    g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s: %s", where, what, error_message(err));
    return FALSE;
}

static void
ms_build_warn(MsBuild *b, const char *rel, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
ms_build_warn(MsBuild *b, const char *rel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *where = ms_build_where(b, rel);
    g_ptr_array_add(b->warnings, g_strdup_printf("%s: %s", where, msg));
}

static char *
ms_devino_key(const struct stat *st)
{
    return g_strdup_printf("%ju:%ju", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino);
}

/* ------------------------------------------------------------------ */
/* pass 1: listing                                                     */

static int
ms_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
ms_xattr_cmp(gconstpointer a, gconstpointer b)
{
    const MsXattr *x = *(MsXattr *const *)a, *y = *(MsXattr *const *)b;
    return strcmp(x->name, y->name);
}

static gboolean
ms_xattr_wanted(const char *name)
{
    return g_str_has_prefix(name, "user.") || g_str_has_prefix(name, "security.") ||
           g_str_has_prefix(name, "trusted.") || strcmp(name, "system.posix_acl_access") == 0 ||
           strcmp(name, "system.posix_acl_default") == 0;
}

/* Where REL is inside the disk, for the disk's messages. */
static char *
ms_disk_where(MsBuild *b, const char *rel)
{
    if (rel == NULL || *rel == '\0')
        return g_strdup(b->disk_path);
    return g_build_filename(b->disk_path, rel, NULL);
}

static void
ms_node_add_xattr(MsNode *node, const char *name, const void *value, gsize len)
{
    MsXattr *x = g_new0(MsXattr, 1);
    x->name = g_strdup(name);
    x->value = g_memdup2(value, len);
    x->len = len;
    if (node->xattrs == NULL)
        node->xattrs = g_ptr_array_new_with_free_func(ms_xattr_free);
    g_ptr_array_add(node->xattrs, x);
}

/* The same selection, warnings and limits as from a directory tree. */
static gboolean
ms_scan_disk_xattrs(MsBuild *b, const char *rel, MsNode *node, GError **error)
{
    g_autofree char *where = ms_disk_where(b, rel);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    if (!ms_image_disk_xattrs(b->disk, node->st.st_ino, where, names, values, error))
        return FALSE;
    gsize list = 0;
    for (guint i = 0; i < names->len; i++)
        list += strlen(g_ptr_array_index(names, i)) + 1;
    if (list > MS_XATTR_LIST_MAX)
        return ms_build_invalid(b, rel, "more than 64 KiB of extended attribute names", error);
    for (guint i = 0; i < names->len; i++) {
        const char *xn = g_ptr_array_index(names, i);
        if (!ms_xattr_wanted(xn)) {
            ms_build_warn(b, rel, "extended attribute '%s' skipped (namespace not copied)", xn);
            continue;
        }
        gsize vl = 0;
        const void *v = g_bytes_get_data(g_ptr_array_index(values, i), &vl);
        if (vl > MS_XATTR_VALUE_MAX) {
            g_autofree char *why = g_strdup_printf("extended attribute '%s' is larger than 64 KiB", xn);
            return ms_build_invalid(b, rel, why, error);
        }
        ms_node_add_xattr(node, xn, v, vl);
    }
    if (node->xattrs)
        g_ptr_array_sort(node->xattrs, ms_xattr_cmp);
    return TRUE;
}

/* Reads the xattrs of DIRFD/NAME without following a final symlink: the
 * /proc/self/fd path works for any depth, where SOURCE/REL could exceed
 * PATH_MAX. */
static gboolean
ms_scan_xattrs(MsBuild *b, MsSrcDir dir, const char *name, const char *rel, MsNode *node, GError **error)
{
    if (b->disk)
        return ms_scan_disk_xattrs(b, rel, node, error);
    int dirfd = dir.fd;
    g_autofree char *p = g_strdup_printf("/proc/self/fd/%d/%s", dirfd, name);
    g_autofree char *list = g_malloc(MS_XATTR_LIST_MAX);
    ssize_t n = llistxattr(p, list, MS_XATTR_LIST_MAX);
    if (n < 0) {
        int e = errno;
        if (e == ENOTSUP || e == ENODATA)
            return TRUE;
        if (e == ERANGE)
            return ms_build_invalid(b, rel, "more than 64 KiB of extended attribute names", error);
        return ms_build_errno(b, rel, "cannot list extended attributes", e, error);
    }
    for (ssize_t off = 0; off < n; off += strlen(list + off) + 1) {
        const char *xn = list + off;
        if (*xn == '\0')
            continue;
        if (!ms_xattr_wanted(xn)) {
            ms_build_warn(b, rel, "extended attribute '%s' skipped (namespace not copied)", xn);
            continue;
        }
        g_autofree guint8 *val = g_malloc(MS_XATTR_VALUE_MAX);
        ssize_t vl = lgetxattr(p, xn, val, MS_XATTR_VALUE_MAX);
        if (vl < 0) {
            int e = errno;
            if (e == ENODATA)
                continue;
            if (e == EPERM || e == EACCES || e == ENOTSUP) {
                ms_build_warn(b, rel, "extended attribute '%s' not readable: %s", xn, g_strerror(e));
                continue;
            }
            if (e == ERANGE) {
                g_autofree char *why = g_strdup_printf("extended attribute '%s' is larger than 64 KiB", xn);
                return ms_build_invalid(b, rel, why, error);
            }
            return ms_build_errno(b, rel, "cannot read extended attribute", e, error);
        }
        ms_node_add_xattr(node, xn, val, vl);
    }
    if (node->xattrs)
        g_ptr_array_sort(node->xattrs, ms_xattr_cmp);
    return TRUE;
}

/* Which part of a directory's children the path list selects. */
typedef enum {
    MS_SEL_ALL,      /* the directory is selected: all of it */
    MS_SEL_PARTIAL,  /* only the way to selected paths */
} MsSel;

/* Returns -1: skip, else the selection for the child at REL. */
static int
ms_select(MsBuild *b, MsSel parent, const char *rel)
{
    if (parent == MS_SEL_ALL)
        return MS_SEL_ALL;
    gsize rl = strlen(rel);
    int r = -1;
    for (guint i = 0; i < b->paths->len; i++) {
        const char *l = g_ptr_array_index(b->paths, i);
        if (strcmp(l, rel) == 0) {
            b->matched[i] = TRUE;
            return MS_SEL_ALL;
        }
        if (strncmp(l, rel, rl) == 0 && l[rl] == '/')
            r = MS_SEL_PARTIAL;
    }
    return r;
}

static void
ms_listing_add(MsBuild *b, const char *rel, const MsNode *n, const char *hardlink_of)
{
    gboolean dev = S_ISCHR(n->st.st_mode) || S_ISBLK(n->st.st_mode);
    gint64 mtime = b->opts->clamp_mtime ? MIN((gint64)n->st.st_mtime, (gint64)b->epoch) : b->epoch;
    g_autoptr(GString) line = g_string_new(rel);
    g_string_append_c(line, '\0');
    g_string_append_printf(line, "%o %u %u %jd %u:%u %" G_GINT64_FORMAT, (unsigned)n->st.st_mode,
                           (unsigned)n->st.st_uid, (unsigned)n->st.st_gid,
                           S_ISREG(n->st.st_mode) ? (intmax_t)n->st.st_size : (intmax_t)0,
                           dev ? major(n->st.st_rdev) : 0, dev ? minor(n->st.st_rdev) : 0, mtime);
    g_checksum_update(b->listing, (const guchar *)line->str, line->len + 1);
    if (n->target)
        g_checksum_update(b->listing, (const guchar *)n->target, strlen(n->target) + 1);
    if (hardlink_of)
        g_checksum_update(b->listing, (const guchar *)hardlink_of, strlen(hardlink_of) + 1);
    if (n->xattrs) {
        for (guint i = 0; i < n->xattrs->len; i++) {
            MsXattr *x = g_ptr_array_index(n->xattrs, i);
            guint64 len = x->len;
            g_checksum_update(b->listing, (const guchar *)x->name, strlen(x->name) + 1);
            g_checksum_update(b->listing, (const guchar *)&len, sizeof(len));
            g_checksum_update(b->listing, x->value, x->len);
        }
    }
}

/* Blocks an xattr set needs outside the inode (256-byte inodes keep about
 * 100 bytes in-inode). */
static guint64
ms_xattr_blocks(const MsNode *n)
{
    if (n->xattrs == NULL)
        return 0;
    gsize sz = 0;
    for (guint i = 0; i < n->xattrs->len; i++) {
        MsXattr *x = g_ptr_array_index(n->xattrs, i);
        sz += 16 + ((strlen(x->name) + 3) & ~3u) + ((x->len + 3) & ~(gsize)3);
    }
    return sz > 80 ? 1 : 0;
}

static gboolean ms_scan_dir(MsBuild *b, MsSrcDir d, MsNode *dir, GString *rel, guint depth, MsSel sel,
                            GError **error);
static gboolean ms_scan_entries(MsBuild *b, MsSrcDir src, GPtrArray *names, GArray *inos, MsNode *dir,
                                GString *rel, guint depth, MsSel sel, GError **error);

/* SEEK_DATA/SEEK_HOLE over a disk file's extents: the first data range at
 * or after OFF ([*DATA, *HOLE)); FALSE when only a hole is left. */
static gboolean
ms_disk_next_data(const GArray *ext, guint64 off, guint64 size, guint64 *data, guint64 *hole)
{
    /* the extents are sorted and do not overlap (ms_image_disk_extents):
     * the first one ending after OFF by bisection, not a scan from the
     * start for every range of a file with a million extents */
    guint lo = 0, hi = ext->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const MsImageDiskExtent *m = &g_array_index(ext, MsImageDiskExtent, mid);
        if (m->offset + m->len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= ext->len)
        return FALSE;
    const MsImageDiskExtent *e = &g_array_index(ext, MsImageDiskExtent, lo);
    guint64 h = e->offset + e->len;
    /* extents closer than one image block (a disk with 1 KiB blocks) are
     * one range: each image block is read and written once */
    for (guint j = lo + 1; j < ext->len; j++) {
        const MsImageDiskExtent *n = &g_array_index(ext, MsImageDiskExtent, j);
        if (n->offset >= ((h + MS_BS - 1) & ~(guint64)(MS_BS - 1)))
            break;
        h = MAX(h, n->offset + n->len);
    }
    *data = MAX(off, e->offset);
    *hole = MIN(h, size);
    return *data < size;
}

static gboolean
ms_all_zero(const guint8 *p, gsize n)
{
    /* the first word, then memcmp against itself shifted: no zero buffer */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

typedef struct {
    guint64 start, end;   /* whole image blocks (end: at most the size, rounded up) */
} MsRange;

/* The file's data ranges: SEEK_DATA/SEEK_HOLE on FD, or the disk's EXTENTS. */
static GArray *
ms_data_ranges(int fd, const GArray *extents, guint64 size)
{
    GArray *out = g_array_new(FALSE, FALSE, sizeof(MsRange));
    guint64 off = 0, limit = (size + MS_BS - 1) & ~(guint64)(MS_BS - 1);
    while (off < size) {
        guint64 data, hole;
        if (extents) {
            if (!ms_disk_next_data(extents, off, size, &data, &hole))
                break;
        } else {
            off_t d = lseek(fd, off, SEEK_DATA);
            if (d < 0 && errno == ENXIO)
                break;           /* a hole up to the end */
            if (d < 0)
                d = off;         /* no SEEK_DATA here: read it all */
            off_t h = lseek(fd, d, SEEK_HOLE);
            if (h < 0 || (guint64)h > size)
                h = size;
            data = d;
            hole = h;
        }
        /* whole blocks: a data range may start or end inside one */
        MsRange r = { data & ~(guint64)(MS_BS - 1), MIN(limit, (hole + MS_BS - 1) & ~(guint64)(MS_BS - 1)) };
        if (r.end <= r.start)
            break;
        if (out->len && g_array_index(out, MsRange, out->len - 1).end >= r.start)
            g_array_index(out, MsRange, out->len - 1).end = MAX(r.end, g_array_index(out, MsRange, out->len - 1).end);
        else
            g_array_append_val(out, r);
        off = r.end;
    }
    return out;
}

static gboolean
ms_read_at(MsBuild *b, int fd, guint32 src_ino, const GArray *extents, guint8 *buf, gsize len, guint64 pos,
           const char *rel, const char *where, GError **error)
{
    if (extents)
        return ms_image_disk_pread(b->disk, src_ino, extents, buf, len, pos, where, error);
    gsize got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, pos + got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ms_build_errno(b, rel, "cannot read", errno, error);
        if (r == 0)
            return ms_build_invalid(b, rel, "file shrank while building the image", error);
        got += r;
    }
    return TRUE;
}

/* The non-zero 4 KiB blocks of the file's content: exactly what pass 2
 * stores. Counting the content, not what the source reports as data, keeps
 * the image size independent of how the source stores zeros (a directory
 * keeps zero blocks that mke2fs -d turns into holes, compression and
 * preallocation change what is allocated). FULL if the file cannot be read
 * here: the second pass reports that. */
static guint64
ms_count_data_blocks(MsBuild *b, MsSrcDir dir, const MsNode *n, guint64 size, guint64 full)
{
    int fd = -1;
    g_autoptr(GArray) ext = NULL;
    if (b->disk) {
        ext = ms_image_disk_extents(b->disk, n->st.st_ino, size, "", NULL);
        if (ext == NULL)
            return full;
    } else {
        fd = openat(dir.fd, n->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
            return full;
    }
    g_autoptr(GArray) ranges = ms_data_ranges(fd, ext, size);
    guint64 count = 0;
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < ranges->len; i++) {
        const MsRange *r = &g_array_index(ranges, MsRange, i);
        for (guint64 pos = r->start; ok && pos < r->end; pos += MS_COPY_BUF) {
            gsize chunk = MIN((guint64)MS_COPY_BUF, r->end - pos);
            memset(b->buf, 0, chunk);
            ok = ms_read_at(b, fd, n->st.st_ino, ext, b->buf, MIN(chunk, size - pos), pos, "", "", NULL);
            for (gsize k = 0; ok && k < chunk; k += MS_BS)
                if (!ms_all_zero(b->buf + k, MS_BS))
                    count++;
        }
    }
    if (fd >= 0)
        close(fd);
    return ok ? MIN(count, full) : full;
}

static gboolean
ms_scan_entry(MsBuild *b, MsSrcDir src, const char *name, guint32 disk_ino, GString *rel, guint depth,
              MsSel sel, MsNode *dir, gsize *dir_bytes, GError **error)
{
    int dirfd = src.fd;
    gsize base = rel->len;
    if (rel->len)
        g_string_append_c(rel, '/');
    g_string_append(rel, name);
    gboolean ok = FALSE;
    g_autofree char *key = NULL;

    gsize nl = strlen(name);
    if (nl > MS_IMAGE_NAME_MAX) {
        g_autofree char *why = g_strdup_printf("name is %zu bytes long, ext4 allows %d", nl, MS_IMAGE_NAME_MAX);
        ms_build_invalid(b, rel->str, why, error);
        goto out;
    }
    if (rel->len > b->path_max) {
        g_autofree char *why = g_strdup_printf("path is %zu bytes long, the builder allows %zu",
                                               rel->len, b->path_max);
        ms_build_invalid(b, rel->str, why, error);
        goto out;
    }
    int child_sel = b->paths ? ms_select(b, sel, rel->str) : MS_SEL_ALL;
    if (child_sel < 0) {
        ok = TRUE;
        goto out;
    }

    MsNode *n = g_new0(MsNode, 1);
    n->name = g_strdup(name);
    if (b->disk) {
        g_autofree char *where = ms_disk_where(b, rel->str);
        if (!ms_image_disk_stat(b->disk, disk_ino, &n->st, where, error)) {
            ms_node_free(n);
            goto out;
        }
    } else if (fstatat(dirfd, name, &n->st, AT_SYMLINK_NOFOLLOW) < 0) {
        int e = errno;
        ms_node_free(n);
        ms_build_errno(b, rel->str, "cannot stat", e, error);
        goto out;
    }
    mode_t t = n->st.st_mode & S_IFMT;
    if (t == S_IFSOCK) {
        ms_build_warn(b, rel->str, "socket skipped (sockets cannot be stored in an image)");
        ms_node_free(n);
        ok = TRUE;
        goto out;
    }
    if (child_sel == MS_SEL_PARTIAL && t != S_IFDIR) {
        ms_node_free(n);
        ms_build_invalid(b, rel->str, "not a directory, but a selected path lies below it", error);
        goto out;
    }
    if (t != S_IFREG && t != S_IFDIR && t != S_IFLNK && t != S_IFCHR && t != S_IFBLK && t != S_IFIFO) {
        ms_node_free(n);
        ms_build_invalid(b, rel->str, "unknown file type", error);
        goto out;
    }
    g_ptr_array_add(dir->children, n);
    *dir_bytes += 8 + ((nl + 3) & ~(gsize)3);

    if (!ms_scan_xattrs(b, src, name, rel->str, n, error))
        goto out;

    /* ext4's i_links_count is 16 bits and the kernel caps it at 65000
     * (EXT4_LINK_MAX) */
    if (t != S_IFDIR && n->st.st_nlink > 65000) {
        ms_build_invalid(b, rel->str, "more than 65000 hard links (ext4's limit)", error);
        goto out;
    }
    const char *hardlink_of = NULL;
    if (t != S_IFDIR && n->st.st_nlink > 1) {
        key = ms_devino_key(&n->st);
        hardlink_of = g_hash_table_lookup(b->seen, key);
        if (hardlink_of == NULL)
            g_hash_table_insert(b->seen, g_strdup(key), g_strdup(rel->str));
    }

    if (t == S_IFLNK) {
        /* ext4 keeps a link target in one block */
        if (n->st.st_size <= 0 || n->st.st_size >= MS_BS) {
            ms_build_invalid(b, rel->str, "symbolic link target is empty or longer than 4095 bytes", error);
            goto out;
        }
        if (b->disk) {
            g_autofree char *where = ms_disk_where(b, rel->str);
            n->target = ms_image_disk_readlink(b->disk, n->st.st_ino, n->st.st_size, where, error);
            if (n->target == NULL)
                goto out;
        }
        n->target = n->target ? n->target : g_malloc0(n->st.st_size + 2);
        ssize_t r = b->disk ? (ssize_t)strlen(n->target) : readlinkat(dirfd, name, n->target, n->st.st_size + 1);
        if (r < 0) {
            ms_build_errno(b, rel->str, "cannot read symbolic link", errno, error);
            goto out;
        }
        if (r != n->st.st_size) {
            ms_build_invalid(b, rel->str, "symbolic link changed while reading it", error);
            goto out;
        }
    }
    ms_listing_add(b, rel->str, n, hardlink_of);
    if (hardlink_of) {
        ok = TRUE;
        goto out;
    }

    b->inodes++;
    b->files++;
    b->blocks += ms_xattr_blocks(n);
    if (t == S_IFREG) {
        /* The image size must not depend on how the source stores a file
         * (holes or zero blocks, compression, preallocation): count the
         * blocks of its content that are not zeros. */
        guint64 data = ((guint64)n->st.st_size + MS_BS - 1) / MS_BS;
        data = ms_count_data_blocks(b, src, n, n->st.st_size, data);
        /* extent tree: 4 extents fit in the inode, an index block holds 340 */
        b->blocks += data + (data > 4 ? 1 + data / 8192 : 0);
    } else if (t == S_IFLNK) {
        if (n->st.st_size >= (off_t)sizeof(((struct ext2_inode *)0)->i_block))
            b->blocks++;
    } else if (t == S_IFDIR) {
        MsDevIno di = { n->st.st_dev, n->st.st_ino };
        for (guint i = 0; i < b->ancestors->len; i++) {
            MsDevIno *a = &g_array_index(b->ancestors, MsDevIno, i);
            if (a->dev == di.dev && a->ino == di.ino) {
                ms_build_invalid(b, rel->str, "directory loop (it is one of its own ancestors, "
                                              "e.g. through a bind mount)", error);
                goto out;
            }
        }
        if (depth + 1 > MS_IMAGE_DEPTH_MAX) {
            g_autofree char *why = g_strdup_printf("more than %d directory levels", MS_IMAGE_DEPTH_MAX);
            ms_build_invalid(b, rel->str, why, error);
            goto out;
        }
        MsSrcDir child = { -1, 0 };
        if (b->disk) {
            /* a corrupted disk may link one directory from two places: a
             * tree, not a loop, but one that can grow exponentially */
            if (!g_hash_table_add(b->disk_dirs, GUINT_TO_POINTER(n->st.st_ino))) {
                ms_build_invalid(b, rel->str, "directory reached twice (a hard-linked directory: "
                                              "the file system is corrupted)", error);
                goto out;
            }
            child.ino = n->st.st_ino;
        } else {
            child.fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child.fd < 0) {
                ms_build_errno(b, rel->str, "cannot open directory", errno, error);
                goto out;
            }
        }
        g_array_append_val(b->ancestors, di);
        gboolean r = ms_scan_dir(b, child, n, rel, depth + 1, child_sel, error);
        g_array_set_size(b->ancestors, b->ancestors->len - 1);
        if (child.fd >= 0)
            close(child.fd);
        if (!r)
            goto out;
    }
    ok = TRUE;
out:
    g_string_truncate(rel, base);
    return ok;
}

typedef struct {
    char *name;
    guint32 ino;
} MsDirEntry;

static void
ms_dir_entry_free(gpointer p)
{
    MsDirEntry *e = p;
    g_free(e->name);
    g_free(e);
}

static int
ms_dir_entry_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp((*(MsDirEntry *const *)a)->name, (*(MsDirEntry *const *)b)->name);
}

/* The entries of a disk directory, sorted; a name listed twice (only a
 * corrupted directory has that) is refused. */
static GPtrArray *
ms_scan_disk_dir(MsBuild *b, guint32 ino, const char *rel, GError **error)
{
    g_autofree char *where = ms_disk_where(b, rel);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GArray) inos = g_array_new(FALSE, FALSE, sizeof(guint32));
    if (!ms_image_disk_list(b->disk, ino, where, names, inos, error))
        return NULL;
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(ms_dir_entry_free);
    for (guint i = 0; i < names->len; i++) {
        MsDirEntry *e = g_new0(MsDirEntry, 1);
        e->name = g_strdup(g_ptr_array_index(names, i));
        e->ino = g_array_index(inos, guint32, i);
        g_ptr_array_add(out, e);
    }
    g_ptr_array_sort(out, ms_dir_entry_cmp);
    for (guint i = 1; i < out->len; i++) {
        const char *n = ((MsDirEntry *)g_ptr_array_index(out, i))->name;
        if (strcmp(n, ((MsDirEntry *)g_ptr_array_index(out, i - 1))->name) == 0) {
            g_autofree char *p = g_strescape(n, NULL);
            g_autofree char *why = g_strdup_printf("the name \"%s\" is listed twice (corrupted directory)", p);
            ms_build_invalid(b, rel, why, error);
            return NULL;
        }
    }
    return g_steal_pointer(&out);
}

static gboolean
ms_scan_dir(MsBuild *b, MsSrcDir src, MsNode *dir, GString *rel, guint depth, MsSel sel, GError **error)
{
    if (b->disk) {
        g_autoptr(GPtrArray) ents = ms_scan_disk_dir(b, src.ino, rel->str, error);
        if (ents == NULL)
            return FALSE;
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GArray) inos = g_array_new(FALSE, FALSE, sizeof(guint32));
        for (guint i = 0; i < ents->len; i++) {
            MsDirEntry *e = g_ptr_array_index(ents, i);
            g_ptr_array_add(names, g_strdup(e->name));
            g_array_append_val(inos, e->ino);
        }
        return ms_scan_entries(b, src, names, inos, dir, rel, depth, sel, error);
    }
    int fd = src.fd;
    int dfd = dup(fd);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return ms_build_errno(b, rel->str, "cannot read directory", e, error);
    }
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno) {
                int e = errno;
                closedir(d);
                return ms_build_errno(b, rel->str, "cannot read directory", e, error);
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        g_ptr_array_add(names, g_strdup(de->d_name));
    }
    closedir(d);
    /* bytewise order: the same tree gives the same directory blocks */
    g_ptr_array_sort(names, ms_name_cmp);
    return ms_scan_entries(b, src, names, NULL, dir, rel, depth, sel, error);
}

/* NAMES sorted; INOS their inodes on a disk, NULL for a directory tree. */
static gboolean
ms_scan_entries(MsBuild *b, MsSrcDir src, GPtrArray *names, GArray *inos, MsNode *dir, GString *rel,
                guint depth, MsSel sel, GError **error)
{
    dir->children = g_ptr_array_new_with_free_func(ms_node_free);
    gsize bytes = 24;
    for (guint i = 0; i < names->len; i++)
        if (!ms_scan_entry(b, src, g_ptr_array_index(names, i), inos ? g_array_index(inos, guint32, i) : 0, rel,
                           depth, sel, dir, &bytes, error))
            return FALSE;
    guint subdirs = 0;
    for (guint i = 0; i < dir->children->len; i++)
        if (S_ISDIR(((MsNode *)g_ptr_array_index(dir->children, i))->st.st_mode))
            subdirs++;
    /* ext2fs_mkdir counts links in 16 bits; the kernel's dir_nlink
     * convention for bigger directories is not what libext2fs writes */
    if (subdirs > 64998)
        return ms_build_invalid(b, rel->str, "more than 64998 subdirectories in one directory", error);
    /* 12 bytes of each block go to the checksum tail; first-fit linking
     * leaves some slack */
    b->blocks += (bytes + (MS_BS - 12 - 256) - 1) / (MS_BS - 12 - 256);
    return TRUE;
}

/* ------------------------------------------------------------------ */
/* pass 2: the file system                                             */

static gboolean
ms_link(MsBuild *b, ext2_ino_t dir, const char *name, ext2_ino_t ino, int ftype, const char *rel,
        GError **error)
{
    errcode_t err = ext2fs_link(b->fs, dir, name, ino, ftype);
    if (err == EXT2_ET_DIR_NO_SPACE) {
        err = ext2fs_expand_dir(b->fs, dir);
        if (err)
            return ms_build_ext2(b, rel, "cannot expand directory", err, error);
        err = ext2fs_link(b->fs, dir, name, ino, ftype);
    }
    if (err)
        return ms_build_ext2(b, rel, "cannot link", err, error);
    return TRUE;
}

static void
ms_inode_times(MsBuild *b, struct ext2_inode_large *in, const struct stat *st)
{
    guint32 m = b->epoch;
    if (st && b->opts->clamp_mtime && st->st_mtime >= 0 && (guint64)st->st_mtime < m)
        m = st->st_mtime;
    in->i_atime = in->i_ctime = b->epoch;
    in->i_mtime = m;
    in->i_dtime = 0;
    if (EXT2_INODE_SIZE(b->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
        in->i_extra_isize >= offsetof(struct ext2_inode_large, i_crtime_extra) + 4 - EXT2_GOOD_OLD_INODE_SIZE) {
        in->i_crtime = b->epoch;
        in->i_atime_extra = in->i_ctime_extra = in->i_mtime_extra = in->i_crtime_extra = 0;
    }
}

/* Owner, permission bits and times from the source; the type bits stay. */
static gboolean
ms_set_attrs(MsBuild *b, ext2_ino_t ino, const MsNode *n, const char *rel, GError **error)
{
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    errcode_t err = ext2fs_read_inode_full(b->fs, ino, (struct ext2_inode *)&in, sizeof(in));
    if (err)
        return ms_build_ext2(b, rel, "cannot read inode", err, error);
    in.i_mode = (in.i_mode & LINUX_S_IFMT) | (n->st.st_mode & 07777);
    in.i_uid = n->st.st_uid & 0xffff;
    ext2fs_set_i_uid_high(in, n->st.st_uid >> 16);
    in.i_gid = n->st.st_gid & 0xffff;
    ext2fs_set_i_gid_high(in, n->st.st_gid >> 16);
    ms_inode_times(b, &in, &n->st);
    err = ext2fs_write_inode_full(b->fs, ino, (struct ext2_inode *)&in, sizeof(in));
    if (err)
        return ms_build_ext2(b, rel, "cannot write inode", err, error);
    if (n->xattrs && n->xattrs->len) {
        struct ext2_xattr_handle *h = NULL;
        err = ext2fs_xattrs_open(b->fs, ino, &h);
        if (!err)
            err = ext2fs_xattrs_read(h);
        for (guint i = 0; !err && i < n->xattrs->len; i++) {
            MsXattr *x = g_ptr_array_index(n->xattrs, i);
            err = ext2fs_xattr_set(h, x->name, x->value, x->len);
            if (err) {
                g_autofree char *what = g_strdup_printf("cannot store extended attribute '%s'", x->name);
                ext2fs_xattrs_close(&h);
                return ms_build_ext2(b, rel, what, err, error);
            }
        }
        if (h) {
            errcode_t e2 = ext2fs_xattrs_close(&h);
            if (!err)
                err = e2;
        }
        if (err)
            return ms_build_ext2(b, rel, "cannot store extended attributes", err, error);
    }
    return TRUE;
}

/* Allocates logical blocks [LBLK, LBLK + N) of INO in one go and writes
 * DATA there with one write per physically contiguous run: ext2fs_file_write
 * would allocate and write one block at a time (as mke2fs -d does). */
static gboolean
ms_write_run(MsBuild *b, ext2_ino_t ino, guint64 lblk, const guint8 *data, guint64 n, const char *rel,
             GError **error)
{
    blk64_t goal = ext2fs_find_inode_goal(b->fs, ino, NULL, lblk);
    errcode_t err = ext2fs_fallocate(b->fs, EXT2_FALLOCATE_FORCE_INIT, ino, NULL, goal, lblk, n);
    if (err)
        return ms_build_ext2(b, rel, "cannot allocate blocks", err, error);
    struct ext2_inode in;
    err = ext2fs_read_inode(b->fs, ino, &in);
    if (err)
        return ms_build_ext2(b, rel, "cannot read inode", err, error);
    guint64 i = 0;
    while (i < n) {
        blk64_t p0 = 0;
        err = ext2fs_bmap2(b->fs, ino, &in, NULL, 0, lblk + i, NULL, &p0);
        if (err || p0 == 0)
            return ms_build_ext2(b, rel, "cannot map block", err ? err : EXT2_ET_BAD_BLOCK_NUM, error);
        guint64 j = i + 1;
        while (j < n) {
            blk64_t p = 0;
            err = ext2fs_bmap2(b->fs, ino, &in, NULL, 0, lblk + j, NULL, &p);
            if (err || p != p0 + (j - i))
                break;
            j++;
        }
        err = io_channel_write_blk64(b->fs->io, p0, (int)(j - i), data + i * MS_BS);
        if (err)
            return ms_build_ext2(b, rel, "cannot write", err, error);
        i = j;
    }
    return TRUE;
}

/* Copies the file's data into INO: from FD (a directory tree), or from
 * disk inode SRC_INO through EXTENTS. The file is read in windows of 1 MiB
 * at absolute offsets (holes read as zeros) and written as the runs of
 * non-zero blocks of each window, so the writes (and with them the block
 * allocation) depend on the content only, not on where the source has holes:
 * a disk made with mke2fs -d has holes where the directory had zero blocks,
 * and must give the same image. */
static gboolean
ms_copy_data(MsBuild *b, int fd, guint32 src_ino, const GArray *extents, ext2_ino_t ino, guint64 size,
             const char *rel, GError **error)
{
    g_autofree char *where = b->disk ? ms_disk_where(b, rel) : NULL;
    g_autoptr(GArray) ranges = ms_data_ranges(fd, extents, size);
    guint64 cursor = 0;
    guint i = 0;
    while (i < ranges->len) {
        const MsRange *first = &g_array_index(ranges, MsRange, i);
        guint64 w = MAX(cursor, first->start / MS_COPY_BUF * MS_COPY_BUF);
        guint64 wend = MIN(w + MS_COPY_BUF, (size + MS_BS - 1) & ~(guint64)(MS_BS - 1));
        gsize wlen = wend - w;
        memset(b->buf, 0, wlen);
        for (guint j = i; j < ranges->len; j++) {
            const MsRange *r = &g_array_index(ranges, MsRange, j);
            if (r->start >= wend)
                break;
            guint64 a = MAX(r->start, w), z = MIN(MIN(r->end, wend), size);
            if (a < z && !ms_read_at(b, fd, src_ino, extents, b->buf + (a - w), z - a, a, rel, where, error))
                return FALSE;
        }
        while (i < ranges->len && g_array_index(ranges, MsRange, i).end <= wend)
            i++;
        cursor = wend;
        /* runs of non-zero blocks; zero blocks stay holes */
        gsize k = 0;
        while (k < wlen) {
            if (ms_all_zero(b->buf + k, MS_BS)) {
                k += MS_BS;
                continue;
            }
            gsize j = k + MS_BS;
            while (j < wlen && !ms_all_zero(b->buf + j, MS_BS))
                j += MS_BS;
            if (!ms_write_run(b, ino, (w + k) / MS_BS, b->buf + k, (j - k) / MS_BS, rel, error))
                return FALSE;
            k = j;
        }
    }
    return TRUE;
}

static gboolean
ms_new_inode(MsBuild *b, ext2_ino_t dir, int mode, ext2_ino_t *ino, const char *rel, GError **error)
{
    errcode_t err = ext2fs_new_inode(b->fs, dir, mode, NULL, ino);
    if (err)
        return ms_build_ext2(b, rel, "cannot allocate inode", err, error);
    return TRUE;
}

static gboolean ms_populate_dir(MsBuild *b, MsSrcDir src, const MsNode *dir, ext2_ino_t dino, GString *rel,
                                GError **error);

static gboolean
ms_add_regular(MsBuild *b, MsSrcDir src, const MsNode *n, ext2_ino_t dino, ext2_ino_t *out,
               const char *rel, GError **error)
{
    int fd = -1;
    g_autoptr(GArray) extents = NULL;
    struct stat st;
    if (b->disk) {
        g_autofree char *where = ms_disk_where(b, rel);
        if (!ms_image_disk_stat(b->disk, n->st.st_ino, &st, where, error))
            return FALSE;
        if (st.st_size != n->st.st_size || !S_ISREG(st.st_mode))
            return ms_build_invalid(b, rel, "changed while building the image", error);
        extents = ms_image_disk_extents(b->disk, n->st.st_ino, n->st.st_size, where, error);
        if (extents == NULL)
            return FALSE;
    } else {
        fd = openat(src.fd, n->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
            return ms_build_errno(b, rel, "cannot open", errno, error);
        if (fstat(fd, &st) < 0 || st.st_ino != n->st.st_ino || st.st_dev != n->st.st_dev ||
            st.st_size != n->st.st_size || !S_ISREG(st.st_mode)) {
            close(fd);
            return ms_build_invalid(b, rel, "changed while building the image", error);
        }
    }
    ext2_ino_t ino;
    if (!ms_new_inode(b, dino, LINUX_S_IFREG | 0644, &ino, rel, error)) {
        if (fd >= 0)
            close(fd);
        return FALSE;
    }
    ext2fs_inode_alloc_stats2(b->fs, ino, +1, 0);
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    in.i_mode = LINUX_S_IFREG | (n->st.st_mode & 07777);
    in.i_links_count = 1;
    /* the per-inode DAX flag: with ext4's default dax=inode, a guest gets
     * DAX for these files wherever the device supports it (virtio-pmem)
     * and plain page-cache reads where not (virtio-blk), with one fstab
     * line for both */
    in.i_flags |= MS_FS_DAX_FL;
    in.i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
    ms_inode_times(b, &in, &n->st);
    errcode_t err = ext2fs_inode_size_set(b->fs, (struct ext2_inode *)&in, n->st.st_size);
    if (!err) {
        ext2_extent_handle_t h;
        err = ext2fs_extent_open2(b->fs, ino, (struct ext2_inode *)&in, &h);
        if (!err)
            ext2fs_extent_free(h);
    }
    if (!err)
        err = ext2fs_write_inode_full(b->fs, ino, (struct ext2_inode *)&in, sizeof(in));
    if (err) {
        if (fd >= 0)
            close(fd);
        return ms_build_ext2(b, rel, "cannot create inode", err, error);
    }
    gboolean ok = ms_copy_data(b, fd, n->st.st_ino, extents, ino, n->st.st_size, rel, error);
    if (fd >= 0)
        close(fd);
    if (!ok)
        return FALSE;
    *out = ino;
    return TRUE;
}

static gboolean
ms_add_special(MsBuild *b, const MsNode *n, ext2_ino_t dino, ext2_ino_t *out, const char *rel,
               GError **error)
{
    int type = S_ISCHR(n->st.st_mode) ? LINUX_S_IFCHR : S_ISBLK(n->st.st_mode) ? LINUX_S_IFBLK : LINUX_S_IFIFO;
    ext2_ino_t ino;
    if (!ms_new_inode(b, dino, type | 0600, &ino, rel, error))
        return FALSE;
    ext2fs_inode_alloc_stats2(b->fs, ino, +1, 0);
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    in.i_mode = type | (n->st.st_mode & 07777);
    in.i_links_count = 1;
    in.i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
    if (type != LINUX_S_IFIFO) {
        /* the kernel's old and new device encodings (as create_inode.c) */
        unsigned int maj = major(n->st.st_rdev), min = minor(n->st.st_rdev);
        if (maj < 256 && min < 256) {
            in.i_block[0] = maj * 256 + min;
            in.i_block[1] = 0;
        } else {
            in.i_block[0] = 0;
            in.i_block[1] = (min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12);
        }
    }
    ms_inode_times(b, &in, &n->st);
    errcode_t err = ext2fs_write_inode_full(b->fs, ino, (struct ext2_inode *)&in, sizeof(in));
    if (err)
        return ms_build_ext2(b, rel, "cannot create inode", err, error);
    *out = ino;
    return TRUE;
}

static int
ms_ftype(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFREG: return EXT2_FT_REG_FILE;
    case S_IFDIR: return EXT2_FT_DIR;
    case S_IFLNK: return EXT2_FT_SYMLINK;
    case S_IFCHR: return EXT2_FT_CHRDEV;
    case S_IFBLK: return EXT2_FT_BLKDEV;
    case S_IFIFO: return EXT2_FT_FIFO;
    default: return EXT2_FT_UNKNOWN;
    }
}

static gboolean
ms_populate_entry(MsBuild *b, MsSrcDir src, const MsNode *n, ext2_ino_t dino, GString *rel, GError **error)
{
    ext2_ino_t ino = 0;
    mode_t t = n->st.st_mode & S_IFMT;
    g_autofree char *key = NULL;

    if (t != S_IFDIR && n->st.st_nlink > 1) {
        key = ms_devino_key(&n->st);
        gpointer v = g_hash_table_lookup(b->links, key);
        if (v) {
            /* another name of an inode already copied */
            ino = GPOINTER_TO_UINT(v);
            if (!ms_link(b, dino, n->name, ino, ms_ftype(t), rel->str, error))
                return FALSE;
            struct ext2_inode in;
            errcode_t err = ext2fs_read_inode(b->fs, ino, &in);
            if (!err) {
                in.i_links_count++;
                err = ext2fs_write_inode(b->fs, ino, &in);
            }
            if (err)
                return ms_build_ext2(b, rel->str, "cannot update link count", err, error);
            return TRUE;
        }
    }

    switch (t) {
    case S_IFDIR: {
        if (dino == EXT2_ROOT_INO && strcmp(n->name, "lost+found") == 0) {
            /* the image has its own; the source's becomes it */
            errcode_t err = ext2fs_lookup(b->fs, EXT2_ROOT_INO, "lost+found", 10, NULL, &ino);
            if (err)
                return ms_build_ext2(b, rel->str, "cannot find lost+found", err, error);
        } else {
            if (!ms_new_inode(b, dino, LINUX_S_IFDIR | 0755, &ino, rel->str, error))
                return FALSE;
            errcode_t err = ext2fs_mkdir(b->fs, dino, ino, NULL);
            if (err)
                return ms_build_ext2(b, rel->str, "cannot create directory", err, error);
            if (!ms_link(b, dino, n->name, ino, EXT2_FT_DIR, rel->str, error))
                return FALSE;
        }
        if (!ms_set_attrs(b, ino, n, rel->str, error))
            return FALSE;
        b->files++;
        MsSrcDir child = { -1, n->st.st_ino };
        if (!b->disk) {
            child.fd = openat(src.fd, n->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child.fd < 0)
                return ms_build_errno(b, rel->str, "cannot open directory", errno, error);
        }
        gboolean ok = ms_populate_dir(b, child, n, ino, rel, error);
        if (child.fd >= 0)
            close(child.fd);
        return ok;
    }
    case S_IFREG:
        if (!ms_add_regular(b, src, n, dino, &ino, rel->str, error))
            return FALSE;
        break;
    case S_IFLNK: {
        if (!ms_new_inode(b, dino, LINUX_S_IFLNK | 0777, &ino, rel->str, error))
            return FALSE;
        errcode_t err = ext2fs_symlink(b->fs, dino, ino, NULL, n->target);
        if (err)
            return ms_build_ext2(b, rel->str, "cannot create symbolic link", err, error);
        break;
    }
    default:
        if (!ms_add_special(b, n, dino, &ino, rel->str, error))
            return FALSE;
        break;
    }
    if (!ms_link(b, dino, n->name, ino, ms_ftype(t), rel->str, error))
        return FALSE;
    if (!ms_set_attrs(b, ino, n, rel->str, error))
        return FALSE;
    b->files++;
    if (key)
        g_hash_table_insert(b->links, g_steal_pointer(&key), GUINT_TO_POINTER(ino));
    return TRUE;
}

static gboolean
ms_populate_dir(MsBuild *b, MsSrcDir src, const MsNode *dir, ext2_ino_t dino, GString *rel, GError **error)
{
    for (guint i = 0; dir->children && i < dir->children->len; i++) {
        const MsNode *n = g_ptr_array_index(dir->children, i);
        gsize base = rel->len;
        if (rel->len)
            g_string_append_c(rel, '/');
        g_string_append(rel, n->name);
        gboolean ok = ms_populate_entry(b, src, n, dino, rel, error);
        g_string_truncate(rel, base);
        if (!ok)
            return FALSE;
    }
    return TRUE;
}

static void
ms_fs_close(ext2_filsys *fs)
{
    if (*fs) {
        ext2fs_free(*fs);
        *fs = NULL;
    }
}

static gboolean
ms_build_fs(MsBuild *b, MsSrcDir root_src, const char *path, guint64 blocks, guint64 inodes,
            const guint8 digest[32], GError **error)
{
    struct ext2_super_block param;
    memset(&param, 0, sizeof(param));
    ext2fs_blocks_count_set(&param, blocks);
    param.s_log_block_size = 2;   /* 1024 << 2 */
    param.s_rev_level = EXT2_DYNAMIC_REV;
    param.s_inode_size = MS_INODE_SIZE;
    param.s_inodes_count = MIN(inodes, (guint64)G_MAXUINT32 - 1);
    param.s_log_groups_per_flex = 4;
    param.s_min_extra_isize = param.s_want_extra_isize =
        sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
    param.s_feature_compat = EXT2_FEATURE_COMPAT_EXT_ATTR | EXT2_FEATURE_COMPAT_DIR_INDEX;
    param.s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS |
                               EXT4_FEATURE_INCOMPAT_FLEX_BG;
    param.s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
                                EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK |
                                EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE | EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;

    ext2_filsys fs = NULL;
    errcode_t err = ext2fs_initialize(path, EXT2_FLAG_64BITS, &param, unix_io_manager, &fs);
    if (err)
        return ms_build_ext2(b, NULL, "cannot create the file system", err, error);
    b->fs = fs;
    struct ext2_super_block *sb = fs->super;
    /* fs->now == 0 would mean "the current time" */
    fs->now = b->epoch;
    sb->s_mkfs_time = sb->s_lastcheck = b->epoch;
    sb->s_max_mnt_count = -1;
    sb->s_checkinterval = 0;
    sb->s_kbytes_written = 0;
    memcpy(sb->s_uuid, digest, 16);
    memcpy(sb->s_hash_seed, digest + 16, 16);
    sb->s_def_hash_version = EXT2_HASH_HALF_MD4;
    /* the build machine's char signedness must not leak into the image */
    sb->s_flags &= ~EXT2_FLAGS_SIGNED_HASH;
    sb->s_flags |= EXT2_FLAGS_UNSIGNED_HASH;
    memset(sb->s_volume_name, 0, sizeof(sb->s_volume_name));
    if (b->opts->label)
        memcpy(sb->s_volume_name, b->opts->label, MIN(strlen(b->opts->label), sizeof(sb->s_volume_name)));
    sb->s_checksum_type = EXT2_CRC32C_CHKSUM;
    ext2fs_init_csum_seed(fs);

    err = ext2fs_allocate_tables(fs);
    if (err)
        return ms_build_ext2(b, NULL, "cannot allocate the group tables", err, error);
    err = ext2fs_convert_subcluster_bitmap(fs, &fs->block_map);
    if (err)
        return ms_build_ext2(b, NULL, "cannot set up the block bitmap", err, error);
    /* the file starts as zeros: inode tables need no lazy init */
    for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
        ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
        ext2fs_group_desc_csum_set(fs, g);
    }

    err = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, NULL);
    if (err)
        return ms_build_ext2(b, NULL, "cannot create the root directory", err, error);
    err = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
    if (err)
        return ms_build_ext2(b, NULL, "cannot create lost+found", err, error);
    for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(sb); i++)
        ext2fs_inode_alloc_stats2(fs, i, +1, 0);
    ext2fs_mark_ib_dirty(fs);
    ext2fs_mark_inode_bitmap2(fs->inode_map, EXT2_BAD_INO);
    ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
    err = ext2fs_update_bb_inode(fs, NULL);
    if (err)
        return ms_build_ext2(b, NULL, "cannot write the bad-blocks inode", err, error);

    /* root and lost+found got "now" from libext2fs: restamp them */
    ext2_ino_t lf = 0;
    err = ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", 10, NULL, &lf);
    if (err)
        return ms_build_ext2(b, NULL, "cannot find lost+found", err, error);
    MsNode lfn = { .st = { .st_mode = S_IFDIR | 0700 } };
    if (!ms_set_attrs(b, lf, &lfn, "lost+found", error))
        return FALSE;
    if (!ms_set_attrs(b, EXT2_ROOT_INO, b->root, NULL, error))
        return FALSE;
    b->files = 1;

    g_autoptr(GString) rel = g_string_new(NULL);
    if (!ms_populate_dir(b, root_src, b->root, EXT2_ROOT_INO, rel, error))
        return FALSE;

    b->fs = NULL;
    b->blocks_used = ext2fs_blocks_count(sb) - ext2fs_free_blocks_count(sb);
    sb->s_wtime = b->epoch;
    err = ext2fs_close_free(&fs);
    if (err)
        return ms_build_ext2(b, NULL, "cannot write the file system", err, error);
    return TRUE;
}

/* Which pages of FD's first LEN bytes are in the page cache (mincore of a
 * mapping that faults nothing in), or NULL when that cannot be told
 * (mmap refused, e.g. an empty file). */
guint8 *
ms_image_residency(int fd, guint64 len, gsize *npages)
{
    long psz = sysconf(_SC_PAGESIZE);
    if (len == 0 || psz <= 0 || len > G_MAXSIZE)
        return NULL;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return NULL;
    gsize n = (len + psz - 1) / psz;
    g_autofree guint8 *vec = g_malloc(n);
    int r = mincore(m, len, vec);
    munmap(m, len);
    if (r < 0)
        return NULL;
    *npages = n;
    return g_steal_pointer(&vec);
}

/* Hands back to the kernel the pages hashing pulled into the page cache:
 * verifying a 650 MiB /usr image at every attach must not leave a second
 * copy of the image in host memory beside what the guests map. Only pages
 * that were not resident before are dropped, and the kernel never drops a
 * page someone maps, so what the guests (DAX) or QEMU's reads (blk) use
 * stays. */
void
ms_image_drop_new_pages(int fd, const guint8 *before, gsize npages)
{
    long psz = sysconf(_SC_PAGESIZE);
    for (gsize i = 0; i < npages;) {
        if (before[i] & 1) {
            i++;
            continue;
        }
        gsize j = i;
        while (j < npages && !(before[j] & 1))
            j++;
        (void)posix_fadvise(fd, (off_t)i * psz, (off_t)(j - i) * psz, POSIX_FADV_DONTNEED);
        i = j;
    }
}

/* OpenSSL's sha256 uses the CPU's SHA extensions: several times faster than
 * GChecksum, which matters when every build and verify hashes the whole
 * image. The page cache is left as it was found (ms_image_drop_new_pages). */
gboolean
ms_image_sha256_fd(int fd, char out[65], guint64 *size, const char *what, GError **error)
{
#ifdef MS_HAVE_LIBCRYPTO
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot set up sha256", what);
        return FALSE;
    }
#else
    g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
#endif
    g_autofree guint8 *buf = g_malloc(MS_COPY_BUF);
    guint64 total = 0;
    gboolean ok = TRUE;
    struct stat st;
    gsize npages = 0;
    g_autofree guint8 *resident = fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                                      ? ms_image_residency(fd, (guint64)st.st_size, &npages) : NULL;
    for (;;) {
        ssize_t r = pread(fd, buf, MS_COPY_BUF, total);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", what, g_strerror(e));
            ok = FALSE;
            break;
        }
        if (r == 0)
            break;
#ifdef MS_HAVE_LIBCRYPTO
        EVP_DigestUpdate(ctx, buf, r);
#else
        g_checksum_update(ck, buf, r);
#endif
        total += r;
    }
#ifdef MS_HAVE_LIBCRYPTO
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32) {
        for (guint i = 0; i < 32; i++)
            g_snprintf(out + 2 * i, 3, "%02x", md[i]);
    } else if (ok) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: sha256 failed", what);
        ok = FALSE;
    }
    EVP_MD_CTX_free(ctx);
#else
    if (ok)
        g_strlcpy(out, g_checksum_get_string(ck), 65);
#endif
    if (resident != NULL)
        ms_image_drop_new_pages(fd, resident, npages);
    if (ok && size)
        *size = total;
    return ok;
}

static void
ms_build_clear(MsBuild *b)
{
    ms_fs_close(&b->fs);
    g_clear_pointer(&b->paths, g_ptr_array_unref);
    g_clear_pointer(&b->matched, g_free);
    g_clear_pointer(&b->listing, g_checksum_free);
    g_clear_pointer(&b->warnings, g_ptr_array_unref);
    g_clear_pointer(&b->ancestors, g_array_unref);
    g_clear_pointer(&b->seen, g_hash_table_unref);
    g_clear_pointer(&b->links, g_hash_table_unref);
    g_clear_pointer(&b->root, ms_node_free);
    g_clear_pointer(&b->buf, g_free);
    g_clear_pointer(&b->disk, ms_image_disk_free);
    g_clear_pointer(&b->disk_path, g_free);
    g_clear_pointer(&b->display, g_free);
    g_clear_pointer(&b->disk_dirs, g_hash_table_unref);
}

static const MsNode *
ms_node_child(const MsNode *dir, const char *name)
{
    for (guint i = 0; dir->children && i < dir->children->len; i++) {
        const MsNode *c = g_ptr_array_index(dir->children, i);
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

/* A /usr has bin/ and lib/ directories at its top (merged-usr or not). A
 * whole root file system (usr/ inside, /bin often a link) is the common
 * mistake: say so. */
static gboolean
ms_build_check_usr(MsBuild *b, GError **error)
{
    static const char *const need[] = { "bin", "lib" };
    g_autoptr(GString) missing = g_string_new(NULL);
    for (guint i = 0; i < G_N_ELEMENTS(need); i++) {
        const MsNode *c = ms_node_child(b->root, need[i]);
        if (c && S_ISDIR(c->st.st_mode))
            continue;
        g_string_append_printf(missing, "%s%s/%s", missing->len ? " and " : "", need[i],
                               c ? " (not a directory)" : "");
    }
    if (missing->len == 0)
        return TRUE;
    const MsNode *usr = ms_node_child(b->root, "usr");
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                "%s: not a /usr (--usr): no %s at its top%s", b->source, missing->str,
                usr && S_ISDIR(usr->st.st_mode) ? "; it looks like a whole root file system: build from its usr/"
                                                : "");
    return FALSE;
}

static guint32
ms_build_epoch(const MsImageBuildOptions *opts, GError **error)
{
    gint64 e = opts->epoch;
    if (e == 0) {
        const char *sde = g_getenv("SOURCE_DATE_EPOCH");
        if (sde && *sde) {
            char *end = NULL;
            errno = 0;
            gint64 v = g_ascii_strtoll(sde, &end, 10);
            if (errno || end == sde || *end || v < 0) {
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "SOURCE_DATE_EPOCH '%s' is not a number of seconds", sde);
                return 0;
            }
            e = v;
        }
    }
    if (e < 0 || e > G_MAXINT32) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "timestamp %" G_GINT64_FORMAT " is outside 1970..2038", e);
        return 0;
    }
    return e == 0 ? 1 : (guint32)e;
}

gboolean
ms_image_build(const char *source, const char *path, const MsImageBuildOptions *opts,
               MsImageBuildResult *result, GError **error)
{
    static const MsImageBuildOptions defaults = { 0 };
    static gsize tables_once;
    if (g_once_init_enter(&tables_once)) {
        /* error_message() says "Unknown code ext2 N" without it */
        initialize_ext2_error_table();
        g_once_init_leave(&tables_once, 1);
    }
    if (opts == NULL)
        opts = &defaults;
    if (opts->label && strlen(opts->label) > MS_IMAGE_LABEL_MAX) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "label '%s' is longer than %d bytes",
                    opts->label, MS_IMAGE_LABEL_MAX);
        return FALSE;
    }
    g_autoptr(GError) eerr = NULL;
    guint32 epoch = ms_build_epoch(opts, &eerr);
    if (epoch == 0) {
        g_propagate_error(error, g_steal_pointer(&eerr));
        return FALSE;
    }

    MsBuild b = { 0 };
    b.source = source;
    b.opts = opts;
    b.epoch = epoch;
    b.path_max = opts->path_max ? opts->path_max : MS_IMAGE_PATH_MAX;
    b.listing = g_checksum_new(G_CHECKSUM_SHA256);
    b.warnings = g_ptr_array_new_with_free_func(g_free);
    b.ancestors = g_array_new(FALSE, FALSE, sizeof(MsDevIno));
    b.seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    /* pass 1 reads the content too (ms_count_data_blocks) */
    b.buf = g_malloc(MS_COPY_BUF);
    gboolean ok = FALSE;
    int root_fd = -1;

    if (opts->paths && opts->paths[0]) {
        b.paths = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 0; opts->paths[i]; i++) {
            char *p = ms_image_path_normalize(opts->paths[i], error);
            if (p == NULL)
                goto out;
            g_ptr_array_add(b.paths, p);
        }
        b.matched = g_new0(gboolean, b.paths->len);
    }

    MsSrcDir root_src = { -1, 0 };
    b.root = g_new0(MsNode, 1);
    if (opts->disk) {
        b.disk = ms_image_disk_open(opts->disk, opts->partition, error);
        if (b.disk == NULL)
            goto out;
        g_autofree char *canon = g_canonicalize_filename(source && *source ? source : "/", "/");
        b.disk_path = g_steal_pointer(&canon);
        b.display = g_strdup_printf("%s:%s", ms_image_disk_describe(b.disk), b.disk_path);
        b.source = b.display;
        if (!ms_image_disk_resolve(b.disk, b.disk_path, &root_src.ino, error))
            goto out;
        if (!ms_image_disk_stat(b.disk, root_src.ino, &b.root->st, b.disk_path, error))
            goto out;
        b.disk_dirs = g_hash_table_new(g_direct_hash, g_direct_equal);
        g_hash_table_add(b.disk_dirs, GUINT_TO_POINTER(root_src.ino));
    } else {
        root_fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0) {
            ms_build_errno(&b, NULL, "cannot open the source directory", errno, error);
            goto out;
        }
        root_src.fd = root_fd;
        if (fstat(root_fd, &b.root->st) < 0) {
            ms_build_errno(&b, NULL, "cannot stat", errno, error);
            goto out;
        }
    }
    {
        g_autofree char *lbl = g_strdup_printf("label=%s epoch=%u clamp=%d", opts->label ? opts->label : "",
                                               epoch, opts->clamp_mtime ? 1 : 0);
        g_checksum_update(b.listing, (const guchar *)lbl, strlen(lbl) + 1);
    }
    if (!ms_scan_xattrs(&b, root_src, ".", NULL, b.root, error))
        goto out;
    ms_listing_add(&b, "", b.root, NULL);
    MsDevIno rdi = { b.root->st.st_dev, b.root->st.st_ino };
    g_array_append_val(b.ancestors, rdi);
    {
        g_autoptr(GString) rel = g_string_new(NULL);
        if (!ms_scan_dir(&b, root_src, b.root, rel, 0, b.paths ? MS_SEL_PARTIAL : MS_SEL_ALL, error))
            goto out;
    }
    if (opts->usr && !ms_build_check_usr(&b, error))
        goto out;
    for (guint i = 0; b.paths && i < b.paths->len; i++) {
        if (!b.matched[i]) {
            ms_build_errno(&b, g_ptr_array_index(b.paths, i), "selected path", ENOENT, error);
            goto out;
        }
    }

    guint8 digest[32];
    gsize dlen = sizeof(digest);
    g_checksum_get_digest(b.listing, digest, &dlen);
    digest[6] = (digest[6] & 0x0f) | 0x80;   /* RFC 9562 version 8: custom */
    digest[8] = (digest[8] & 0x3f) | 0x80;

    /* root, lost+found, reserved inodes, and some room */
    guint64 inodes = b.inodes + EXT2_GOOD_OLD_FIRST_INO + 2;
    inodes += inodes / 16 + 16;
    guint64 data = b.blocks + 4;
    data += data / 32 + 64;

    for (guint attempt = 0; attempt < MS_BUILD_ATTEMPTS; attempt++) {
        /* group tables: 256-byte inodes, bitmaps, descriptors and backups */
        guint64 meta = inodes * MS_INODE_SIZE / MS_BS + 2 * (data / 32768 + 1) + 64;
        guint64 blocks = data + meta;
        blocks = (blocks + (MS_IMAGE_SIZE_ALIGN / MS_BS) - 1) / (MS_IMAGE_SIZE_ALIGN / MS_BS) *
                 (MS_IMAGE_SIZE_ALIGN / MS_BS);
        guint64 bytes = blocks * MS_BS;
        if (opts->max_size && bytes > opts->max_size) {
            g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                        "%s: the tree needs an image of %" G_GUINT64_FORMAT " bytes, more than the limit of %"
                        G_GUINT64_FORMAT, b.source, bytes, opts->max_size);
            goto out;
        }

        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            int e = errno;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot create: %s", path, g_strerror(e));
            goto out;
        }
        if (ftruncate(fd, bytes) < 0) {
            int e = errno;
            close(fd);
            unlink(path);
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot size to %" G_GUINT64_FORMAT " bytes: %s",
                        path, bytes, g_strerror(e));
            goto out;
        }
        g_clear_pointer(&b.links, g_hash_table_unref);
        b.links = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        b.no_space = FALSE;
        g_autoptr(GError) lerr = NULL;
        gboolean built = ms_build_fs(&b, root_src, path, blocks, inodes, digest, &lerr);
        ms_fs_close(&b.fs);
        if (!built) {
            close(fd);
            unlink(path);
            if (b.no_space && attempt + 1 < MS_BUILD_ATTEMPTS) {
                g_debug("image build: %s; retrying with more room", lerr->message);
                data = data * 2 + 256;
                inodes = inodes * 2 + 64;
                continue;
            }
            g_propagate_error(error, g_steal_pointer(&lerr));
            goto out;
        }
        if (fsync(fd) < 0) {
            int e = errno;
            close(fd);
            unlink(path);
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: fsync: %s", path, g_strerror(e));
            goto out;
        }
        if (result) {
            memset(result, 0, sizeof(*result));
            if (!ms_image_sha256_fd(fd, result->sha256, NULL, path, error)) {
                close(fd);
                unlink(path);
                goto out;
            }
            result->size = bytes;
            result->files = b.files;
            result->blocks_used = b.blocks_used;
            g_snprintf(result->uuid, sizeof(result->uuid),
                       "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                       digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6],
                       digest[7], digest[8], digest[9], digest[10], digest[11], digest[12], digest[13],
                       digest[14], digest[15]);
            result->warnings = g_steal_pointer(&b.warnings);
            result->partition = b.disk ? ms_image_disk_partition(b.disk) : 0;
        }
        close(fd);
        ok = TRUE;
        break;
    }
out:
    if (root_fd >= 0)
        close(root_fd);
    ms_build_clear(&b);
    return ok;
}
