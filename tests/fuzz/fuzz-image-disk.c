/* tests/fuzz/fuzz-image-disk.c: libFuzzer target for the image builder's
 * other input, a guest's disk (MsImageBuildOptions.disk, images/
 * ms-image-disk.c). A small tree is built once into an ext4 image (by the
 * builder itself: ext4, 4 KiB blocks, metadata_csum); each input patches a
 * copy of it and builds from the copy. Checked: no crash, leak or UB; a
 * refused disk gives a message naming the disk; an accepted one an image
 * whose size is a multiple of 2 MiB; an unpatched disk gives the same
 * sha256 as the tree built from its directory.
 *
 * Input: FLAGS, then records OFFSET(3, little endian, modulo the image
 * size) LEN(1, at most 64) BYTES. FLAGS bit 0: clear metadata_csum first, so
 * that patches reach the builder's own checks instead of libext2fs'
 * checksums; bit 1: build from /d instead of /. */
#include "ms-image-build.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *scratch;
static guint8 *base;
static gsize base_len;
static char base_sha[65];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static void
remove_scratch(void)
{
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
put(const char *root, const char *rel, const char *text)
{
    g_autofree char *p = g_build_filename(root, rel, NULL);
    if (!g_file_set_contents(p, text, -1, NULL))
        abort();
}

/* The base disk: every kind of entry the builder copies. */
static void
setup(void)
{
    const char *tmp = g_getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : "/tmp";
    scratch = g_strdup_printf("%s/ms-fuzz-disk.XXXXXX", tmp);
    if (mkdtemp(scratch) == NULL)
        abort();
    atexit(remove_scratch);
    g_autofree char *tree = g_build_filename(scratch, "tree", NULL);
    g_autofree char *d = g_build_filename(tree, "d", "e", NULL);
    g_autofree char *lf = g_build_filename(tree, "lost+found", NULL);
    /* the disk has one (the builder makes it): so has the tree */
    if (g_mkdir_with_parents(d, 0755) < 0 || mkdir(lf, 0700) < 0)
        abort();
    put(tree, "d/file", "some content\n");
    g_autofree char *big = g_strnfill(20000, 'x');
    put(tree, "d/e/big", big);
    g_autofree char *f = g_build_filename(tree, "d/file", NULL);
    g_autofree char *l = g_build_filename(tree, "d/e/hard", NULL);
    g_autofree char *s = g_build_filename(tree, "d/fast", NULL);
    g_autofree char *s2 = g_build_filename(tree, "d/slow", NULL);
    g_autofree char *fifo = g_build_filename(tree, "d/fifo", NULL);
    g_autofree char *target = g_strnfill(100, 'y');
    if (link(f, l) < 0 || symlink("file", s) < 0 || symlink(target, s2) < 0 || mkfifo(fifo, 0644) < 0)
        abort();
    (void)setxattr(f, "user.fuzz", "value", 5, 0);

    g_autofree char *img = g_build_filename(scratch, "base.img", NULL);
    MsImageBuildOptions opts = { .label = "fuzz", .epoch = 1 };
    MsImageBuildResult r = { 0 };
    g_autoptr(GError) error = NULL;
    if (!ms_image_build(tree, img, &opts, &r, &error))
        abort();
    g_strlcpy(base_sha, r.sha256, sizeof(base_sha));
    ms_image_build_result_clear(&r);
    if (!g_file_get_contents(img, (char **)&base, &base_len, NULL))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (scratch == NULL)
        setup();
    g_autofree guint8 *disk = g_memdup2(base, base_len);
    guint8 flags = size ? data[0] : 0;
    if (flags & 1) {
        guint32 ro;   /* s_feature_ro_compat, superblock at 1024 */
        memcpy(&ro, disk + 1024 + 0x64, 4);
        ro = GUINT32_TO_LE(GUINT32_FROM_LE(ro) & ~0x400u);
        memcpy(disk + 1024 + 0x64, &ro, 4);
    }
    gboolean patched = FALSE;
    for (size_t i = 1; i + 4 <= size;) {
        gsize off = (data[i] | data[i + 1] << 8 | (gsize)data[i + 2] << 16) % base_len;
        gsize len = MIN((gsize)MIN(data[i + 3], 64), size - (i + 4));
        len = MIN(len, base_len - off);
        memcpy(disk + off, data + i + 4, len);
        patched = TRUE;
        i += 4 + len;
    }
    g_autofree char *dpath = g_build_filename(scratch, "d.img", NULL);
    g_autofree char *img = g_build_filename(scratch, "out.img", NULL);
    if (!g_file_set_contents(dpath, (const char *)disk, base_len, NULL))
        abort();
    MsImageBuildOptions opts = { .label = "fuzz", .max_size = 64 << 20, .epoch = 1, .disk = dpath };
    MsImageBuildResult r = { 0 };
    g_autoptr(GError) error = NULL;
    if (!ms_image_build(flags & 2 ? "/d" : "/", img, &opts, &r, &error)) {
        /* refused: the reason, and which disk */
        if (error == NULL || error->message == NULL || strstr(error->message, "d.img") == NULL)
            abort();
        g_debug("refused: %s", error->message);
        return 0;
    }
    if (r.size % MS_IMAGE_SIZE_ALIGN != 0)
        abort();
    /* the disk gives the bytes the directory gave */
    if (!patched && !(flags & 2) && strcmp(r.sha256, base_sha) != 0)
        abort();
    ms_image_build_result_clear(&r);
    return 0;
}
