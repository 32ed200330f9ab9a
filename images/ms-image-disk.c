/* images/ms-image-disk.c: a guest's ext2/3/4 disk as the builder's source
 * (ms-image-disk.h), read-only through libext2fs. This file owns finding the
 * file system (whole disk, MBR or GPT partition; refusing qcow2 and other
 * container formats), and turning what libext2fs reads into what lstat,
 * readlink, llistxattr and SEEK_DATA would say for a mounted copy, so that
 * ms-image-build.c builds the same bytes from a disk as from the same tree
 * as a directory. Every value comes from a possibly hostile disk: each is
 * checked before it reaches the builder. */
#include "ms-image-disk.h"
#include "ms-error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#define MS_DISK_SECTOR 512
#define MS_EXT_MAGIC_OFF 1080   /* superblock at 1024, s_magic at +56 */
#define MS_GPT_ENTRIES_MAX 1024
/* ext4 with 4 KiB blocks: 2^32 blocks per file */
#define MS_EXT4_FILE_MAX (16ULL << 40)
#define MS_DISK_READ_CHUNK (1024 * 1024)

struct MsImageDisk {
    char *describe;
    guint partition;
    ext2_filsys fs;
    guint64 fs_bytes;
};

void
ms_image_disk_free(MsImageDisk *d)
{
    if (d == NULL)
        return;
    if (d->fs)
        ext2fs_close_free(&d->fs);
    g_free(d->describe);
    g_free(d);
}

const char *
ms_image_disk_describe(const MsImageDisk *d)
{
    return d->describe;
}

guint
ms_image_disk_partition(const MsImageDisk *d)
{
    return d->partition;
}

static gboolean
ms_disk_pread(int fd, guint8 *buf, gsize len, guint64 off)
{
    gsize got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, off + got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return FALSE;
        got += r;
    }
    return TRUE;
}

static gboolean
ms_disk_has_ext(int fd, guint64 offset)
{
    guint8 m[2];
    return ms_disk_pread(fd, m, 2, offset + MS_EXT_MAGIC_OFF) && m[0] == 0x53 && m[1] == 0xef;
}

/* Little-endian fields of on-disk tables, read through memcpy: a table
 * entry sits at any byte offset (MBR entries at 446 + 16 i), and a cast
 * load there is undefined (UBSan: misaligned address). */
static guint32
ms_disk_le32(const guint8 *p)
{
    guint32 v;
    memcpy(&v, p, sizeof(v));
    return GUINT32_FROM_LE(v);
}

static guint64
ms_disk_le64(const guint8 *p)
{
    guint64 v;
    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

typedef struct {
    guint number;
    guint64 offset;
    guint64 size;
} MsPart;

/* The partitions of an MBR or GPT disk (Linux numbering). Extended MBR
 * partitions (logical drives) are not followed. */
static GArray *
ms_disk_partitions(int fd, guint64 disk_size)
{
    GArray *parts = g_array_new(FALSE, FALSE, sizeof(MsPart));
    guint8 mbr[MS_DISK_SECTOR];
    if (!ms_disk_pread(fd, mbr, sizeof(mbr), 0) || mbr[510] != 0x55 || mbr[511] != 0xaa)
        return parts;
    gboolean gpt = FALSE;
    for (guint i = 0; i < 4; i++) {
        const guint8 *e = mbr + 446 + 16 * i;
        guint8 type = e[4];
        guint64 start = (guint64)ms_disk_le32(e + 8) * MS_DISK_SECTOR;
        guint64 len = (guint64)ms_disk_le32(e + 12) * MS_DISK_SECTOR;
        if (type == 0xee)
            gpt = TRUE;
        if (type == 0 || type == 0xee || type == 0x05 || type == 0x0f || type == 0x85 || len == 0)
            continue;
        MsPart p = { i + 1, start, len };
        g_array_append_val(parts, p);
    }
    if (!gpt)
        return parts;
    g_array_set_size(parts, 0);
    guint8 hdr[MS_DISK_SECTOR];
    if (!ms_disk_pread(fd, hdr, sizeof(hdr), MS_DISK_SECTOR) || memcmp(hdr, "EFI PART", 8) != 0)
        return parts;
    guint64 lba = ms_disk_le64(hdr + 72);
    guint32 count = ms_disk_le32(hdr + 80);
    guint32 esize = ms_disk_le32(hdr + 84);
    if (count > MS_GPT_ENTRIES_MAX || esize < 128 || esize > 4096 || lba > disk_size / MS_DISK_SECTOR)
        return parts;
    g_autofree guint8 *ents = g_malloc((gsize)count * esize);
    if (!ms_disk_pread(fd, ents, (gsize)count * esize, lba * MS_DISK_SECTOR))
        return parts;
    static const guint8 zero[16];
    for (guint32 i = 0; i < count; i++) {
        const guint8 *e = ents + (gsize)i * esize;
        if (memcmp(e, zero, 16) == 0)
            continue;
        guint64 first = ms_disk_le64(e + 32);
        guint64 last = ms_disk_le64(e + 40);
        if (last < first || last >= disk_size / MS_DISK_SECTOR)
            continue;
        MsPart p = { i + 1, first * MS_DISK_SECTOR, (last - first + 1) * MS_DISK_SECTOR };
        g_array_append_val(parts, p);
    }
    return parts;
}

/* Container formats a libvirt disk often is: refused with the way out. */
static const char *
ms_disk_container(const guint8 *head)
{
    if (memcmp(head, "QFI\xfb", 4) == 0)
        return "qcow2";
    if (memcmp(head, "KDMV", 4) == 0)
        return "vmdk";
    if (memcmp(head, "vhdxfile", 8) == 0)
        return "vhdx";
    if (memcmp(head + 64, "\x7f\x10\xda\xbe", 4) == 0)
        return "vdi";
    return NULL;
}

MsImageDisk *
ms_image_disk_open(const char *disk, guint partition, GError **error)
{
    static gsize tables_once;
    if (g_once_init_enter(&tables_once)) {
        initialize_ext2_error_table();
        g_once_init_leave(&tables_once, 1);
    }
    int fd = open(disk, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, e == ENOENT ? MS_ERROR_NOT_FOUND : MS_ERROR_FAILED, "disk %s: %s", disk,
                    g_strerror(e));
        return NULL;
    }
    struct stat st;
    guint64 disk_size = 0;
    if (fstat(fd, &st) == 0) {
        if (S_ISBLK(st.st_mode)) {
            off_t end = lseek(fd, 0, SEEK_END);
            disk_size = end > 0 ? (guint64)end : 0;
        } else if (S_ISREG(st.st_mode)) {
            disk_size = st.st_size;
        }
    }
    if (disk_size == 0) {
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "disk %s: not a regular file or block device, or empty",
                    disk);
        return NULL;
    }
    guint8 head[MS_DISK_SECTOR] = { 0 };
    (void)ms_disk_pread(fd, head, MIN(sizeof(head), disk_size), 0);
    const char *container = ms_disk_container(head);
    if (container) {
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "disk %s: is a %s image, not a raw disk; convert it first "
                    "(qemu-img convert -O raw %s DISK.raw) and build from the raw copy",
                    disk, container, disk);
        return NULL;
    }

    guint64 offset = 0;
    g_autofree char *describe = NULL;
    g_autoptr(GArray) parts = ms_disk_partitions(fd, disk_size);
    if (partition == 0 && ms_disk_has_ext(fd, 0)) {
        describe = g_strdup(disk);
    } else if (partition > 0) {
        const MsPart *found = NULL;
        for (guint i = 0; i < parts->len; i++)
            if (g_array_index(parts, MsPart, i).number == partition)
                found = &g_array_index(parts, MsPart, i);
        if (found == NULL) {
            close(fd);
            g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "disk %s: no partition %u (%u partition%s found)",
                        disk, partition, parts->len, parts->len == 1 ? "" : "s");
            return NULL;
        }
        offset = found->offset;
        describe = g_strdup_printf("%s partition %u", disk, partition);
    } else {
        g_autoptr(GString) ext = g_string_new(NULL);
        guint n = 0;
        for (guint i = 0; i < parts->len; i++) {
            const MsPart *p = &g_array_index(parts, MsPart, i);
            if (!ms_disk_has_ext(fd, p->offset))
                continue;
            g_string_append_printf(ext, "%s%u", n ? ", " : "", p->number);
            offset = p->offset;
            partition = p->number;
            n++;
        }
        if (n != 1) {
            close(fd);
            if (n == 0)
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "disk %s: no ext2/3/4 file system, neither on the whole disk nor on one of its %u "
                            "partition%s", disk, parts->len, parts->len == 1 ? "" : "s");
            else
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "disk %s: partitions %s hold ext file systems: choose one with --partition N",
                            disk, ext->str);
            return NULL;
        }
        describe = g_strdup_printf("%s partition %u", disk, partition);
    }
    if (partition > 0 && !ms_disk_has_ext(fd, offset)) {
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: not an ext2/3/4 file system", describe);
        return NULL;
    }
    close(fd);

    g_autofree char *io_opts = offset ? g_strdup_printf("offset=%" G_GUINT64_FORMAT, offset) : NULL;
    ext2_filsys fs = NULL;
    /* read-only; checksum errors stay errors: a corrupted disk is refused */
    errcode_t err = ext2fs_open2(disk, io_opts, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
    if (err) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: cannot open the file system: %s", describe,
                    error_message(err));
        return NULL;
    }
    g_autoptr(MsImageDisk) d = g_new0(MsImageDisk, 1);
    d->fs = fs;
    d->describe = g_steal_pointer(&describe);
    d->partition = partition;
    d->fs_bytes = ext2fs_blocks_count(fs->super) * (guint64)fs->blocksize;
    if (ext2fs_has_feature_journal_needs_recovery(fs->super)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: the journal needs recovery (the guest is running or was not shut down cleanly); "
                    "shut the guest down, or run e2fsck on a copy", d->describe);
        return NULL;
    }
    if (fs->super->s_state & EXT2_ERROR_FS) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: the file system is marked as having errors; run e2fsck on it (or on a copy) first",
                    d->describe);
        return NULL;
    }
    if (offset + d->fs_bytes > disk_size) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: the file system claims %" G_GUINT64_FORMAT " bytes, the disk has only %" G_GUINT64_FORMAT
                    " from its start (truncated disk?)", d->describe, d->fs_bytes, disk_size - offset);
        return NULL;
    }
    return g_steal_pointer(&d);
}

static gboolean
ms_disk_ext2(const MsImageDisk *d, const char *where, const char *what, errcode_t err, GError **error)
{
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s:%s: %s: %s", d->describe, where, what,
                error_message(err));
    return FALSE;
}

static gboolean
ms_disk_bad(const MsImageDisk *d, const char *where, const char *why, GError **error)
{
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s:%s: %s", d->describe, where, why);
    return FALSE;
}

static gboolean
ms_disk_inode_ok(const MsImageDisk *d, ext2_ino_t ino)
{
    return ino == EXT2_ROOT_INO ||
           (ino >= EXT2_FIRST_INODE(d->fs->super) && ino <= d->fs->super->s_inodes_count);
}

gboolean
ms_image_disk_resolve(MsImageDisk *d, const char *path, guint32 *out, GError **error)
{
    if (path == NULL || path[0] != '/')
        return ms_disk_bad(d, path ? path : "", "the path inside the disk must be absolute", error);
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);
    ext2_ino_t ino = EXT2_ROOT_INO;
    g_autoptr(GString) so_far = g_string_new(NULL);
    for (guint i = 0; parts[i]; i++) {
        if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0)
            continue;
        g_string_append_c(so_far, '/');
        g_string_append(so_far, parts[i]);
        if (strcmp(parts[i], "..") == 0)
            return ms_disk_bad(d, so_far->str, "'..' is not allowed", error);
        ext2_ino_t child = 0;
        errcode_t err = ext2fs_lookup(d->fs, ino, parts[i], strlen(parts[i]), NULL, &child);
        if (err == EXT2_ET_FILE_NOT_FOUND) {
            g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "%s:%s: no such file or directory", d->describe,
                        so_far->str);
            return FALSE;
        }
        if (err)
            return ms_disk_ext2(d, so_far->str, "cannot look up", err, error);
        if (!ms_disk_inode_ok(d, child))
            return ms_disk_bad(d, so_far->str, "names an invalid inode", error);
        struct ext2_inode in;
        err = ext2fs_read_inode(d->fs, child, &in);
        if (err)
            return ms_disk_ext2(d, so_far->str, "cannot read inode", err, error);
        if (LINUX_S_ISLNK(in.i_mode))
            return ms_disk_bad(d, so_far->str,
                               "is a symbolic link (not followed inside a disk: give the path it points to)",
                               error);
        if (!LINUX_S_ISDIR(in.i_mode))
            return ms_disk_bad(d, so_far->str, "is not a directory", error);
        ino = child;
    }
    *out = ino;
    return TRUE;
}

typedef struct {
    const MsImageDisk *d;
    const char *where;
    GPtrArray *names;
    GArray *inos;
    GError *error;
} MsDirWalk;

static int
ms_disk_dirent(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset, int blocksize, char *buf,
               void *priv)
{
    (void)dir; (void)offset; (void)blocksize; (void)buf;
    MsDirWalk *w = priv;
    if (entry == DIRENT_DOT_FILE || entry == DIRENT_DOT_DOT_FILE || entry == DIRENT_CHECKSUM ||
        entry == DIRENT_DELETED_FILE || dirent->inode == 0)
        return 0;
    int len = ext2fs_dirent_name_len(dirent);
    g_autofree char *name = g_strndup(dirent->name, len);
    g_autofree char *printable = g_strescape(name, NULL);
    if (len == 0 || (int)strlen(name) != len || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0) {
        g_autofree char *why = g_strdup_printf("an entry named \"%s\" (%d bytes) cannot be a file name "
                                               "(contains '/' or NUL, or is empty, '.' or '..')", printable, len);
        ms_disk_bad(w->d, w->where, why, &w->error);
        return DIRENT_ABORT;
    }
    if (!ms_disk_inode_ok(w->d, dirent->inode)) {
        g_autofree char *why = g_strdup_printf("entry \"%s\" names inode %u, which no file can have", printable,
                                               dirent->inode);
        ms_disk_bad(w->d, w->where, why, &w->error);
        return DIRENT_ABORT;
    }
    g_ptr_array_add(w->names, g_steal_pointer(&name));
    guint32 ino = dirent->inode;
    g_array_append_val(w->inos, ino);
    return 0;
}

gboolean
ms_image_disk_list(MsImageDisk *d, guint32 ino, const char *where, GPtrArray *names, GArray *inos,
                   GError **error)
{
    MsDirWalk w = { d, where, names, inos, NULL };
    errcode_t err = ext2fs_dir_iterate2(d->fs, ino, 0, NULL, ms_disk_dirent, &w);
    if (w.error) {
        g_propagate_error(error, w.error);
        return FALSE;
    }
    if (err)
        return ms_disk_ext2(d, where, "cannot read directory", err, error);
    return TRUE;
}

static gint64
ms_disk_xtime(guint32 lo, guint32 extra, gboolean has_extra)
{
    /* 32 signed bits, plus two epoch bits in the _extra field */
    gint64 t = (gint32)lo;
    if (has_extra)
        t += (gint64)(extra & 3) << 32;
    return t;
}

gboolean
ms_image_disk_stat(MsImageDisk *d, guint32 ino, struct stat *st, const char *where, GError **error)
{
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    errcode_t err = ext2fs_read_inode_full(d->fs, ino, (struct ext2_inode *)&in, sizeof(in));
    if (err)
        return ms_disk_ext2(d, where, "cannot read inode", err, error);
    if (in.i_links_count == 0 || in.i_dtime != 0) {
        g_autofree char *why = g_strdup_printf("entry names inode %u, which is not in use", ino);
        return ms_disk_bad(d, where, why, error);
    }
    if (in.i_flags & EXT4_ENCRYPT_FL)
        return ms_disk_bad(d, where, "is encrypted (fscrypt): its names and data cannot be read", error);
    memset(st, 0, sizeof(*st));
    st->st_dev = 0;
    st->st_ino = ino;
    st->st_mode = in.i_mode;
    st->st_nlink = in.i_links_count;
    st->st_uid = inode_uid(in);
    st->st_gid = inode_gid(in);
    guint64 size = EXT2_I_SIZE(&in);
    if (LINUX_S_ISREG(in.i_mode) && size > MS_EXT4_FILE_MAX) {
        g_autofree char *why = g_strdup_printf("size %" G_GUINT64_FORMAT " bytes is more than an ext4 file can "
                                               "have (16 TiB)", size);
        return ms_disk_bad(d, where, why, error);
    }
    st->st_size = size;
    st->st_blocks = ext2fs_get_stat_i_blocks(d->fs, (struct ext2_inode *)&in);
    st->st_blksize = d->fs->blocksize;
    gboolean extra = EXT2_INODE_SIZE(d->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
                     in.i_extra_isize >= offsetof(struct ext2_inode_large, i_mtime_extra) + 4 -
                                         EXT2_GOOD_OLD_INODE_SIZE;
    st->st_mtime = ms_disk_xtime(in.i_mtime, in.i_mtime_extra, extra);
    st->st_atime = ms_disk_xtime(in.i_atime, in.i_atime_extra, extra);
    st->st_ctime = ms_disk_xtime(in.i_ctime, in.i_ctime_extra, extra);
    if (LINUX_S_ISCHR(in.i_mode) || LINUX_S_ISBLK(in.i_mode)) {
        /* the kernel's old and new encodings (ext4_iget) */
        if (in.i_block[0]) {
            guint32 v = in.i_block[0];
            st->st_rdev = makedev((v >> 8) & 0xff, v & 0xff);
        } else {
            guint32 v = in.i_block[1];
            st->st_rdev = makedev((v & 0xfff00) >> 8, (v & 0xff) | ((v >> 12) & 0xfff00));
        }
    }
    /* a file that claims to be fully allocated cannot be larger than the
     * file system (sparse files are counted by their extents instead) */
    if (LINUX_S_ISREG(in.i_mode) && (guint64)st->st_blocks * 512 >= size && size > d->fs_bytes) {
        g_autofree char *why = g_strdup_printf("size %" G_GUINT64_FORMAT " bytes is larger than the whole file "
                                               "system (%" G_GUINT64_FORMAT " bytes)", size, d->fs_bytes);
        return ms_disk_bad(d, where, why, error);
    }
    return TRUE;
}

/* Reads [OFF, OFF + LEN) of the file system (bytes) into BUF. */
static gboolean
ms_disk_read_phys(MsImageDisk *d, guint64 off, guint8 *buf, gsize len, const char *where, GError **error)
{
    guint bs = d->fs->blocksize;
    while (len > 0) {
        guint64 first = off / bs;
        gsize skip = off % bs;
        gsize take = MIN(len, (gsize)MS_DISK_READ_CHUNK - skip);
        guint64 nblk = (skip + take + bs - 1) / bs;
        if ((first + nblk) * bs > d->fs_bytes)
            return ms_disk_bad(d, where, "data lies outside the file system", error);
        g_autofree guint8 *tmp = g_malloc(nblk * bs);
        errcode_t err = io_channel_read_blk64(d->fs->io, first, (int)nblk, tmp);
        if (err)
            return ms_disk_ext2(d, where, "cannot read data", err, error);
        memcpy(buf, tmp + skip, take);
        buf += take;
        off += take;
        len -= take;
    }
    return TRUE;
}

char *
ms_image_disk_readlink(MsImageDisk *d, guint32 ino, gsize len, const char *where, GError **error)
{
    struct ext2_inode in;
    errcode_t err = ext2fs_read_inode(d->fs, ino, &in);
    if (err) {
        ms_disk_ext2(d, where, "cannot read inode", err, error);
        return NULL;
    }
    g_autofree char *target = g_malloc0(len + 1);
    if (ext2fs_is_fast_symlink(&in) && !(in.i_flags & EXT4_INLINE_DATA_FL)) {
        if (len >= sizeof(in.i_block)) {
            ms_disk_bad(d, where, "fast symbolic link longer than its inode", error);
            return NULL;
        }
        memcpy(target, in.i_block, len);
    } else {
        ext2_file_t f = NULL;
        err = ext2fs_file_open(d->fs, ino, 0, &f);
        unsigned int got = 0;
        if (!err)
            err = ext2fs_file_read(f, target, len, &got);
        if (f)
            ext2fs_file_close(f);
        if (err) {
            ms_disk_ext2(d, where, "cannot read symbolic link", err, error);
            return NULL;
        }
        if (got != len) {
            ms_disk_bad(d, where, "symbolic link target is shorter than its size", error);
            return NULL;
        }
    }
    if (strlen(target) != len) {
        ms_disk_bad(d, where, "symbolic link target contains a NUL byte", error);
        return NULL;
    }
    return g_steal_pointer(&target);
}

typedef struct {
    GPtrArray *names;
} MsXattrNames;

static int
ms_disk_xattr_name(char *name, char *value, size_t value_len, void *data)
{
    (void)value; (void)value_len;
    MsXattrNames *x = data;
    g_ptr_array_add(x->names, g_strdup(name));
    return 0;
}

/* libext2fs hands out id 0 for the ACL entries without one (owner, owning
 * group, mask, other); the kernel's lgetxattr gives ACL_UNDEFINED_ID there.
 * Same bytes as from a directory tree, so the same image. */
static void
ms_disk_acl_ids(void *val, size_t len)
{
    guint8 *p = val;
    if (len < 4 || (len - 4) % 8 != 0 || GUINT32_FROM_LE(*(guint32 *)p) != 2)
        return;
    for (size_t off = 4; off + 8 <= len; off += 8) {
        guint16 tag = GUINT16_FROM_LE(*(guint16 *)(p + off));
        if (tag != 0x02 && tag != 0x08)   /* ACL_USER, ACL_GROUP carry ids */
            *(guint32 *)(p + off + 4) = GUINT32_TO_LE(0xffffffffu);
    }
}

gboolean
ms_image_disk_xattrs(MsImageDisk *d, guint32 ino, const char *where, GPtrArray *names, GPtrArray *values,
                     GError **error)
{
    if (!ext2fs_has_feature_xattr(d->fs->super))
        return TRUE;
    struct ext2_xattr_handle *h = NULL;
    errcode_t err = ext2fs_xattrs_open(d->fs, ino, &h);
    if (!err)
        err = ext2fs_xattrs_read(h);
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(g_free);
    MsXattrNames xn = { all };
    if (!err)
        err = ext2fs_xattrs_iterate(h, ms_disk_xattr_name, &xn);
    for (guint i = 0; !err && i < all->len; i++) {
        const char *n = g_ptr_array_index(all, i);
        /* inline data is file content, not an attribute */
        if (strcmp(n, "system.data") == 0)
            continue;
        void *val = NULL;
        size_t vl = 0;
        /* ext2fs_xattr_get hands POSIX ACLs out in the kernel's xattr
         * format, as lgetxattr does */
        err = ext2fs_xattr_get(h, n, &val, &vl);
        if (err)
            break;
        if (g_str_has_prefix(n, "system.posix_acl_"))
            ms_disk_acl_ids(val, vl);
        g_ptr_array_add(names, g_strdup(n));
        g_ptr_array_add(values, g_bytes_new(val, vl));
        ext2fs_free_mem(&val);
    }
    if (h)
        ext2fs_xattrs_close(&h);
    if (err)
        return ms_disk_ext2(d, where, "cannot read extended attributes", err, error);
    return TRUE;
}

typedef struct {
    MsImageDisk *d;
    GArray *out;
    guint64 size;
} MsBlockWalk;

static void
ms_extent_add(GArray *out, guint64 off, guint64 len, guint64 phys, guint64 size)
{
    if (off >= size || len == 0)
        return;
    len = MIN(len, size - off);
    if (out->len) {
        MsImageDiskExtent *last = &g_array_index(out, MsImageDiskExtent, out->len - 1);
        if (last->offset + last->len == off && last->phys + last->len == phys) {
            last->len += len;
            return;
        }
    }
    MsImageDiskExtent e = { off, len, phys };
    g_array_append_val(out, e);
}

static int
ms_disk_block(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk, int ref_offset, void *priv)
{
    (void)ref_blk; (void)ref_offset;
    MsBlockWalk *w = priv;
    if (blockcnt < 0)
        return 0;
    ms_extent_add(w->out, (guint64)blockcnt * fs->blocksize, fs->blocksize, *blocknr * (guint64)fs->blocksize,
                  w->size);
    return (guint64)blockcnt * fs->blocksize >= w->size ? BLOCK_ABORT : 0;
}

static int
ms_extent_cmp(gconstpointer a, gconstpointer b)
{
    const MsImageDiskExtent *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

GArray *
ms_image_disk_extents(MsImageDisk *d, guint32 ino, guint64 size, const char *where, GError **error)
{
    struct ext2_inode in;
    errcode_t err = ext2fs_read_inode(d->fs, ino, &in);
    if (err) {
        ms_disk_ext2(d, where, "cannot read inode", err, error);
        return NULL;
    }
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(MsImageDiskExtent));
    guint bs = d->fs->blocksize;
    if (in.i_flags & EXT4_INLINE_DATA_FL) {
        size_t isz = 0;
        err = ext2fs_inline_data_size(d->fs, ino, &isz);
        if (err) {
            ms_disk_ext2(d, where, "cannot read inline data", err, error);
            return NULL;
        }
        ms_extent_add(out, 0, isz, G_MAXUINT64, size);
        return g_steal_pointer(&out);
    }
    if (in.i_flags & EXT4_EXTENTS_FL) {
        ext2_extent_handle_t h = NULL;
        err = ext2fs_extent_open2(d->fs, ino, &in, &h);
        if (err) {
            ms_disk_ext2(d, where, "cannot read the extent tree", err, error);
            return NULL;
        }
        struct ext2fs_extent e;
        guint64 steps = 0, blocks = ext2fs_blocks_count(d->fs->super), next_lblk = 0, mapped = 0;
        err = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &e);
        while (!err) {
            if (++steps > blocks + 16) {
                err = EXT2_ET_EXTENT_HEADER_BAD;
                break;
            }
            if ((e.e_flags & EXT2_EXTENT_FLAGS_LEAF) && !(e.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT)) {
                if (e.e_pblk + e.e_len > blocks || e.e_pblk < d->fs->super->s_first_data_block) {
                    ext2fs_extent_free(h);
                    ms_disk_bad(d, where, "an extent lies outside the file system", error);
                    return NULL;
                }
                /* leaves come in logical order: refuse overlaps (and a
                 * tree mapping more than the file system) as they come,
                 * before collecting more of them */
                mapped += e.e_len;
                if (e.e_lblk < next_lblk || mapped > blocks) {
                    ext2fs_extent_free(h);
                    ms_disk_bad(d, where, "extents overlap (corrupted extent tree)", error);
                    return NULL;
                }
                next_lblk = e.e_lblk + e.e_len;
                /* unwritten extents read as zeros: not data */
                if (!(e.e_flags & EXT2_EXTENT_FLAGS_UNINIT))
                    ms_extent_add(out, e.e_lblk * (guint64)bs, e.e_len * (guint64)bs, e.e_pblk * (guint64)bs,
                                  size);
            }
            err = ext2fs_extent_get(h, EXT2_EXTENT_NEXT_LEAF, &e);
        }
        ext2fs_extent_free(h);
        if (err != EXT2_ET_EXTENT_NO_NEXT && err != EXT2_ET_NO_CURRENT_NODE) {
            ms_disk_ext2(d, where, "cannot read the extent tree", err, error);
            return NULL;
        }
    } else {
        MsBlockWalk w = { d, out, size };
        err = ext2fs_block_iterate3(d->fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, NULL, ms_disk_block,
                                    &w);
        if (err) {
            ms_disk_ext2(d, where, "cannot read the block map", err, error);
            return NULL;
        }
    }
    g_array_sort(out, ms_extent_cmp);
    for (guint i = 0; i < out->len; i++) {
        const MsImageDiskExtent *e = &g_array_index(out, MsImageDiskExtent, i);
        if (e->phys + e->len > d->fs_bytes + bs) {
            ms_disk_bad(d, where, "an extent lies outside the file system", error);
            return NULL;
        }
        if (i > 0) {
            const MsImageDiskExtent *p = &g_array_index(out, MsImageDiskExtent, i - 1);
            if (p->offset + p->len > e->offset) {
                ms_disk_bad(d, where, "extents overlap (corrupted extent tree)", error);
                return NULL;
            }
        }
    }
    return g_steal_pointer(&out);
}

gboolean
ms_image_disk_pread(MsImageDisk *d, guint32 ino, const GArray *extents, guint8 *buf, gsize len,
                    guint64 offset, const char *where, GError **error)
{
    memset(buf, 0, len);
    guint64 end = offset + len;
    /* sorted, not overlapping: start at the first extent ending after
     * OFFSET (bisection), stop at the first starting after END */
    guint lo = 0, hi = extents->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const MsImageDiskExtent *m = &g_array_index(extents, MsImageDiskExtent, mid);
        if (m->offset + m->len <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (guint i = lo; i < extents->len; i++) {
        const MsImageDiskExtent *e = &g_array_index(extents, MsImageDiskExtent, i);
        if (e->offset >= end)
            break;
        guint64 a = MAX(offset, e->offset), b = MIN(end, e->offset + e->len);
        if (a >= b)
            continue;
        if (e->phys == G_MAXUINT64) {
            /* inline data: at most a few hundred bytes */
            struct ext2_inode_large in;
            errcode_t err = ext2fs_read_inode_full(d->fs, ino, (struct ext2_inode *)&in, sizeof(in));
            size_t isz = 0;
            if (!err)
                err = ext2fs_inline_data_size(d->fs, ino, &isz);
            g_autofree guint8 *tmp = err ? NULL : g_malloc0(MAX(isz, b));
            if (!err)
                err = ext2fs_inline_data_get(d->fs, ino, (struct ext2_inode *)&in, tmp, &isz);
            if (err)
                return ms_disk_ext2(d, where, "cannot read inline data", err, error);
            memcpy(buf + (a - offset), tmp + a, b - a);
            continue;
        }
        if (!ms_disk_read_phys(d, e->phys + (a - e->offset), buf + (a - offset), b - a, where, error))
            return FALSE;
    }
    return TRUE;
}
