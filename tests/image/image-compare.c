/* tests/image/image-compare.c: see image-compare.h. The comparison reads the
 * image with libext2fs only (independently of the builder's own code paths
 * where possible: directory iteration, ext2fs_file_read, the xattr API). */
#include "image-compare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

int
ms_test_run(const char *const *argv, char **output)
{
    g_autofree char *out = NULL, *err = NULL;
    int status = 0;
    g_autoptr(GError) error = NULL;
    gboolean ok = g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                               &status, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
    if (output)
        *output = g_strconcat(out ? out : "", err ? err : "", NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *
ms_test_file_sha256(const char *path)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &data, &len, NULL))
        return NULL;
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
}

static void
write_file(const char *dir, const char *name, const char *data, gssize len)
{
    g_autofree char *p = g_build_filename(dir, name, NULL);
    /* not g_file_set_contents: its temp name would exceed 255 bytes */
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    gsize n = len < 0 ? strlen(data) : (gsize)len;
    g_assert_cmpint(write(fd, data, n), ==, (gssize)n);
    close(fd);
}

void
ms_test_make_tree(const char *dir)
{
    g_autofree char *p = NULL;
    write_file(dir, "hello.txt", "hello, world\n", -1);
    write_file(dir, "with space", "space\n", -1);
    write_file(dir, "new\nline", "newline\n", -1);
    write_file(dir, "ütf8-名前", "utf8\n", -1);
    write_file(dir, "-leading-dash", "dash\n", -1);
    write_file(dir, "empty", "", 0);
    char longname[256];
    memset(longname, 'L', 255);
    longname[255] = '\0';
    write_file(dir, longname, "255 bytes of name\n", -1);

    /* content in several blocks, odd size */
    GString *big = g_string_new(NULL);
    for (guint i = 0; i < 50000; i++)
        g_string_append_printf(big, "%u,", i * 2654435761u);
    write_file(dir, "big.bin", big->str, big->len);
    g_string_free(big, TRUE);

    /* hard links: three names, one inode */
    p = g_build_filename(dir, "hello.txt", NULL);
    g_autofree char *h1 = g_build_filename(dir, "hard1", NULL);
    g_assert_cmpint(link(p, h1), ==, 0);
    g_autofree char *sub = g_build_filename(dir, "sub", NULL);
    g_assert_cmpint(mkdir(sub, 0750), ==, 0);
    g_autofree char *h2 = g_build_filename(sub, "hard2", NULL);
    g_assert_cmpint(link(p, h2), ==, 0);
    g_assert_cmpint(chown(p, 1234, 5678), ==, 0);

    /* symlinks: fast (< 60 bytes), slow, dangling, to a directory */
    g_autofree char *s1 = g_build_filename(dir, "fast-link", NULL);
    g_assert_cmpint(symlink("hello.txt", s1), ==, 0);
    char slow[300];
    memset(slow, 's', sizeof(slow) - 1);
    slow[sizeof(slow) - 1] = '\0';
    g_autofree char *s2 = g_build_filename(dir, "slow-link", NULL);
    g_assert_cmpint(symlink(slow, s2), ==, 0);
    g_autofree char *s3 = g_build_filename(sub, "dir-link", NULL);
    g_assert_cmpint(symlink("..", s3), ==, 0);
    g_assert_cmpint(lchown(s3, 42, 43), ==, 0);

    /* devices and a fifo (we run as root) */
    g_autofree char *c = g_build_filename(dir, "null-dev", NULL);
    g_assert_cmpint(mknod(c, S_IFCHR | 0666, makedev(1, 3)), ==, 0);
    g_autofree char *bl = g_build_filename(dir, "block-dev", NULL);
    g_assert_cmpint(mknod(bl, S_IFBLK | 0660, makedev(259, 70000)), ==, 0);
    g_autofree char *ff = g_build_filename(dir, "fifo", NULL);
    g_assert_cmpint(mkfifo(ff, 0620), ==, 0);

    /* sparse: holes at the start, middle and end; one beyond 4 GiB */
    g_autofree char *sp = g_build_filename(dir, "sparse", NULL);
    int fd = open(sp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    g_assert_cmpint(fd, >=, 0);
    for (guint i = 0; i < 12; i++)
        g_assert_cmpint(pwrite(fd, "data", 4, (off_t)i * 1024 * 1024 + 100), ==, 4);
    g_assert_cmpint(pwrite(fd, "far", 3, (off_t)5 * 1024 * 1024 * 1024), ==, 3);
    g_assert_cmpint(ftruncate(fd, (off_t)5 * 1024 * 1024 * 1024 + 8192), ==, 0);
    close(fd);
    /* zeros written as data: stored as holes, read back as zeros */
    g_autofree char *zeros = g_malloc0(64 * 1024);
    write_file(dir, "zeros", zeros, 64 * 1024);

    /* modes: setuid, setgid dir, sticky */
    g_autofree char *suid = g_build_filename(dir, "big.bin", NULL);
    g_assert_cmpint(chmod(suid, 04755), ==, 0);
    g_autofree char *sticky = g_build_filename(dir, "sticky", NULL);
    g_assert_cmpint(mkdir(sticky, 01777), ==, 0);
    g_assert_cmpint(chmod(sticky, 01777), ==, 0);
    g_assert_cmpint(chmod(sub, 02750), ==, 0);

    /* xattrs in every namespace we copy; one too big for the inode */
    g_assert_cmpint(lsetxattr(p, "user.mime_type", "text/plain", 10, 0), ==, 0);
    g_assert_cmpint(lsetxattr(p, "trusted.memshare", "t", 1, 0), ==, 0);
    g_autofree char *bigx = g_malloc(1000);
    memset(bigx, 'x', 1000);
    g_autofree char *bp = g_build_filename(dir, "big.bin", NULL);
    g_assert_cmpint(lsetxattr(bp, "user.big", bigx, 1000, 0), ==, 0);
    g_assert_cmpint(lsetxattr(sub, "user.dir", "d", 1, 0), ==, 0);
    g_assert_cmpint(lsetxattr(s2, "trusted.on-symlink", "s", 1, 0), ==, 0);

    /* a directory that needs several blocks (ext2fs_expand_dir) */
    g_autofree char *many = g_build_filename(dir, "many", NULL);
    g_assert_cmpint(mkdir(many, 0755), ==, 0);
    for (guint i = 0; i < 400; i++) {
        g_autofree char *n = g_strdup_printf("entry-%04u-with-a-rather-long-name-to-fill-blocks", i);
        write_file(many, n, n, -1);
    }
    /* nesting */
    g_autofree char *deep = g_build_filename(dir, "a", "b", "c", "d", NULL);
    g_assert_cmpint(g_mkdir_with_parents(deep, 0755), ==, 0);
    write_file(deep, "leaf", "leaf\n", -1);
}

/* ------------------------------------------------------------------ */

typedef struct {
    ext2_filsys fs;
    const char *source;
    guint32 epoch;
    const char *const *selected;
    GHashTable *src2img;   /* "dev:ino" -> image ino */
    GHashTable *img2src;   /* image ino -> "dev:ino" */
    guint count;
} Cmp;

static int
collect_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset, int blocksize, char *buf,
           void *priv)
{
    (void)dir;
    (void)entry;
    (void)offset;
    (void)blocksize;
    (void)buf;
    GHashTable *h = priv;
    int len = ext2fs_dirent_name_len(d);
    g_autofree char *n = g_strndup(d->name, len);
    if (strcmp(n, ".") && strcmp(n, ".."))
        g_hash_table_insert(h, g_steal_pointer(&n), GUINT_TO_POINTER(d->inode));
    return 0;
}

static int
wanted(const Cmp *c, const char *rel)
{
    if (c->selected == NULL)
        return 1;
    gsize rl = strlen(rel);
    for (guint i = 0; c->selected[i]; i++) {
        const char *l = c->selected[i];
        gsize ll = strlen(l);
        if (strcmp(l, rel) == 0 || (strncmp(l, rel, ll) == 0 && rel[ll] == '/'))
            return 1;
        if (strncmp(l, rel, rl) == 0 && l[rl] == '/')
            return 1;
    }
    return 0;
}

static void
compare_xattrs(Cmp *c, const char *path, ext2_ino_t ino)
{
    char list[65536];
    ssize_t n = llistxattr(path, list, sizeof(list));
    g_assert_cmpint(n, >=, 0);
    struct ext2_xattr_handle *xh = NULL;
    g_assert_cmpint(ext2fs_xattrs_open(c->fs, ino, &xh), ==, 0);
    g_assert_cmpint(ext2fs_xattrs_read(xh), ==, 0);
    size_t count = 0;
    g_assert_cmpint(ext2fs_xattrs_count(xh, &count), ==, 0);
    size_t expected = 0;
    for (ssize_t off = 0; off < n; off += strlen(list + off) + 1) {
        const char *name = list + off;
        if (!g_str_has_prefix(name, "user.") && !g_str_has_prefix(name, "trusted.") &&
            !g_str_has_prefix(name, "security."))
            continue;
        char val[65536];
        ssize_t vl = lgetxattr(path, name, val, sizeof(val));
        g_assert_cmpint(vl, >=, 0);
        void *iv = NULL;
        size_t il = 0;
        errcode_t err = ext2fs_xattr_get(xh, name, &iv, &il);
        if (err)
            g_error("%s: xattr %s missing in the image: %s", path, name, error_message(err));
        g_assert_cmpuint(il, ==, vl);
        g_assert_cmpint(memcmp(iv, val, vl), ==, 0);
        ext2fs_free_mem(&iv);
        expected++;
    }
    g_assert_cmpuint(count, ==, expected);
    ext2fs_xattrs_close(&xh);
}

/* Content digests that skip holes: sha256 over (block number, block) of
 * every block that is not all zeros, then the size. Equal digests mean
 * equal content, whether zeros are stored or are holes, without reading
 * gigabytes of holes. */
typedef struct {
    GChecksum *ck;
    guint8 *buf;
} Digest;

static void
digest_block(Digest *d, guint64 lblk, const guint8 *b)
{
    if (b[0] == 0 && memcmp(b, b + 1, 4095) == 0)
        return;
    g_checksum_update(d->ck, (const guchar *)&lblk, sizeof(lblk));
    g_checksum_update(d->ck, b, 4096);
}

static int
image_block_cb(ext2_filsys fs, blk64_t *blocknr, e2_blkcnt_t blockcnt, blk64_t ref_blk, int ref_offset,
               void *priv)
{
    (void)ref_blk;
    (void)ref_offset;
    Digest *d = priv;
    if (blockcnt < 0)
        return 0;   /* extent tree blocks */
    g_assert_cmpint(io_channel_read_blk64(fs->io, *blocknr, 1, d->buf), ==, 0);
    digest_block(d, blockcnt, d->buf);
    return 0;
}

static char *
image_content_sha256(ext2_filsys fs, ext2_ino_t ino, guint64 size)
{
    Digest d = { g_checksum_new(G_CHECKSUM_SHA256), g_malloc(4096) };
    g_assert_cmpint(ext2fs_block_iterate3(fs, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, NULL,
                                          image_block_cb, &d), ==, 0);
    g_checksum_update(d.ck, (const guchar *)&size, sizeof(size));
    char *r = g_strdup(g_checksum_get_string(d.ck));
    g_checksum_free(d.ck);
    g_free(d.buf);
    return r;
}

static char *
source_content_sha256(const char *path, guint64 *size)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW);
    g_assert_cmpint(fd, >=, 0);
    struct stat st;
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    Digest d = { g_checksum_new(G_CHECKSUM_SHA256), g_malloc(4096) };
    guint64 off = 0;
    while (off < (guint64)st.st_size) {
        off_t data = lseek(fd, off, SEEK_DATA);
        if (data < 0)
            break;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        for (guint64 b = (guint64)data / 4096; b * 4096 < (guint64)hole; b++) {
            memset(d.buf, 0, 4096);
            ssize_t r = pread(fd, d.buf, 4096, b * 4096);
            g_assert_cmpint(r, >, 0);
            digest_block(&d, b, d.buf);
        }
        off = ((guint64)hole + 4095) / 4096 * 4096;
    }
    close(fd);
    guint64 sz = st.st_size;
    g_checksum_update(d.ck, (const guchar *)&sz, sizeof(sz));
    *size = st.st_size;
    char *r = g_strdup(g_checksum_get_string(d.ck));
    g_checksum_free(d.ck);
    g_free(d.buf);
    return r;
}

static void compare_dir(Cmp *c, const char *rel, ext2_ino_t dino);

static void
compare_entry(Cmp *c, const char *rel, const char *path, const struct stat *st, ext2_ino_t ino)
{
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    g_assert_cmpint(ext2fs_read_inode_full(c->fs, ino, (struct ext2_inode *)&in, sizeof(in)), ==, 0);
    if ((in.i_mode & 0170000) != (st->st_mode & S_IFMT))
        g_error("%s: type %o in the image, %o in the source", rel, in.i_mode & 0170000, st->st_mode & S_IFMT);
    g_assert_cmpuint(in.i_mode & 07777, ==, st->st_mode & 07777);
    g_assert_cmpuint(inode_uid(in), ==, st->st_uid);
    g_assert_cmpuint(inode_gid(in), ==, st->st_gid);
    g_assert_cmpuint(in.i_mtime, ==, c->epoch);
    g_assert_cmpuint(in.i_atime, ==, c->epoch);
    g_assert_cmpuint(in.i_ctime, ==, c->epoch);
    g_assert_cmpuint(in.i_crtime, ==, c->epoch);
    compare_xattrs(c, path, ino);
    c->count++;

    if (!S_ISDIR(st->st_mode)) {
        g_autofree char *key = g_strdup_printf("%ju:%ju", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino);
        gpointer prev = g_hash_table_lookup(c->src2img, key);
        if (prev)
            g_assert_cmpuint(GPOINTER_TO_UINT(prev), ==, ino);   /* same inode for every name */
        else {
            /* and a different image inode for every source inode */
            g_assert_false(g_hash_table_contains(c->img2src, GUINT_TO_POINTER(ino)));
            g_hash_table_insert(c->src2img, g_strdup(key), GUINT_TO_POINTER(ino));
            g_hash_table_insert(c->img2src, GUINT_TO_POINTER(ino), g_strdup(key));
        }
        if (c->selected == NULL)
            g_assert_cmpuint(in.i_links_count, ==, st->st_nlink);
    }

    switch (st->st_mode & S_IFMT) {
    case S_IFREG: {
        guint64 ssize = 0;
        g_autofree char *sh = source_content_sha256(path, &ssize);
        g_autofree char *ih = image_content_sha256(c->fs, ino, EXT2_I_SIZE(&in));
        g_assert_cmpuint(EXT2_I_SIZE(&in), ==, st->st_size);
        g_assert_cmpstr(ih, ==, sh);
        /* holes kept: never more blocks than the source has data */
        g_assert_cmpuint(in.i_blocks, <=, (guint64)st->st_blocks + 16);
        break;
    }
    case S_IFLNK: {
        char target[4096];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        g_assert_cmpint(n, >, 0);
        target[n] = '\0';
        g_assert_cmpuint(EXT2_I_SIZE(&in), ==, n);
        if (ext2fs_is_fast_symlink((struct ext2_inode *)&in)) {
            g_assert_cmpint(n, <, 60);
            g_assert_cmpint(memcmp(in.i_block, target, n), ==, 0);
        } else {
            g_assert_cmpint(n, >=, 60);
            guint64 sz = 0;
            ext2_file_t f;
            g_assert_cmpint(ext2fs_file_open(c->fs, ino, 0, &f), ==, 0);
            char buf[4096];
            unsigned int got = 0;
            g_assert_cmpint(ext2fs_file_read(f, buf, sizeof(buf), &got), ==, 0);
            ext2fs_file_close(f);
            sz = got;
            g_assert_cmpuint(sz, ==, n);
            g_assert_cmpint(memcmp(buf, target, n), ==, 0);
        }
        break;
    }
    case S_IFCHR:
    case S_IFBLK: {
        unsigned int maj, min;
        if (in.i_block[0]) {
            maj = (in.i_block[0] >> 8) & 255;
            min = in.i_block[0] & 255;
        } else {
            maj = (in.i_block[1] & 0xfff00) >> 8;
            min = (in.i_block[1] & 0xff) | ((in.i_block[1] >> 12) & 0xfff00);
        }
        g_assert_cmpuint(maj, ==, major(st->st_rdev));
        g_assert_cmpuint(min, ==, minor(st->st_rdev));
        break;
    }
    case S_IFDIR:
        compare_dir(c, rel, ino);
        break;
    default:
        break;
    }
}

static void
compare_dir(Cmp *c, const char *rel, ext2_ino_t dino)
{
    g_autofree char *dpath = *rel ? g_build_filename(c->source, rel, NULL) : g_strdup(c->source);
    g_autoptr(GHashTable) img = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_assert_cmpint(ext2fs_dir_iterate2(c->fs, dino, 0, NULL, collect_cb, img), ==, 0);
    g_autoptr(GDir) d = g_dir_open(dpath, 0, NULL);
    g_assert_nonnull(d);
    const char *n;
    guint expected = 0, subdirs = 0;
    while ((n = g_dir_read_name(d)) != NULL) {
        g_autofree char *crel = *rel ? g_strconcat(rel, "/", n, NULL) : g_strdup(n);
        g_autofree char *cpath = g_build_filename(c->source, crel, NULL);
        struct stat st;
        g_assert_cmpint(lstat(cpath, &st), ==, 0);
        if (S_ISSOCK(st.st_mode) || !wanted(c, crel)) {
            if (g_hash_table_contains(img, n))
                g_error("%s: in the image but should not be", crel);
            continue;
        }
        gpointer ino = g_hash_table_lookup(img, n);
        if (ino == NULL)
            g_error("%s: missing from the image", crel);
        expected++;
        if (S_ISDIR(st.st_mode))
            subdirs++;
        compare_entry(c, crel, cpath, &st, GPOINTER_TO_UINT(ino));
    }
    gboolean root = *rel == '\0';
    guint lf = 0;
    if (root) {
        g_autofree char *lfp = g_build_filename(c->source, "lost+found", NULL);
        if (!g_file_test(lfp, G_FILE_TEST_EXISTS)) {
            g_assert_true(g_hash_table_contains(img, "lost+found"));
            lf = 1;
        }
    }
    g_assert_cmpuint(g_hash_table_size(img), ==, expected + lf);
    struct ext2_inode din;
    g_assert_cmpint(ext2fs_read_inode(c->fs, dino, &din), ==, 0);
    g_assert_cmpuint(din.i_links_count, ==, 2 + subdirs + lf);
}

guint
ms_test_compare_image(const char *source, const char *image, guint32 epoch, const char *const *selected)
{
    Cmp c = { 0 };
    c.source = source;
    c.epoch = epoch;
    c.selected = selected;
    g_assert_cmpint(ext2fs_open(image, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &c.fs), ==, 0);
    g_assert_cmpuint(c.fs->blocksize, ==, 4096);
    g_assert_false(ext2fs_has_feature_journal(c.fs->super));
    g_assert_true(ext2fs_has_feature_extents(c.fs->super));
    c.src2img = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c.img2src = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    struct stat st;
    g_assert_cmpint(stat(source, &st), ==, 0);
    /* the root: mode, owner, and everything below */
    struct ext2_inode_large in;
    memset(&in, 0, sizeof(in));
    g_assert_cmpint(ext2fs_read_inode_full(c.fs, EXT2_ROOT_INO, (struct ext2_inode *)&in, sizeof(in)), ==, 0);
    g_assert_cmpuint(in.i_mode & 07777, ==, st.st_mode & 07777);
    g_assert_cmpuint(inode_uid(in), ==, st.st_uid);
    compare_dir(&c, "", EXT2_ROOT_INO);
    g_hash_table_unref(c.src2img);
    g_hash_table_unref(c.img2src);
    ext2fs_close_free(&c.fs);
    return c.count;
}
