/* tests/image/test-image-build.c: the ext4 builder: a tree with every file
 * type and odd names gives an image e2fsck finds clean and that matches the
 * source at the libext2fs level; builds are reproducible; bad trees are
 * refused with the path and the reason, and leave no image behind. */
#include "ms-image-build.h"
#include "ms-error.h"
#include "image-compare.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib/gstdio.h>

static char *tmpdir;

typedef struct {
    char *dir;
    char *src;
    char *img;
} Fixture;

static void
fixture_setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_build_filename(tmpdir, "XXXXXX", NULL);
    g_assert_nonnull(g_mkdtemp(f->dir));
    f->src = g_build_filename(f->dir, "src", NULL);
    f->img = g_build_filename(f->dir, "out.img", NULL);
    g_assert_cmpint(mkdir(f->src, 0755), ==, 0);
    if (data)
        ms_test_make_tree(f->src);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
    const char *argv[] = { "rm", "-rf", f->dir, NULL };
    ms_test_run(argv, NULL);
    g_free(f->dir);
    g_free(f->src);
    g_free(f->img);
}

static void
build_ok(const char *src, const char *img, const MsImageBuildOptions *o, MsImageBuildResult *r)
{
    g_autoptr(GError) error = NULL;
    gboolean ok = ms_image_build(src, img, o, r, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
}

static void
assert_fsck_clean(const char *img)
{
    g_autofree char *out = NULL;
    const char *argv[] = { "e2fsck", "-fn", img, NULL };
    int rc = ms_test_run(argv, &out);
    if (rc != 0)
        g_error("e2fsck -fn %s: exit %d\n%s", img, rc, out);
}

static void
test_every_type(Fixture *f, gconstpointer data)
{
    MsImageBuildOptions o = { .label = "every-type" };
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, &o, &r);
    assert_fsck_clean(f->img);
    struct stat st;
    g_assert_cmpint(stat(f->img, &st), ==, 0);
    g_assert_cmpuint(st.st_size, ==, r.size);
    g_assert_cmpuint(r.size % MS_IMAGE_SIZE_ALIGN, ==, 0);
    g_assert_cmpuint(strlen(r.sha256), ==, 64);
    g_autofree char *sha = ms_test_file_sha256(f->img);
    g_assert_cmpstr(sha, ==, r.sha256);
    guint n = ms_test_compare_image(f->src, f->img, 1, NULL);
    /* every entry of the tree, hard links counted per name */
    g_assert_cmpuint(n, >=, 400 + 25);
    ms_image_build_result_clear(&r);
}

static void
test_sized_to_fit(Fixture *f, gconstpointer data)
{
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, NULL, &r);
    /* a 5 GiB sparse file and about 2 MiB of data: the image stays small */
    g_assert_cmpuint(r.size, <=, 16 * 1024 * 1024);
    g_autofree char *out = NULL;
    const char *argv[] = { "dumpe2fs", "-h", f->img, NULL };
    g_assert_cmpint(ms_test_run(argv, &out), ==, 0);
    g_assert_nonnull(strstr(out, "Block size:               4096"));
    g_assert_null(strstr(out, "has_journal"));
    g_assert_nonnull(strstr(out, "extent"));
    ms_image_build_result_clear(&r);
}

static void
test_socket_skipped(Fixture *f, gconstpointer data)
{
    g_autofree char *out = NULL;
    g_autofree char *sock = g_build_filename(f->src, "sock", NULL);
    g_autofree char *code = g_strdup_printf("import socket; socket.socket(socket.AF_UNIX).bind('%s')", sock);
    const char *argv[] = { "python3", "-c", code, NULL };
    g_assert_cmpint(ms_test_run(argv, &out), ==, 0);
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, NULL, &r);
    g_assert_cmpuint(r.warnings->len, ==, 1);
    g_assert_nonnull(strstr(g_ptr_array_index(r.warnings, 0), "sock"));
    g_assert_nonnull(strstr(g_ptr_array_index(r.warnings, 0), "socket skipped"));
    ms_test_compare_image(f->src, f->img, 1, NULL);
    ms_image_build_result_clear(&r);
}

static void
test_reproducible(Fixture *f, gconstpointer data)
{
    g_autofree char *img2 = g_build_filename(f->dir, "second.img", NULL);
    MsImageBuildOptions o = { .label = "repro" };
    MsImageBuildResult a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
    build_ok(f->src, f->img, &o, &a);
    build_ok(f->src, img2, &o, &b);
    g_assert_cmpstr(a.sha256, ==, b.sha256);
    g_assert_cmpstr(a.uuid, ==, b.uuid);

    /* a copy with other inode numbers, times and directory order: same bytes */
    g_autofree char *copy = g_build_filename(f->dir, "copy", NULL);
    const char *cp[] = { "cp", "-a", f->src, copy, NULL };
    g_assert_cmpint(ms_test_run(cp, NULL), ==, 0);
    g_autofree char *hello = g_build_filename(copy, "hello.txt", NULL);
    const char *touch[] = { "touch", "-d", "2001-02-03", hello, NULL };
    g_assert_cmpint(ms_test_run(touch, NULL), ==, 0);
    build_ok(copy, img2, &o, &c);
    g_assert_cmpstr(a.sha256, ==, c.sha256);

    /* the same tree on another file system type (tmpfs; the fixtures are
     * usually on ext4): same bytes */
    if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR)) {
        g_autofree char *shm = g_strdup("/dev/shm/ms-image-test-XXXXXX");
        g_assert_nonnull(g_mkdtemp(shm));
        g_autofree char *shsrc = g_build_filename(shm, "src", NULL);
        const char *cp2[] = { "cp", "-a", f->src, shsrc, NULL };
        int rc = ms_test_run(cp2, NULL);
        MsImageBuildResult e = { 0 };
        if (rc == 0)
            build_ok(shsrc, img2, &o, &e);
        const char *rm[] = { "rm", "-rf", shm, NULL };
        ms_test_run(rm, NULL);
        g_assert_cmpint(rc, ==, 0);
        g_assert_cmpstr(a.sha256, ==, e.sha256);
        ms_image_build_result_clear(&e);
    }

    /* one changed byte: another image */
    g_autofree char *big = g_build_filename(copy, "big.bin", NULL);
    int fd = open(big, O_WRONLY);
    g_assert_cmpint(pwrite(fd, "#", 1, 1000), ==, 1);
    close(fd);
    build_ok(copy, img2, &o, &d);
    g_assert_cmpstr(a.sha256, !=, d.sha256);
    /* the UUID derives from the listing (names, modes, sizes...), not the
     * content: same here */
    g_assert_cmpstr(a.uuid, ==, d.uuid);
    ms_image_build_result_clear(&a);
    ms_image_build_result_clear(&b);
    ms_image_build_result_clear(&c);
    ms_image_build_result_clear(&d);
}

static void
test_epoch(Fixture *f, gconstpointer data)
{
    MsImageBuildOptions o = { .epoch = 1700000000 };
    MsImageBuildResult r = { 0 }, r2 = { 0 };
    build_ok(f->src, f->img, &o, &r);
    ms_test_compare_image(f->src, f->img, 1700000000, NULL);
    g_autofree char *out = NULL;
    const char *argv[] = { "dumpe2fs", "-h", f->img, NULL };
    g_assert_cmpint(ms_test_run(argv, &out), ==, 0);
    g_assert_nonnull(strstr(out, "Last write time:          Tue Nov 14 22:13:20 2023"));
    g_assert_nonnull(strstr(out, "Filesystem created:       Tue Nov 14 22:13:20 2023"));
    /* SOURCE_DATE_EPOCH is the default */
    g_setenv("SOURCE_DATE_EPOCH", "1700000000", TRUE);
    build_ok(f->src, f->img, NULL, &r2);
    g_unsetenv("SOURCE_DATE_EPOCH");
    g_assert_cmpstr(r.sha256, ==, r2.sha256);
    g_setenv("SOURCE_DATE_EPOCH", "yesterday", TRUE);
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_image_build(f->src, f->img, NULL, NULL, &error));
    g_unsetenv("SOURCE_DATE_EPOCH");
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "SOURCE_DATE_EPOCH"));
    ms_image_build_result_clear(&r);
    ms_image_build_result_clear(&r2);
}

static void
test_paths(Fixture *f, gconstpointer data)
{
    const char *paths[] = { "./a/b//c/", "sub/hard2", "hello.txt", NULL };
    const char *norm[] = { "a/b/c", "sub/hard2", "hello.txt", NULL };
    MsImageBuildOptions o = { .paths = paths };
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, &o, &r);
    assert_fsck_clean(f->img);
    guint n = ms_test_compare_image(f->src, f->img, 1, norm);
    /* a, a/b, a/b/c, a/b/c/d, a/b/c/d/leaf, sub, sub/hard2, hello.txt */
    g_assert_cmpuint(n, ==, 8);
    /* the root and 7 inodes: both names of the hard link share one */
    g_assert_cmpuint(r.files, ==, 1 + 7);
    ms_image_build_result_clear(&r);
    g_assert_cmpint(unlink(f->img), ==, 0);

    const char *missing[] = { "sub/nope", NULL };
    MsImageBuildOptions o2 = { .paths = missing };
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_image_build(f->src, f->img, &o2, NULL, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "sub/nope"));
    g_assert_false(g_file_test(f->img, G_FILE_TEST_EXISTS));

    const char *through_file[] = { "hello.txt/x", NULL };
    MsImageBuildOptions o3 = { .paths = through_file };
    g_clear_error(&error);
    g_assert_false(ms_image_build(f->src, f->img, &o3, NULL, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "hello.txt: not a directory"));
}

static void
test_path_normalize(void)
{
    struct {
        const char *in;
        const char *out;   /* NULL: refused */
        const char *msg;
    } cases[] = {
        { "usr/lib", "usr/lib", NULL },      { "/usr//lib/", "usr/lib", NULL },
        { "./x/./y", "x/y", NULL },          { "-dash", "-dash", NULL },
        { "../etc", NULL, "'..'" },          { "a/../../b", NULL, "'..'" },
        { "", NULL, "source itself" },       { "/./", NULL, "source itself" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *r = ms_image_path_normalize(cases[i].in, &error);
        g_assert_cmpstr(r, ==, cases[i].out);
        if (cases[i].out == NULL) {
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
            g_assert_nonnull(strstr(error->message, cases[i].msg));
        }
    }
    char name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    g_autoptr(GError) error = NULL;
    g_assert_null(ms_image_path_normalize(name, &error));
    g_assert_nonnull(strstr(error->message, "longer than 255 bytes"));
}

static void
assert_refused(Fixture *f, const MsImageBuildOptions *o, int code, const char *path, const char *why)
{
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_image_build(f->src, f->img, o, NULL, &error));
    g_assert_nonnull(error);
    if (!g_error_matches(error, MS_ERROR, code) || !strstr(error->message, path) || !strstr(error->message, why))
        g_error("expected code %d naming '%s' and '%s', got %d: %s", code, path, why, error->code, error->message);
    /* never a half-written image */
    g_assert_false(g_file_test(f->img, G_FILE_TEST_EXISTS));
}

static void
test_path_too_long(Fixture *f, gconstpointer data)
{
    /* a real path longer than 4095 bytes, made with *at() calls */
    char comp[201];
    memset(comp, 'p', 200);
    comp[200] = '\0';
    int fd = open(f->src, O_RDONLY | O_DIRECTORY);
    for (guint i = 0; i < 21; i++) {
        g_assert_cmpint(mkdirat(fd, comp, 0755), ==, 0);
        int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY);
        close(fd);
        fd = nfd;
    }
    close(fd);
    assert_refused(f, NULL, MS_ERROR_INVALID, "pppp", "the builder allows 4095");

    /* and the limit as an option */
    const char *argv[] = { "rm", "-rf", NULL, NULL };
    g_autofree char *top = g_build_filename(f->src, comp, NULL);
    argv[2] = top;
    ms_test_run(argv, NULL);
    g_autofree char *d = g_build_filename(f->src, "0123456789", "0123456789", NULL);
    g_assert_cmpint(g_mkdir_with_parents(d, 0755), ==, 0);
    MsImageBuildOptions o = { .path_max = 15 };
    assert_refused(f, &o, MS_ERROR_INVALID, "0123456789/0123456789: path is 21 bytes long", "allows 15");
}

static void
test_loop(Fixture *f, gconstpointer data)
{
    g_autofree char *loop = g_build_filename(f->src, "sub", "loop", NULL);
    g_assert_cmpint(g_mkdir_with_parents(loop, 0755), ==, 0);
    if (mount(f->src, loop, "none", MS_BIND, NULL) < 0) {
        g_test_skip("cannot bind-mount (not root?)");
        return;
    }
    g_autoptr(GError) error = NULL;
    gboolean ok = ms_image_build(f->src, f->img, NULL, NULL, &error);
    umount2(loop, MNT_DETACH);
    g_assert_false(ok);
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "sub/loop"));
    g_assert_nonnull(strstr(error->message, "directory loop"));
    g_assert_false(g_file_test(f->img, G_FILE_TEST_EXISTS));
}

static void
test_max_size(Fixture *f, gconstpointer data)
{
    MsImageBuildOptions o = { .max_size = 1024 * 1024 };
    assert_refused(f, &o, MS_ERROR_TOO_BIG, f->src, "more than the limit of 1048576");
    MsImageBuildOptions o2 = { .max_size = 64 * 1024 * 1024 };
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, &o2, &r);
    ms_image_build_result_clear(&r);
}

static void
test_bad_label(Fixture *f, gconstpointer data)
{
    MsImageBuildOptions o = { .label = "seventeen-bytes-x" };
    assert_refused(f, &o, MS_ERROR_INVALID, "seventeen-bytes-x", "longer than 16");
}

/* Drops the capabilities that let root read anything, so a mode 000 file
 * is unreadable even to us. Runs in a subprocess. */
static void
drop_dac_caps(void)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    g_assert_cmpint(syscall(SYS_capget, &h, d), ==, 0);
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    g_assert_cmpint(syscall(SYS_capset, &h, d), ==, 0);
}

static void
test_unreadable(Fixture *f, gconstpointer data)
{
    if (g_test_subprocess()) {
        drop_dac_caps();
        g_autoptr(GError) error = NULL;
        const char *img = g_getenv("MS_TEST_IMG");
        g_assert_false(ms_image_build(g_getenv("MS_TEST_SRC"), img, NULL, NULL, &error));
        g_printerr("%s\n", error->message);
        g_assert_false(g_file_test(img, G_FILE_TEST_EXISTS));
        return;
    }
    g_autofree char *sub = g_build_filename(f->src, "sub", NULL);
    g_assert_cmpint(mkdir(sub, 0755), ==, 0);
    g_autofree char *secret = g_build_filename(sub, "secret", NULL);
    g_assert_true(g_file_set_contents(secret, "s", 1, NULL));
    g_assert_cmpint(chmod(secret, 0), ==, 0);
    /* the output must be writable without DAC override */
    g_assert_cmpint(chmod(f->dir, 0777), ==, 0);
    g_setenv("MS_TEST_SRC", f->src, TRUE);
    g_setenv("MS_TEST_IMG", f->img, TRUE);
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
    g_test_trap_assert_passed();
    g_test_trap_assert_stderr("*sub/secret: cannot open: Permission denied*");
}

static void
test_not_a_dir(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *img = g_build_filename(tmpdir, "never.img", NULL);
    g_assert_false(ms_image_build("/nonexistent/tree", img, NULL, NULL, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "/nonexistent/tree"));
    g_assert_false(g_file_test(img, G_FILE_TEST_EXISTS));
}

static void
test_empty_tree(Fixture *f, gconstpointer data)
{
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, NULL, &r);
    assert_fsck_clean(f->img);
    g_assert_cmpuint(r.files, ==, 1);
    g_assert_cmpuint(r.size, ==, MS_IMAGE_SIZE_ALIGN);
    ms_test_compare_image(f->src, f->img, 1, NULL);
    ms_image_build_result_clear(&r);
}

static void
test_many_files(Fixture *f, gconstpointer data)
{
    /* enough inodes and directories that the first size estimate is
     * exercised across several block groups */
    for (guint d = 0; d < 20; d++) {
        g_autofree char *dir = g_strdup_printf("%s/d%02u", f->src, d);
        g_assert_cmpint(mkdir(dir, 0755), ==, 0);
        for (guint i = 0; i < 150; i++) {
            g_autofree char *p = g_strdup_printf("%s/f%03u", dir, i);
            g_autofree char *c = g_strnfill(i * 37 % 9000, 'a' + i % 26);
            g_assert_true(g_file_set_contents(p, c, -1, NULL));
        }
    }
    MsImageBuildResult r = { 0 };
    build_ok(f->src, f->img, NULL, &r);
    assert_fsck_clean(f->img);
    g_assert_cmpuint(r.files, ==, 1 + 20 + 20 * 150);
    ms_test_compare_image(f->src, f->img, 1, NULL);
    ms_image_build_result_clear(&r);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autoptr(GError) error = NULL;
    tmpdir = g_dir_make_tmp("ms-image-build-XXXXXX", &error);
    g_assert_no_error(error);
    gconstpointer tree = GINT_TO_POINTER(1);
    g_test_add("/image/build/every-type", Fixture, tree, fixture_setup, test_every_type, fixture_teardown);
    g_test_add("/image/build/sized-to-fit", Fixture, tree, fixture_setup, test_sized_to_fit, fixture_teardown);
    g_test_add("/image/build/socket-skipped", Fixture, tree, fixture_setup, test_socket_skipped,
               fixture_teardown);
    g_test_add("/image/build/reproducible", Fixture, tree, fixture_setup, test_reproducible, fixture_teardown);
    g_test_add("/image/build/epoch", Fixture, tree, fixture_setup, test_epoch, fixture_teardown);
    g_test_add("/image/build/paths", Fixture, tree, fixture_setup, test_paths, fixture_teardown);
    g_test_add_func("/image/build/path-normalize", test_path_normalize);
    g_test_add("/image/build/empty-tree", Fixture, NULL, fixture_setup, test_empty_tree, fixture_teardown);
    g_test_add("/image/build/many-files", Fixture, NULL, fixture_setup, test_many_files, fixture_teardown);
    g_test_add("/image/build/bad/path-too-long", Fixture, NULL, fixture_setup, test_path_too_long,
               fixture_teardown);
    g_test_add("/image/build/bad/loop", Fixture, tree, fixture_setup, test_loop, fixture_teardown);
    g_test_add("/image/build/bad/max-size", Fixture, tree, fixture_setup, test_max_size, fixture_teardown);
    g_test_add("/image/build/bad/label", Fixture, NULL, fixture_setup, test_bad_label, fixture_teardown);
    g_test_add("/image/build/bad/unreadable", Fixture, NULL, fixture_setup, test_unreadable, fixture_teardown);
    g_test_add_func("/image/build/bad/no-source", test_not_a_dir);
    int rc = g_test_run();
    const char *rm[] = { "rm", "-rf", tmpdir, NULL };
    ms_test_run(rm, NULL);
    g_free(tmpdir);
    return rc;
}
