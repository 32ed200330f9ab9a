/* tests/image/test-image-store.c: the content-addressed store: add, lookup,
 * list, verify (a corrupted blob is caught), remove (refused while a running
 * domain lists the image; blobs collected), name rules, traversal and
 * symlink tricks refused, manifests parsed strictly (fixtures in
 * manifests/: *-ok.json must parse, *-invalid.json must not, the first line
 * of *.err is in the message). */
#include "ms-image-store.h"
#include "ms-error.h"
#include "image-compare.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

static char *tmpdir;
static char *rundir;

typedef struct {
    char *store;
    char *src;
} Fixture;

static void
fixture_setup(Fixture *f, gconstpointer data)
{
    g_autofree char *d = g_build_filename(tmpdir, "XXXXXX", NULL);
    g_assert_nonnull(g_mkdtemp(d));
    f->store = g_build_filename(d, "store", NULL);
    f->src = g_build_filename(d, "src", NULL);
    g_assert_cmpint(mkdir(f->src, 0755), ==, 0);
    g_autofree char *p = g_build_filename(f->src, "bin", NULL);
    g_assert_cmpint(mkdir(p, 0755), ==, 0);
    g_autofree char *x = g_build_filename(p, "prog", NULL);
    g_assert_true(g_file_set_contents(x, "#!/bin/sh\necho hi\n", -1, NULL));
    g_assert_cmpint(chmod(x, 0755), ==, 0);
    /* a fresh runtime dir per test */
    const char *rm[] = { "rm", "-rf", rundir, NULL };
    ms_test_run(rm, NULL);
    g_assert_cmpint(g_mkdir_with_parents(rundir, 0755), ==, 0);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
    g_autofree char *d = g_path_get_dirname(f->store);
    const char *rm[] = { "rm", "-rf", d, NULL };
    ms_test_run(rm, NULL);
    g_free(f->store);
    g_free(f->src);
}

static MsImageManifest *
add_ok(Fixture *f, const char *name)
{
    g_autoptr(GError) error = NULL;
    MsImageManifest *m = ms_image_store_add(f->store, name, f->src, NULL, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(m);
    return m;
}

static guint
count_blobs(Fixture *f)
{
    g_autofree char *b = g_build_filename(f->store, "blobs", NULL);
    g_autoptr(GDir) d = g_dir_open(b, 0, NULL);
    g_assert_nonnull(d);
    guint n = 0;
    const char *e;
    while ((e = g_dir_read_name(d)))
        n++;
    return n;
}

static void
test_add_lookup_list(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "usr-1.0");
    g_assert_cmpstr(m->name, ==, "usr-1.0");
    g_assert_cmpstr(m->label, ==, "usr-1.0");
    g_assert_cmpuint(m->block_size, ==, 4096);
    g_assert_cmpuint(m->files, ==, 3);
    g_assert_cmpstr(m->source, ==, f->src);
    g_assert_cmpstr(m->created, ==, "1970-01-01T00:00:01Z");

    g_autoptr(GError) error = NULL;
    g_autofree char *blob = NULL;
    g_autoptr(MsImageManifest) l = ms_image_store_lookup(f->store, "usr-1.0", &blob, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(l->sha256, ==, m->sha256);
    g_assert_cmpuint(l->size, ==, m->size);
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", m->sha256);
    g_autofree char *expect = g_build_filename(f->store, "blobs", bname, NULL);
    g_assert_cmpstr(blob, ==, expect);
    struct stat st;
    g_assert_cmpint(stat(blob, &st), ==, 0);
    g_assert_cmpuint(st.st_mode & 07777, ==, 0444);
    g_assert_cmpuint(st.st_size, ==, m->size);
    g_autofree char *sha = ms_test_file_sha256(blob);
    g_assert_cmpstr(sha, ==, m->sha256);
    /* the image's label is the name, cut to 16 bytes */
    g_autoptr(MsImageManifest) m2 = add_ok(f, "a-rather-long-image-name");
    g_assert_cmpstr(m2->label, ==, "a-rather-long-im");

    g_autoptr(GPtrArray) all = ms_image_store_list(f->store, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(all->len, ==, 2);
    g_assert_cmpstr(((MsImageManifest *)all->pdata[0])->name, ==, "a-rather-long-image-name");
    g_assert_cmpstr(((MsImageManifest *)all->pdata[1])->name, ==, "usr-1.0");
    /* no temp files left */
    g_assert_cmpuint(count_blobs(f), ==, 2);
}

static void
test_same_content_one_blob(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) a = add_ok(f, "one");
    g_autoptr(MsImageManifest) b = add_ok(f, "one");
    g_assert_cmpstr(a->sha256, ==, b->sha256);
    g_assert_cmpuint(count_blobs(f), ==, 1);
    /* another name means another label, so other bytes */
    g_autoptr(MsImageManifest) c = add_ok(f, "two");
    g_assert_cmpstr(a->sha256, !=, c->sha256);
    g_assert_cmpuint(count_blobs(f), ==, 2);
}

static void
test_replace_collects_old_blob(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) a = add_ok(f, "img");
    g_autofree char *p = g_build_filename(f->src, "bin", "prog", NULL);
    g_assert_true(g_file_set_contents(p, "changed", -1, NULL));
    g_autoptr(MsImageManifest) b = add_ok(f, "img");
    g_assert_cmpstr(a->sha256, !=, b->sha256);
    g_assert_cmpuint(count_blobs(f), ==, 1);
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", b->sha256);
    g_autofree char *bp = g_build_filename(f->store, "blobs", bname, NULL);
    g_assert_true(g_file_test(bp, G_FILE_TEST_EXISTS));
}

static void
test_verify_corrupt(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "img");
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_image_store_verify(f->store, "img", &error));
    g_assert_no_error(error);

    g_autofree char *blob = NULL;
    g_autoptr(MsImageManifest) l = ms_image_store_lookup(f->store, "img", &blob, &error);
    g_assert_nonnull(l);
    /* one flipped byte deep inside the image */
    g_assert_cmpint(chmod(blob, 0644), ==, 0);
    int fd = open(blob, O_RDWR);
    guint8 c;
    g_assert_cmpint(pread(fd, &c, 1, 1024 * 1024 + 17), ==, 1);
    c ^= 0x40;
    g_assert_cmpint(pwrite(fd, &c, 1, 1024 * 1024 + 17), ==, 1);
    close(fd);
    g_assert_cmpint(chmod(blob, 0444), ==, 0);
    g_assert_false(ms_image_store_verify(f->store, "img", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "image 'img'"));
    g_assert_nonnull(strstr(error->message, "the manifest says"));
    g_clear_error(&error);

    /* restored content but writable: refused too */
    c ^= 0x40;
    g_assert_cmpint(chmod(blob, 0644), ==, 0);
    fd = open(blob, O_RDWR);
    g_assert_cmpint(pwrite(fd, &c, 1, 1024 * 1024 + 17), ==, 1);
    close(fd);
    g_assert_false(ms_image_store_verify(f->store, "img", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "writable"));
    g_clear_error(&error);

    /* truncated */
    g_assert_cmpint(truncate(blob, 4096), ==, 0);
    g_assert_false(ms_image_store_verify(f->store, "img", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_clear_error(&error);

    /* blob gone */
    g_assert_cmpint(unlink(blob), ==, 0);
    g_assert_false(ms_image_store_verify(f->store, "img", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, m->sha256));
}

static void
write_runtime(const char *uuid, const char *content, const char *pid)
{
    g_autofree char *d = g_build_filename(rundir, "domains", uuid, NULL);
    g_assert_cmpint(g_mkdir_with_parents(d, 0755), ==, 0);
    g_autofree char *p = g_build_filename(d, "images", NULL);
    g_assert_true(g_file_set_contents(p, content, -1, NULL));
    if (pid) {
        g_autofree char *pp = g_build_filename(d, "agent.pid", NULL);
        g_assert_true(g_file_set_contents(pp, pid, -1, NULL));
    }
}

/* The verified stamp: a first call hashes and records the blob's identity,
 * a second trusts the stamp, and a modified blob (new ctime) is hashed
 * again, refused, and its stamp dropped. */
static void
test_verify_cached(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "img");
    g_autoptr(GError) error = NULL;
    g_autofree char *stamps = g_build_filename(f->store, "..", "verified", NULL);
    g_autofree char *sfile = g_strdup_printf("sha256-%s", m->sha256);
    g_autofree char *spath = g_build_filename(stamps, sfile, NULL);

    g_assert_false(g_file_test(spath, G_FILE_TEST_EXISTS));
    g_assert_true(ms_image_store_verify_cached(f->store, "img", stamps, &error));
    g_assert_no_error(error);
    g_assert_true(g_file_test(spath, G_FILE_TEST_IS_REGULAR));
    g_assert_true(ms_image_store_verify_cached(f->store, "img", stamps, &error));

    g_autofree char *blob = NULL;
    g_autoptr(MsImageManifest) l = ms_image_store_lookup(f->store, "img", &blob, &error);
    g_assert_nonnull(l);
    g_assert_cmpint(chmod(blob, 0644), ==, 0);
    int fd = open(blob, O_RDWR);
    guint8 c;
    g_assert_cmpint(pread(fd, &c, 1, 1024 * 1024 + 17), ==, 1);
    c ^= 0x40;
    g_assert_cmpint(pwrite(fd, &c, 1, 1024 * 1024 + 17), ==, 1);
    close(fd);
    g_assert_cmpint(chmod(blob, 0444), ==, 0);
    g_assert_false(ms_image_store_verify_cached(f->store, "img", stamps, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "the manifest says"));
    g_assert_false(g_file_test(spath, G_FILE_TEST_EXISTS));
}

static void
test_remove_in_use(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "shared");
    g_autoptr(MsImageManifest) m2 = add_ok(f, "other");
    g_autofree char *line = g_strdup_printf("garbage line\nshared %s dax\n", m->sha256);
    write_runtime("0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b3c", line, NULL);

    g_autoptr(GError) error = NULL;
    g_assert_false(ms_image_store_remove(f->store, "shared", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_FAILED);
    g_assert_nonnull(strstr(error->message, "image 'shared' is in use by a running domain"));
    g_clear_error(&error);
    g_autoptr(MsImageManifest) still = ms_image_store_lookup(f->store, "shared", NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(still);

    /* other images can go */
    g_assert_true(ms_image_store_remove(f->store, "other", &error));
    g_assert_no_error(error);
    g_assert_cmpuint(count_blobs(f), ==, 1);

    /* an agent pid file of a live process: still in use; a dead one: not */
    g_autofree char *live = g_strdup_printf("%d\n", (int)getpid());
    write_runtime("0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b3c", line, live);
    g_assert_false(ms_image_store_remove(f->store, "shared", &error));
    g_clear_error(&error);
    /* a pid that just exited (spawned, not forked: valgrind-clean) */
    GPid child = 0;
    const char *argv_true[] = { "true", NULL };
    g_assert_true(g_spawn_async(NULL, (char **)argv_true, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &child, NULL));
    waitpid(child, NULL, 0);
    g_autofree char *dead = g_strdup_printf("%d\n", (int)child);
    write_runtime("0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b3c", line, dead);
    g_assert_true(ms_image_store_remove(f->store, "shared", &error));
    g_assert_no_error(error);
    g_assert_cmpuint(count_blobs(f), ==, 0);

    g_assert_false(ms_image_store_remove(f->store, "shared", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
}

static void
test_in_use_blob_kept(Fixture *f, gconstpointer data)
{
    /* a domain maps the old blob; the name is rebuilt: the old blob stays
     * until no domain lists its digest */
    g_autoptr(MsImageManifest) a = add_ok(f, "img");
    g_autofree char *line = g_strdup_printf("img %s blk\n", a->sha256);
    write_runtime("11111111-2222-3333-4444-555555555555", line, NULL);
    g_autofree char *p = g_build_filename(f->src, "bin", "prog", NULL);
    g_assert_true(g_file_set_contents(p, "v2", -1, NULL));
    g_autoptr(MsImageManifest) b = add_ok(f, "img");
    g_assert_cmpuint(count_blobs(f), ==, 2);
    g_autofree char *rt = g_build_filename(rundir, "domains", "11111111-2222-3333-4444-555555555555", "images",
                                           NULL);
    g_assert_cmpint(unlink(rt), ==, 0);
    g_autoptr(GError) error = NULL;
    g_assert_cmpint(ms_image_store_gc(f->store, &error), ==, 1);
    g_assert_cmpuint(count_blobs(f), ==, 1);
}

static void
test_names(void)
{
    struct {
        const char *name;
        gboolean ok;
    } cases[] = {
        { "usr", TRUE },       { "python3.11-usr_lib", TRUE },
        { "A", TRUE },         { "0day", TRUE },
        { "", FALSE },         { ".hidden", FALSE },
        { "..", FALSE },       { "../x", FALSE },
        { "a/b", FALSE },      { "-dash", FALSE },
        { "_under", FALSE },   { "sp ace", FALSE },
        { "ütf8", FALSE },     { "a\nb", FALSE },
        { "x.json/../../etc", FALSE },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", TRUE },   /* 64 */
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", FALSE },  /* 65 */
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
        if (ms_image_name_is_valid(cases[i].name) != cases[i].ok)
            g_error("name '%s': expected %s", cases[i].name, cases[i].ok ? "valid" : "invalid");
}

static void
test_traversal_refused(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "img");
    const char *bad[] = { "../img", "names/img", "img/", ".img", "..", "img.json", NULL };
    for (guint i = 0; bad[i]; i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(MsImageManifest) l = ms_image_store_lookup(f->store, bad[i], NULL, &error);
        g_assert_null(l);
        g_assert_nonnull(error);
        if (g_strcmp0(bad[i], "img.json") == 0)
            g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);   /* a valid name, no such image */
        else {
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
            g_assert_nonnull(strstr(error->message, "not a valid image name"));
        }
        g_clear_error(&error);
        g_assert_false(ms_image_store_remove(f->store, bad[i], &error));
        g_clear_error(&error);
        if (g_strcmp0(bad[i], "img.json") != 0) {
            g_assert_null(ms_image_store_add(f->store, bad[i], f->src, NULL, NULL, &error));
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
        }
    }
    /* nothing was created outside names/ and blobs/ */
    g_autoptr(GDir) d = g_dir_open(f->store, 0, NULL);
    const char *e;
    while ((e = g_dir_read_name(d)))
        g_assert_true(strcmp(e, "names") == 0 || strcmp(e, "blobs") == 0 || strcmp(e, ".lock") == 0);
}

static void
test_symlinks_refused(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "real");
    g_autofree char *real = g_build_filename(f->store, "names", "real.json", NULL);
    g_autofree char *evil = g_build_filename(f->store, "names", "evil.json", NULL);
    /* a symlinked manifest (even to a valid one) */
    g_assert_cmpint(symlink(real, evil), ==, 0);
    g_autoptr(GError) error = NULL;
    g_assert_null(ms_image_store_lookup(f->store, "evil", NULL, &error));
    g_assert_nonnull(strstr(error->message, "is a symbolic link (refused)"));
    g_clear_error(&error);
    g_assert_false(ms_image_store_verify(f->store, "evil", &error));
    g_assert_nonnull(strstr(error->message, "symbolic link"));
    g_clear_error(&error);

    /* a symlinked blob */
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", m->sha256);
    g_autofree char *blob = g_build_filename(f->store, "blobs", bname, NULL);
    g_autofree char *moved = g_build_filename(f->store, "elsewhere.img", NULL);
    g_assert_cmpint(rename(blob, moved), ==, 0);
    g_assert_cmpint(symlink(moved, blob), ==, 0);
    g_assert_null(ms_image_store_lookup(f->store, "real", NULL, &error));
    g_assert_nonnull(strstr(error->message, "is a symbolic link (refused)"));
    g_clear_error(&error);
    g_assert_cmpint(unlink(blob), ==, 0);
    g_assert_cmpint(rename(moved, blob), ==, 0);

    /* a symlinked names/ directory */
    g_autofree char *names = g_build_filename(f->store, "names", NULL);
    g_autofree char *names2 = g_build_filename(f->store, "names2", NULL);
    g_assert_cmpint(rename(names, names2), ==, 0);
    g_assert_cmpint(symlink(names2, names), ==, 0);
    g_assert_null(ms_image_store_lookup(f->store, "real", NULL, &error));
    g_assert_nonnull(strstr(error->message, "is a symbolic link (refused)"));
    g_clear_error(&error);
    g_assert_null(ms_image_store_add(f->store, "new", f->src, NULL, NULL, &error));
    g_assert_nonnull(strstr(error->message, "is a symbolic link (refused)"));
}

static void
test_manifest_names_other_image(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "one");
    g_autofree char *a = g_build_filename(f->store, "names", "one.json", NULL);
    g_autofree char *b = g_build_filename(f->store, "names", "two.json", NULL);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(a, &text, NULL, NULL));
    g_assert_true(g_file_set_contents(b, text, -1, NULL));
    g_autoptr(GError) error = NULL;
    g_assert_null(ms_image_store_lookup(f->store, "two", NULL, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "names image 'one', not 'two'"));
    /* list reports it and keeps going */
    g_clear_error(&error);
    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(GPtrArray) all = ms_image_store_list(f->store, &problems, &error);
    g_assert_cmpuint(all->len, ==, 1);
    g_assert_cmpuint(problems->len, ==, 1);
    /* gc refuses to guess what an unreadable manifest references */
    g_assert_cmpint(ms_image_store_gc(f->store, &error), ==, -1);
    g_assert_nonnull(strstr(error->message, "not collecting"));
}

static void
test_missing_store(void)
{
    g_autoptr(GError) error = NULL;
    g_assert_null(ms_image_store_lookup("/nonexistent/store", "x", NULL, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "/nonexistent/store"));
}

static void
test_default_path(void)
{
    g_setenv("MEMSHARE_IMAGE_STORE", "/srv/images", TRUE);
    g_autofree char *p = ms_image_store_default_path();
    g_assert_cmpstr(p, ==, "/srv/images");
    g_unsetenv("MEMSHARE_IMAGE_STORE");
}

/* manifests/NAME-ok.json parse; NAME-invalid.json fail with NAME.err's
 * first line in the message. */
static void
test_manifest_files(void)
{
    g_autofree char *dir = g_test_build_filename(G_TEST_DIST, "manifests", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    const char *e;
    guint n = 0;
    while ((e = g_dir_read_name(d))) {
        if (!g_str_has_suffix(e, ".json"))
            continue;
        g_autofree char *p = g_build_filename(dir, e, NULL);
        g_autofree char *text = NULL;
        gsize len;
        g_assert_true(g_file_get_contents(p, &text, &len, NULL));
        g_autoptr(GError) error = NULL;
        g_autoptr(MsImageManifest) m = ms_image_manifest_parse(text, len, e, &error);
        if (g_str_has_suffix(e, "-ok.json")) {
            if (m == NULL)
                g_error("%s: %s", e, error->message);
            /* and it round-trips */
            g_autofree char *json = ms_image_manifest_to_json(m);
            g_autoptr(MsImageManifest) m2 = ms_image_manifest_parse(json, strlen(json), e, &error);
            g_assert_nonnull(m2);
            g_assert_cmpstr(m2->sha256, ==, m->sha256);
            g_assert_cmpuint(m2->size, ==, m->size);
            g_assert_cmpuint(g_strv_length(m2->paths), ==, g_strv_length(m->paths));
        } else {
            if (m != NULL)
                g_error("%s: parsed but should not", e);
            g_autofree char *ep = g_strndup(p, strlen(p) - 5);
            g_autofree char *errf = g_strconcat(ep, ".err", NULL);
            g_autofree char *want = NULL;
            g_assert_true(g_file_get_contents(errf, &want, NULL, NULL));
            g_strchomp(want);
            if (strstr(error->message, want) == NULL)
                g_error("%s: message '%s' lacks '%s'", e, error->message, want);
        }
        n++;
    }
    g_assert_cmpuint(n, >=, 6);
}

/* An image for /usr must be built --usr: the builder refuses a tree without
 * bin/ and lib/, marks the manifest, and a policy mounting an unmarked image
 * on /usr gets a message naming the image (the hook warns with it). */
static void
test_usr_mark(Fixture *f, gconstpointer data)
{
    MsImageBuildOptions o = { .usr = TRUE };
    g_autoptr(GError) error = NULL;
    g_autoptr(MsImageManifest) bad = ms_image_store_add(f->store, "usr-nolib", f->src, &o, NULL, &error);
    g_assert_null(bad);
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "not a /usr (--usr): no lib/ at its top"));
    g_assert_nonnull(strstr(error->message, f->src));
    g_clear_error(&error);

    g_autofree char *lib = g_build_filename(f->src, "lib", NULL);
    g_assert_cmpint(mkdir(lib, 0755), ==, 0);
    g_autoptr(MsImageManifest) plain = add_ok(f, "plain");
    g_assert_false(plain->usr);
    g_autoptr(MsImageManifest) usr = ms_image_store_add(f->store, "usr", f->src, &o, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(usr->usr);
    /* the mark survives the manifest's round trip; unmarked ones stay as
     * they were (no member at all) */
    g_autoptr(MsImageManifest) l = ms_image_store_lookup(f->store, "usr", NULL, &error);
    g_assert_no_error(error);
    g_assert_true(l->usr);
    g_autofree char *pj = ms_image_manifest_to_json(plain);
    g_assert_null(strstr(pj, "\"usr\""));

    g_assert_true(ms_image_store_check_mount(f->store, "usr", "/usr", &error));
    g_assert_no_error(error);
    g_assert_true(ms_image_store_check_mount(f->store, "plain", "/opt/tools", &error));
    g_assert_true(ms_image_store_check_mount(f->store, "plain", NULL, &error));
    g_assert_no_error(error);
    g_assert_false(ms_image_store_check_mount(f->store, "plain", "/usr/", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "image 'plain' is mounted on /usr but was not built as a /usr"));
    g_assert_nonnull(strstr(error->message, "--usr"));
    g_clear_error(&error);
    g_assert_false(ms_image_store_check_mount(f->store, "nosuch", "/usr", &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
}

/* Running domains' use, as `image list` and gc report it. */
static void
test_uses(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "usr");
    g_autofree char *d1 = g_build_filename(rundir, "domains", "0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b01", NULL);
    g_assert_cmpint(g_mkdir_with_parents(d1, 0755), ==, 0);
    g_autofree char *img = g_build_filename(d1, "images", NULL);
    g_autofree char *old = g_strnfill(64, 'a');
    g_autofree char *text = g_strdup_printf("usr %s dax\nbroken line\n../x %s blk\nusr %s blk\n", old, old,
                                            m->sha256);
    g_assert_true(g_file_set_contents(img, text, -1, NULL));
    g_autofree char *st = g_build_filename(d1, "status", NULL);
    g_assert_true(g_file_set_contents(st, "[agent]\ndomain=web1\n", -1, NULL));
    g_autoptr(GPtrArray) uses = ms_image_store_uses();
    g_assert_cmpuint(uses->len, ==, 2);
    MsImageUse *u = g_ptr_array_index(uses, 0);
    g_assert_cmpstr(u->domain, ==, "web1");
    g_assert_cmpstr(u->name, ==, "usr");
    g_assert_cmpstr(u->uuid, ==, "0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b01");
    /* the older build's blob is gone: verify_uses reports it, naming the
     * image, the domain and the digest */
    g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    g_assert_cmpuint(ms_image_store_verify_uses(f->store, "usr", notes, problems), ==, 1);
    g_assert_cmpuint(problems->len, ==, 1);
    g_autofree char *want = g_strdup_printf("image 'usr': domain 'web1' maps sha256 %s, but ", old);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(problems, 0), want));
    g_assert_cmpuint(notes->len, ==, 0);
}

/* Per-group copies: same digest, another inode; made once; a planted
 * symlink to another group's directory and hostile group names refused;
 * gc keeps a copy a running domain of the group maps and removes the rest;
 * verify catches a changed copy. */
static void
test_group_copies(Fixture *f, gconstpointer data)
{
    g_autoptr(MsImageManifest) m = add_ok(f, "usr");
    g_autoptr(GError) error = NULL;
    g_autofree char *pa = NULL, *pb = NULL, *ph = NULL, *pa2 = NULL;
    gboolean created = FALSE;
    g_autoptr(MsImageManifest) ma = ms_image_store_lookup_group(f->store, "usr", "tenant-a", FALSE, &pa, NULL,
                                                                &error);
    g_assert_null(ma);
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_FOUND);
    g_assert_nonnull(strstr(error->message, "sharing group 'tenant-a' has no copy"));
    g_clear_error(&error);
    ma = ms_image_store_lookup_group(f->store, "usr", "tenant-a", TRUE, &pa, &created, &error);
    g_assert_no_error(error);
    g_assert_true(created);
    g_autoptr(MsImageManifest) mb = ms_image_store_lookup_group(f->store, "usr", "tenant-b", TRUE, &pb, NULL,
                                                                &error);
    g_assert_no_error(error);
    g_autoptr(MsImageManifest) mh = ms_image_store_lookup_group(f->store, "usr", "host", FALSE, &ph, NULL, &error);
    g_assert_no_error(error);
    g_autofree char *want_a = g_strdup_printf("%s/groups/tenant-a/sha256-%s.img", f->store, m->sha256);
    g_assert_cmpstr(pa, ==, want_a);
    g_autofree char *want_h = g_strdup_printf("%s/blobs/sha256-%s.img", f->store, m->sha256);
    g_assert_cmpstr(ph, ==, want_h);
    struct stat sa, sb, sh;
    g_assert_cmpint(stat(pa, &sa), ==, 0);
    g_assert_cmpint(stat(pb, &sb), ==, 0);
    g_assert_cmpint(stat(ph, &sh), ==, 0);
    g_assert_cmpuint(sa.st_ino, !=, sb.st_ino);
    g_assert_cmpuint(sa.st_ino, !=, sh.st_ino);
    g_assert_cmpuint(sa.st_size, ==, m->size);
    g_assert_cmpuint(sa.st_mode & 07777, ==, 0444);
    /* made once: the second lookup finds it */
    g_autoptr(MsImageManifest) ma2 = ms_image_store_lookup_group(f->store, "usr", "tenant-a", TRUE, &pa2,
                                                                 &created, &error);
    g_assert_no_error(error);
    g_assert_false(created);
    g_autofree char *stamps = g_build_filename(f->store, "..", "stamps", NULL);
    g_assert_true(ms_image_store_verify_group_cached(f->store, "usr", "tenant-a", FALSE, stamps, &error));
    g_assert_no_error(error);

    /* hostile groups: never a path */
    const char *bad[] = { "../blobs", "a/b", "", ".hidden", "x:y" };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(MsImageManifest) x = ms_image_store_lookup_group(f->store, "usr", bad[i], TRUE, NULL, NULL,
                                                                   &error);
        g_assert_null(x);
        g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
        g_assert_nonnull(strstr(error->message, "is not a sharing group"));
        g_clear_error(&error);
    }
    g_autofree char *longg = g_strnfill(10000, 'a');
    g_assert_null(ms_image_store_lookup_group(f->store, "usr", longg, TRUE, NULL, NULL, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_clear_error(&error);

    /* groups/evil -> groups/tenant-a: refused, not followed */
    g_autofree char *evil = g_build_filename(f->store, "groups", "evil", NULL);
    g_assert_cmpint(symlink("tenant-a", evil), ==, 0);
    g_assert_null(ms_image_store_lookup_group(f->store, "usr", "evil", TRUE, NULL, NULL, &error));
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, "symbolic link"));
    g_clear_error(&error);
    g_assert_cmpint(unlink(evil), ==, 0);

    g_autoptr(GPtrArray) copies = ms_image_store_group_copies(f->store, NULL, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(copies->len, ==, 2);

    /* a running domain of tenant-a maps its copy; tenant-b has nobody */
    g_autofree char *d1 = g_build_filename(rundir, "domains", "0d3c1a62-5f4e-4b8a-9c71-2f8e6d5a4b01", NULL);
    g_assert_cmpint(g_mkdir_with_parents(d1, 0755), ==, 0);
    g_autofree char *img = g_build_filename(d1, "images", NULL);
    g_autofree char *line = g_strdup_printf("usr %s dax tenant-a\n", m->sha256);
    g_assert_true(g_file_set_contents(img, line, -1, NULL));
    g_autoptr(GPtrArray) uses = ms_image_store_uses();
    g_assert_cmpuint(uses->len, ==, 1);
    g_assert_cmpstr(((MsImageUse *)g_ptr_array_index(uses, 0))->group, ==, "tenant-a");
    g_autoptr(GPtrArray) report = NULL;
    g_assert_cmpint(ms_image_store_gc_report(f->store, &report, &error), ==, 1);
    g_assert_no_error(error);
    g_assert_true(g_file_test(pa, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(pb, G_FILE_TEST_EXISTS));
    g_autofree char *bdir = g_build_filename(f->store, "groups", "tenant-b", NULL);
    g_assert_false(g_file_test(bdir, G_FILE_TEST_EXISTS));
    g_assert_cmpuint(report->len, ==, 1);
    g_assert_nonnull(strstr(g_ptr_array_index(report, 0), "no running domain of sharing group 'tenant-b'"));

    /* verify: the copy is checked on its own */
    g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    g_assert_cmpuint(ms_image_store_verify_copies(f->store, "usr", notes, problems), ==, 0);
    g_assert_cmpuint(notes->len, ==, 1);
    g_assert_cmpint(chmod(pa, 0644), ==, 0);
    int fd = open(pa, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, "X", 1, 2048), ==, 1);
    close(fd);
    g_assert_cmpint(chmod(pa, 0444), ==, 0);
    g_assert_cmpuint(ms_image_store_verify_copies(f->store, "usr", notes, problems), ==, 1);
    g_assert_nonnull(strstr(g_ptr_array_index(problems, 0), "the copy of sharing group 'tenant-a'"));
    /* the canonical blob is untouched by a write to a copy */
    g_assert_true(ms_image_store_verify(f->store, "usr", &error));
    g_assert_no_error(error);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autoptr(GError) error = NULL;
    tmpdir = g_dir_make_tmp("ms-image-store-XXXXXX", &error);
    g_assert_no_error(error);
    rundir = g_build_filename(tmpdir, "run", NULL);
    /* before anything calls ms_runtime_dir(), which caches it */
    g_setenv("MEMSHARE_RUNTIME_DIR", rundir, TRUE);
    g_setenv("MEMSHARE_CONFIG", "/nonexistent/memshare.conf", TRUE);
    g_unsetenv("SOURCE_DATE_EPOCH");

    g_test_add_func("/image/store/names", test_names);
    g_test_add("/image/store/usr-mark", Fixture, NULL, fixture_setup, test_usr_mark, fixture_teardown);
    g_test_add("/image/store/uses", Fixture, NULL, fixture_setup, test_uses, fixture_teardown);
    g_test_add("/image/store/group-copies", Fixture, NULL, fixture_setup, test_group_copies, fixture_teardown);
    g_test_add_func("/image/store/default-path", test_default_path);
    g_test_add_func("/image/store/missing-store", test_missing_store);
    g_test_add_func("/image/store/manifest-files", test_manifest_files);
    g_test_add("/image/store/add-lookup-list", Fixture, NULL, fixture_setup, test_add_lookup_list,
               fixture_teardown);
    g_test_add("/image/store/same-content-one-blob", Fixture, NULL, fixture_setup, test_same_content_one_blob,
               fixture_teardown);
    g_test_add("/image/store/replace-collects-old-blob", Fixture, NULL, fixture_setup,
               test_replace_collects_old_blob, fixture_teardown);
    g_test_add("/image/store/verify-corrupt", Fixture, NULL, fixture_setup, test_verify_corrupt,
               fixture_teardown);
    g_test_add("/image/store/verify-cached", Fixture, NULL, fixture_setup, test_verify_cached,
               fixture_teardown);
    g_test_add("/image/store/remove-in-use", Fixture, NULL, fixture_setup, test_remove_in_use,
               fixture_teardown);
    g_test_add("/image/store/in-use-blob-kept", Fixture, NULL, fixture_setup, test_in_use_blob_kept,
               fixture_teardown);
    g_test_add("/image/store/traversal-refused", Fixture, NULL, fixture_setup, test_traversal_refused,
               fixture_teardown);
    g_test_add("/image/store/symlinks-refused", Fixture, NULL, fixture_setup, test_symlinks_refused,
               fixture_teardown);
    g_test_add("/image/store/manifest-names-other-image", Fixture, NULL, fixture_setup,
               test_manifest_names_other_image, fixture_teardown);
    int rc = g_test_run();
    const char *rm[] = { "rm", "-rf", tmpdir, NULL };
    ms_test_run(rm, NULL);
    return rc;
}
