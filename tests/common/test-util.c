/* tests/common/test-util.c: unit tests of common/ms-util.c: bounded reads,
 * atomic writes, strict number parsing, UUID validation. */
#include "ms-util.h"
#include "ms-error.h"

#include <glib/gstdio.h>
#include <sys/stat.h>

static void
test_parse_u64(void)
{
    struct { const char *in; gboolean ok; guint64 v; } cases[] = {
        { "0", TRUE, 0 }, { "42\n", TRUE, 42 }, { "  7 ", TRUE, 7 },
        { "18446744073709551615", TRUE, G_MAXUINT64 },
        { "18446744073709551616", FALSE, 0 }, { "-1", FALSE, 0 }, { "", FALSE, 0 },
        { "12abc", FALSE, 0 }, { "0x10", FALSE, 0 }, { "+5", FALSE, 0 },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        guint64 v = 99;
        gboolean ok = ms_parse_u64(cases[i].in, "pages_sharing", &v, &error);
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok) {
            g_assert_no_error(error);
            g_assert_cmpuint(v, ==, cases[i].v);
        } else {
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
            g_assert_nonnull(strstr(error->message, "pages_sharing"));
            g_assert_cmpuint(v, ==, 99); /* output untouched on failure */
        }
    }
}

static void
test_uuid(void)
{
    g_assert_true(ms_uuid_is_valid("c7a5fdbd-edaf-9455-926a-d65c16db1809"));
    g_assert_true(ms_uuid_is_valid("C7A5FDBD-EDAF-9455-926A-D65C16DB1809"));
    g_assert_false(ms_uuid_is_valid("c7a5fdbd-edaf-9455-926a-d65c16db180"));
    g_assert_false(ms_uuid_is_valid("../../../../etc/passwd-xxxxxxxxxxxxxx"));
    g_assert_false(ms_uuid_is_valid("c7a5fdbdxedaf-9455-926a-d65c16db1809"));
    g_assert_false(ms_uuid_is_valid(NULL));
}

static void
test_read_bounded(void)
{
    g_autofree char *dir = g_dir_make_tmp("ms-util-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f", NULL);
    g_assert_true(g_file_set_contents(path, "0123456789", 10, NULL));
    g_autofree char *buf = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_file_read_bounded(path, 10, &buf, &len, &error));
    g_assert_cmpuint(len, ==, 10);
    g_assert_cmpstr(buf, ==, "0123456789");
    g_autofree char *buf2 = NULL;
    g_assert_false(ms_file_read_bounded(path, 9, &buf2, &len, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_TOO_BIG);
    g_assert_null(buf2);
    g_clear_error(&error);
    g_autofree char *missing = g_build_filename(dir, "nope", NULL);
    g_assert_false(ms_file_read_bounded(missing, 10, &buf2, &len, &error));
    g_assert_nonnull(strstr(error->message, missing));
    /* /proc files report size 0 but have contents */
    g_autofree char *self = NULL;
    g_assert_true(ms_file_read_bounded("/proc/self/stat", MS_SMALL_FILE_MAX, &self, &len, NULL));
    g_assert_cmpuint(len, >, 0);
    g_unlink(path);
    g_rmdir(dir);
}

static void
test_write_atomic(void)
{
    g_autofree char *dir = g_dir_make_tmp("ms-util-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "status", NULL);
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_file_write_atomic(path, "a=1\n", -1, 0640, &error));
    g_assert_true(ms_file_write_atomic(path, "a=2\n", -1, 0640, &error));
    g_autofree char *c = NULL;
    g_assert_true(g_file_get_contents(path, &c, NULL, NULL));
    g_assert_cmpstr(c, ==, "a=2\n");
    struct stat st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0640);
    /* no temporary file left behind */
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    int n = 0;
    while (g_dir_read_name(d))
        n++;
    g_assert_cmpint(n, ==, 1);
    g_autofree char *bad = g_build_filename(dir, "nodir", "x", NULL);
    g_assert_false(ms_file_write_atomic(bad, "x", 1, 0644, &error));
    g_assert_nonnull(error);
    g_unlink(path);
    g_rmdir(dir);
}

static void
test_runtime_dir(void)
{
    g_setenv("MEMSHARE_RUNTIME_DIR", "/tmp/ms-rt", TRUE);
    g_autofree char *d = ms_domain_runtime_dir("C7A5FDBD-EDAF-9455-926A-D65C16DB1809");
    g_assert_cmpstr(d, ==, "/tmp/ms-rt/domains/c7a5fdbd-edaf-9455-926a-d65c16db1809");
}

static void
test_config_string(void)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_assert_true(g_key_file_load_from_data(kf, "[agent]\nconnect=  qemu+ssh://h/system \nempty=\nblank=   \n"
                                            "commented=qemu:///system   # which libvirt\nhash=a#b\nonly=  # nothing\n",
                                            -1, G_KEY_FILE_NONE, NULL));
    g_autofree char *c = ms_config_get_string(kf, "agent", "connect", "qemu:///system");
    g_assert_cmpstr(c, ==, "qemu+ssh://h/system");
    g_autofree char *e = ms_config_get_string(kf, "agent", "empty", "def");
    g_assert_cmpstr(e, ==, "def");
    g_autofree char *b = ms_config_get_string(kf, "agent", "blank", "def");
    g_assert_cmpstr(b, ==, "def");
    g_autofree char *com = ms_config_get_string(kf, "agent", "commented", NULL);
    g_assert_cmpstr(com, ==, "qemu:///system");
    g_autofree char *hash = ms_config_get_string(kf, "agent", "hash", NULL);
    g_assert_cmpstr(hash, ==, "a#b");
    g_autofree char *only = ms_config_get_string(kf, "agent", "only", "def");
    g_assert_cmpstr(only, ==, "def");
    g_autofree char *m = ms_config_get_string(kf, "nosuch", "connect", NULL);
    g_assert_null(m);
    g_autofree char *n = ms_config_get_string(NULL, "agent", "connect", "def");
    g_assert_cmpstr(n, ==, "def");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/util/parse-u64", test_parse_u64);
    g_test_add_func("/util/uuid", test_uuid);
    g_test_add_func("/util/read-bounded", test_read_bounded);
    g_test_add_func("/util/write-atomic", test_write_atomic);
    g_test_add_func("/util/runtime-dir", test_runtime_dir);
    g_test_add_func("/util/config-string", test_config_string);
    return g_test_run();
}
