/* tests/history/test-history.c: the agent's bounded timeline: line format
 * from a status file, append with trimming (never more than 2 x limit
 * lines, always the newest kept), parsing that skips a line cut by a crash,
 * and an unwritable path reported as an error. */
#include "ms-history.h"

#include <glib/gstdio.h>
#include <math.h>

static void
test_format(void)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_uint64(kf, "balloon", "actual", 536870912);
    g_key_file_set_uint64(kf, "tracking", "used", 12345);
    g_autofree char *line = ms_history_format_line(kf, 1700000000);
    g_assert_cmpstr(line, ==, "1700000000 536870912 - - - - 12345 - -\n");
}

static guint
count_data_lines(const char *path)
{
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    guint n = 0;
    for (char **p = lines; *p; p++)
        n += **p && **p != '#';
    return n;
}

static void
test_append_trim_parse(void)
{
    g_autofree char *dir = g_dir_make_tmp("ms-history-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "history", NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    guint max_seen = 0;
    for (guint i = 0; i < 100; i++) {
        g_key_file_set_uint64(kf, "balloon", "actual", i);
        g_autofree char *line = ms_history_format_line(kf, 1000 + i);
        g_autoptr(GError) error = NULL;
        g_assert_true(ms_history_append(path, line, 5, &error));
        g_assert_no_error(error);
        max_seen = MAX(max_seen, count_data_lines(path));
    }
    /* bounded: never more than 2 x limit (+ the line just appended) */
    g_assert_cmpuint(max_seen, <=, 2 * 5 + 1);

    g_autofree char *text = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &text, &len, NULL));
    /* a crash cut the last append, and someone wrote garbage */
    g_autofree char *damaged = g_strconcat(text, "1200 7 x y\n", "1300 5", NULL);
    guint ncol, skipped;
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) rows = ms_history_parse(damaged, strlen(damaged), &ncol, &skipped, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(skipped, ==, 2);
    guint nrows = rows->len / (ncol + 1);
    g_assert_cmpuint(nrows, >=, 5);
    /* the newest survive: the last row is i = 99 */
    double *last = &g_array_index(rows, double, (nrows - 1) * (ncol + 1));
    g_assert_cmpfloat(last[0], ==, 1099);
    g_assert_cmpfloat(last[1], ==, 99);
    g_assert_true(isnan(last[2]));

    g_autoptr(GError) e2 = NULL;
    g_assert_null(ms_history_parse("hello\n", 6, &ncol, &skipped, &e2));
    g_assert_nonnull(e2);

    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    g_assert_cmpint(system(cmd), ==, 0);
}

static void
test_unwritable(void)
{
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_history_append("/nonexistent-dir/history", "1 2\n", 5, &error));
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, "/nonexistent-dir/history"));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/history/format", test_format);
    g_test_add_func("/history/append-trim-parse", test_append_trim_parse);
    g_test_add_func("/history/unwritable", test_unwritable);
    return g_test_run();
}
