/* tests/policy/test-sharing.c: policies/ms-sharing.c from tables in
 * tests/policy/sharing/ (resolve-cases.txt: group resolution;
 * config-cases.txt: [sharing] default-group; ksm-cases.txt: the KSM-group
 * rule with its exact refusal). One test per line; the file formats are
 * described at the top of each file. */
#include "ms-sharing.h"
#include "ms-test-cases.h"

#include <string.h>

/* '-' is NULL; @EMPTY@ and @LONG65@ stand for what a line cannot hold. */
static char *
arg(const char *tok)
{
    if (g_str_equal(tok, "-"))
        return NULL;
    if (g_str_equal(tok, "@EMPTY@"))
        return g_strdup("");
    if (g_str_equal(tok, "@LONG65@"))
        return g_strnfill(65, 'p');
    return g_strdup(tok);
}

/* Splits "LEFT => RIGHT". */
static void
split_arrow(const MsTestLine *l, char **left, char **right)
{
    const char *a = strstr(l->text, " => ");
    if (a == NULL)
        ms_test_line_fail(l, "no ' => '");
    *left = g_strndup(l->text, a - l->text);
    *right = g_strdup(a + 4);
}

static void
test_resolve(gconstpointer data)
{
    const MsTestLine *l = data;
    g_autofree char *left = NULL, *right = NULL;
    split_arrow(l, &left, &right);
    g_auto(GStrv) t = g_strsplit(left, " ", -1);
    g_assert_cmpuint(g_strv_length(t), ==, 5);
    g_autofree char *ex = arg(t[1]), *uuid = arg(t[2]), *nova = arg(t[3]);
    MsSharingDefault def;
    g_assert_true(ms_sharing_default_from_string(t[4], &def, NULL));

    MsSharingSource src = 99;
    g_autoptr(GError) error = NULL;
    g_autofree char *group = ms_sharing_resolve(ex, uuid, nova, def, &src, &error);
    if (g_str_has_prefix(right, "error ")) {
        g_assert_null(group);
        g_assert_nonnull(error);
        g_assert_cmpstr(error->message, ==, right + strlen("error "));
        g_assert_cmpint(src, ==, 99);   /* outputs only on success */
        return;
    }
    g_assert_no_error(error);
    g_auto(GStrv) want = g_strsplit(right, " ", -1);
    g_assert_cmpstr(group, ==, want[0]);
    g_assert_cmpstr(ms_sharing_source_name(src), ==, want[1]);
    /* whatever resolves is publishable in runtime files */
    g_assert_true(ms_sharing_group_is_valid(group));
}

static void
test_config(gconstpointer data)
{
    const MsTestLine *l = data;
    g_autofree char *left = NULL, *right = NULL;
    split_arrow(l, &left, &right);
    const char *value = left + strlen("config ");
    g_autoptr(GKeyFile) kf = g_key_file_new();
    if (!g_str_equal(value, "-")) {
        g_autofree char *v = arg(value);
        g_autofree char *text = g_strdup_printf("[sharing]\ndefault-group=%s\n", v);
        g_assert_true(g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, NULL));
    }
    MsSharingDefault def = 99;
    g_autoptr(GError) error = NULL;
    gboolean ok = ms_sharing_default_from_config(kf, "memshare.conf", &def, &error);
    if (g_str_has_prefix(right, "error ")) {
        g_assert_false(ok);
        g_assert_cmpstr(error->message, ==, right + strlen("error "));
        g_assert_cmpint(def, ==, 99);
        return;
    }
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_cmpstr(ms_sharing_default_name(def), ==, right);
}

static void
test_ksm(gconstpointer data)
{
    const MsTestLine *l = data;
    g_autofree char *left = NULL, *right = NULL;
    split_arrow(l, &left, &right);
    g_auto(GStrv) t = g_strsplit(left, " ", -1);
    guint n = g_strv_length(t);
    g_assert_cmpuint(n, >=, 5);
    g_autoptr(GArray) running = g_array_new(FALSE, TRUE, sizeof(MsSharingMerger));
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    for (guint i = 5; i < n; i++) {
        char **f = g_strsplit(t[i], "|", -1);
        g_assert_cmpuint(g_strv_length(f), ==, 3);
        g_ptr_array_add(keep, f);
        MsSharingMerger m = { f[0], f[1], f[2] };
        g_array_append_val(running, m);
    }
    g_autoptr(GError) error = NULL;
    gboolean ok = ms_sharing_ksm_check(t[1], t[2], t[3], g_str_equal(t[4], "1"),
                                       (const MsSharingMerger *)(void *)running->data, running->len, &error);
    if (g_str_equal(right, "ok")) {
        g_assert_no_error(error);
        g_assert_true(ok);
        return;
    }
    g_assert_true(g_str_has_prefix(right, "refused "));
    g_assert_false(ok);
    g_assert_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_REFUSED);
    g_assert_cmpstr(error->message, ==, right + strlen("refused "));
}

/* The names the parser's cases do not reach: NUL inside the buffer and
 * every control character. */
static void
test_name_bytes(void)
{
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_sharing_name_check("a\0b", 3, &error));
    g_assert_cmpstr(error->message, ==, "contains a NUL byte");
    for (int c = 1; c < 0x20; c++) {
        char name[3] = { 'a', (char)c, 0 };
        g_clear_error(&error);
        g_assert_false(ms_sharing_name_check(name, 2, &error));
        g_autofree char *want = g_strdup_printf("contains control character 0x%02x", c);
        g_assert_cmpstr(error->message, ==, want);
    }
    g_clear_error(&error);
    g_assert_false(ms_sharing_name_check("a\x7f", 2, &error));
    g_assert_cmpstr(error->message, ==, "contains control character 0x7f");
    g_autofree char *big = g_strnfill(10000, 'a');
    g_clear_error(&error);
    g_assert_false(ms_sharing_name_check(big, 10000, &error));
    g_assert_cmpstr(error->message, ==, "longer than 64 characters (10000)");
    /* runtime files: only what resolution can produce */
    g_assert_true(ms_sharing_group_is_valid("host"));
    g_assert_true(ms_sharing_group_is_valid("tenant-a"));
    g_assert_true(ms_sharing_group_is_valid("domain:6f0c1e1a-3b5e-4c1d-9a7e-2f4b8d9c0a11"));
    g_assert_true(ms_sharing_group_is_valid("nova:4b2f0c6e1d9a4c7b8e5f3a2d1c0b9e8f"));
    g_assert_false(ms_sharing_group_is_valid("domain:../../etc"));
    g_assert_false(ms_sharing_group_is_valid("nova:a/b"));
    g_assert_false(ms_sharing_group_is_valid("other:x"));
    g_assert_false(ms_sharing_group_is_valid("a\nb"));
    g_assert_false(ms_sharing_group_is_valid(""));
    g_assert_false(ms_sharing_group_is_valid(NULL));
}

/* The hook's runtime record: a domain name may hold anything (it is the
 * user's), the group only what resolution produces. */
static void
test_record(void)
{
    g_autofree char *rec = ms_sharing_record_format("web\n1\n[sharing]\ngroup=host", "tenant-a", TRUE);
    g_autofree char *name = NULL, *group = NULL;
    gboolean merging = FALSE;
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_sharing_record_parse(rec, strlen(rec), "sharing", &name, &group, &merging, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(name, ==, "web\n1\n[sharing]\ngroup=host");
    g_assert_cmpstr(group, ==, "tenant-a");
    g_assert_true(merging);

    static const struct { const char *in, *msg; } bad[] = {
        { "[sharing]\nname=x\ngroup=../../etc\nmerging=true\n", "'sharing': group '../../etc' is not a sharing group" },
        { "[sharing]\nname=x\nmerging=true\n", "'sharing': group '' is not a sharing group" },
        { "[sharing]\nname=x\ngroup=host\nmerging=maybe\n", "'sharing': merging: " },
        { "garbage\n", "'sharing': " },
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&error);
        char *n = NULL, *g = NULL;
        g_assert_false(ms_sharing_record_parse(bad[i].in, strlen(bad[i].in), "sharing", &n, &g, &merging, &error));
        g_assert_null(n);
        g_assert_null(g);
        g_assert_true(g_str_has_prefix(error->message, bad[i].msg));
    }
    g_autofree char *big = g_strnfill(MS_SHARING_RECORD_MAX + 1, 'x');
    g_clear_error(&error);
    g_assert_false(ms_sharing_record_parse(big, strlen(big), "sharing", &name, &group, &merging, &error));
    g_assert_cmpstr(error->message, ==, "'sharing': larger than 4096 bytes");
}

/* One test per line of FILE, each a "KIND ..." line. */
static void
add_file(const char *name, const char *kind, GTestDataFunc fn, GPtrArray *keep)
{
    g_autofree char *path = ms_test_data_path("sharing", name);
    GPtrArray *lines = ms_test_lines_load(path);
    g_ptr_array_add(keep, lines);
    for (guint i = 0; i < lines->len; i++) {
        const MsTestLine *l = lines->pdata[i];
        if (!g_str_has_prefix(l->text, kind) || l->text[strlen(kind)] != ' ')
            ms_test_line_fail(l, "expected a '%s' line", kind);
        g_autofree char *tp = g_strdup_printf("/sharing/%s/%s-line-%u", kind, name, l->line);
        g_test_add_data_func(tp, l, fn);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    if (g_getenv("G_TEST_SRCDIR") == NULL)
        g_error("G_TEST_SRCDIR must point at tests/policy");
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    add_file("resolve-cases.txt", "resolve", test_resolve, keep);
    add_file("config-cases.txt", "config", test_config, keep);
    add_file("ksm-cases.txt", "ksm", test_ksm, keep);
    g_test_add_func("/sharing/name-bytes", test_name_bytes);
    g_test_add_func("/sharing/record", test_record);
    return g_test_run();
}
