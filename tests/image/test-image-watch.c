/* tests/image/test-image-watch.c: the agent's periodic check of the blobs a
 * running domain maps (ms_images_blob_check in qmp-plugin/ms-images.c),
 * on real files: untouched, chmodded (same bytes), replaced by rename (the
 * guest keeps the old inode), restored from a copy, removed, and modified in
 * place (the guest sees the new bytes: the loud case, and it stays
 * reported). Each finding names the image, the domain and both digests. */
#include "ms-images.h"
#include "ms-image-build.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

static char *tmpdir;

static char *
sha_of(const char *text)
{
    return g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1);
}

static void
put(const char *path, const char *text)
{
    g_autofree char *tmp = g_strconcat(path, ".new", NULL);
    g_assert_true(g_file_set_contents(tmp, text, -1, NULL));
    g_assert_cmpint(chmod(tmp, 0444), ==, 0);
    g_assert_cmpint(rename(tmp, path), ==, 0);
}

typedef struct {
    char *path;
    char *sha;
    int fd;
    MsImagesBlobWatch w;
} Attached;

/* What the agent holds after verifying and attaching PATH. */
static void
attach(Attached *a, const char *name, const char *text)
{
    a->path = g_build_filename(tmpdir, name, NULL);
    put(a->path, text);
    a->sha = sha_of(text);
    a->fd = open(a->path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(a->fd, >=, 0);
    memset(&a->w, 0, sizeof(a->w));
    g_assert_cmpint(fstat(a->fd, &a->w.at), ==, 0);
}

static void
detach(Attached *a)
{
    close(a->fd);
    ms_images_blob_watch_clear(&a->w);
    g_free(a->path);
    g_free(a->sha);
}

static MsImagesBlobState
check(Attached *a)
{
    return ms_images_blob_check(&a->w, "usr-bookworm", "web1", a->sha, a->path, a->fd);
}

static void
assert_names(const Attached *a, const char *other_sha)
{
    g_assert_nonnull(a->w.message);
    g_test_message("%s", a->w.message);
    g_assert_nonnull(strstr(a->w.message, "image 'usr-bookworm' of domain 'web1'"));
    g_assert_nonnull(strstr(a->w.message, a->sha));
    if (other_sha)
        g_assert_nonnull(strstr(a->w.message, other_sha));
}

static void
test_untouched(void)
{
    Attached a;
    attach(&a, "untouched", "image bytes 1");
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_OK);
    g_assert_null(a.w.message);
    /* a chmod changes ctime, not the bytes: still fine */
    g_assert_cmpint(chmod(a.path, 0440), ==, 0);
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_OK);
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_OK);
    detach(&a);
}

static void
test_replaced_restored_removed(void)
{
    Attached a;
    attach(&a, "replaced", "image bytes 2");
    put(a.path, "another image");
    g_autofree char *other = sha_of("another image");
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_REPLACED);
    assert_names(&a, other);
    g_assert_nonnull(strstr(a.w.message, "the guest keeps mapping the old file"));
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_REPLACED);
    /* the inode the guest maps is intact */
    char buf[64] = { 0 };
    g_assert_cmpint(pread(a.fd, buf, sizeof(buf) - 1, 0), ==, (ssize_t)strlen("image bytes 2"));
    g_assert_cmpstr(buf, ==, "image bytes 2");
    /* a copy of the same bytes put back: fine again */
    put(a.path, "image bytes 2");
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_OK);
    g_assert_null(a.w.message);
    g_assert_cmpint(unlink(a.path), ==, 0);
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_REMOVED);
    assert_names(&a, NULL);
    g_assert_nonnull(strstr(a.w.message, "gone from the store"));
    g_assert_nonnull(strstr(a.w.message, "nothing is lost"));
    detach(&a);
}

static void
test_modified_in_place(void)
{
    Attached a;
    attach(&a, "modified", "image bytes 3");
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_OK);
    g_assert_cmpint(chmod(a.path, 0644), ==, 0);
    int w = open(a.path, O_WRONLY | O_CLOEXEC);
    g_assert_cmpint(w, >=, 0);
    g_assert_cmpint(pwrite(w, "IMAGE", 5, 0), ==, 5);
    close(w);
    g_autofree char *now = sha_of("IMAGE bytes 3");
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_MODIFIED);
    assert_names(&a, now);
    g_assert_nonnull(strstr(a.w.message, "MODIFIED IN PLACE"));
    g_assert_nonnull(strstr(a.w.message, "the guest sees the changed bytes"));
    /* stays reported, even once the bytes are written back */
    w = open(a.path, O_WRONLY | O_CLOEXEC);
    g_assert_cmpint(pwrite(w, "image", 5, 0), ==, 5);
    close(w);
    g_assert_cmpint(check(&a), ==, MS_IMAGES_BLOB_MODIFIED);
    detach(&a);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("ms-watch-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/image/watch/untouched", test_untouched);
    g_test_add_func("/image/watch/replaced-restored-removed", test_replaced_restored_removed);
    g_test_add_func("/image/watch/modified-in-place", test_modified_in_place);
    int r = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    (void)system(cmd);
    g_free(tmpdir);
    return r;
}
