/* tests/fuzz/fuzz-image.c: libFuzzer target for the image builder's input,
 * the source tree. The fuzzer's bytes describe a small tree (directories,
 * files with contents and modes, symlinks with arbitrary targets, hard
 * links, FIFOs, odd names), which is created in a scratch directory and
 * built with ms_image_build() twice. Checked: no crash, leak or UB; a
 * refused tree gives an error message; an accepted one gives the same
 * sha256 twice (reproducibility is a promise, docs/images.md), a size that
 * is a multiple of 2 MiB, and an image libext2fs opens and whose inode
 * count covers every entry. Trees are bounded (64 entries, 64 KiB of
 * contents per file) so each run stays fast.
 *
 * Record format, repeated: TYPE NAMELEN NAME... then per type:
 *   0 dir (entered: later records go inside), 1 file: MODE LEN(2) BYTES,
 *   2 symlink: LEN TARGET, 3 hard link to the previous file, 4 fifo,
 *   5 leave the current directory (no name). */
#include "ms-image-build.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *scratch;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

typedef struct {
    const uint8_t *p;
    size_t n;
} Reader;

static gboolean
take(Reader *r, size_t k, const uint8_t **out)
{
    if (r->n < k)
        return FALSE;
    *out = r->p;
    r->p += k;
    r->n -= k;
    return TRUE;
}

/* A name the host can create: no '/', no NUL, not "." or "..". */
static char *
take_name(Reader *r)
{
    const uint8_t *len, *bytes;
    if (!take(r, 1, &len) || *len == 0 || !take(r, *len, &bytes))
        return NULL;
    char *name = g_strndup((const char *)bytes, *len);
    if (strlen(name) != *len || strchr(name, '/') || g_str_equal(name, ".") || g_str_equal(name, "..")) {
        g_free(name);
        return NULL;
    }
    return name;
}

static guint
make_tree(const char *root, Reader *r)
{
    g_autoptr(GPtrArray) stack = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(stack, g_strdup(root));
    g_autofree char *last_file = NULL;
    guint entries = 0;
    const uint8_t *t;

    while (entries < 64 && take(r, 1, &t)) {
        const char *cwd = g_ptr_array_index(stack, stack->len - 1);
        if (*t % 6 == 5) {
            if (stack->len > 1)
                g_ptr_array_remove_index(stack, stack->len - 1);
            continue;
        }
        g_autofree char *name = take_name(r);
        if (name == NULL)
            break;
        g_autofree char *path = g_build_filename(cwd, name, NULL);
        entries++;
        switch (*t % 6) {
        case 0:
            if (mkdir(path, 0755) == 0 && stack->len < 16)
                g_ptr_array_add(stack, g_strdup(path));
            break;
        case 1: {
            const uint8_t *mode, *len, *bytes;
            if (!take(r, 1, &mode) || !take(r, 2, &len))
                return entries;
            size_t k = MIN((size_t)(len[0] | len[1] << 8), r->n);
            if (!take(r, k, &bytes))
                return entries;
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (fd >= 0) {
                if (write(fd, bytes, k) != (ssize_t)k)
                    abort();
                close(fd);
                /* owner always reads (as the store's builder would run);
                 * bits 0-5: group/other, bits 6-7: sticky, setgid */
                chmod(path, 0400 | (mode_t)(*mode & 0x3f) | (mode_t)(*mode >> 6) << 9);
                g_free(last_file);
                last_file = g_strdup(path);
            }
            break;
        }
        case 2: {
            g_autofree char *target = take_name(r);
            if (symlink(target ? target : "../../../../etc/shadow", path) < 0)
                break;
            break;
        }
        case 3:
            if (last_file && link(last_file, path) < 0)
                break;
            break;
        case 4:
            mkfifo(path, 0644);
            break;
        }
    }
    return entries;
}

static void
remove_scratch(void)
{
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (scratch == NULL) {
        /* tmpfs when there is one: every run writes two images */
        const char *tmp = g_getenv("TMPDIR");
        if (!tmp || !*tmp)
            tmp = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : "/tmp";
        scratch = g_strdup_printf("%s/ms-fuzz-image.XXXXXX", tmp);
        if (mkdtemp(scratch) == NULL)
            abort();
        atexit(remove_scratch);
    }
    g_autofree char *tree = g_build_filename(scratch, "tree", NULL);
    g_autofree char *img = g_build_filename(scratch, "a.img", NULL);
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (g_mkdir_with_parents(tree, 0755) < 0)
        abort();

    Reader r = { data, size };
    make_tree(tree, &r);

    MsImageBuildOptions opts = { .label = "fuzz", .max_size = 64 << 20, .epoch = 1 };
    MsImageBuildResult a = { 0 }, b = { 0 };
    g_autoptr(GError) error = NULL;
    if (!ms_image_build(tree, img, &opts, &a, &error)) {
        /* refused: the reason must be spelled out */
        if (error == NULL || error->message == NULL || !*error->message)
            abort();
        ms_image_build_result_clear(&a);
        return 0;
    }
    if (a.size % MS_IMAGE_SIZE_ALIGN != 0)
        abort();

    ext2_filsys fs = NULL;
    if (ext2fs_open(img, 0, 0, 0, unix_io_manager, &fs) != 0)
        abort();
    if (fs->blocksize != MS_IMAGE_BLOCK_SIZE ||
        fs->super->s_inodes_count - fs->super->s_free_inodes_count < a.files)
        abort();
    ext2fs_close_free(&fs);

    if (!ms_image_build(tree, img, &opts, &b, &error) || strcmp(a.sha256, b.sha256) != 0)
        abort();
    ms_image_build_result_clear(&a);
    ms_image_build_result_clear(&b);
    return 0;
}
