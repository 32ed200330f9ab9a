/* tests/ksm/test-ksm.c: ms-ksm against fixture trees (6.1 and 6.18 sysfs
 * and ksm_stat formats, malformed values, KSM missing) and the real host. */
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include "ms-ksm.h"
#include "ms-error.h"

static char *
fixture(const char *name)
{
    return g_test_build_filename(G_TEST_DIST, name, NULL);
}

static void
test_host_61(void)
{
    g_autofree char *root = fixture("sysfs-6.1");
    g_autoptr(GError) error = NULL;
    MsKsmHost h;
    g_assert_true(ms_ksm_read_host(root, &h, &error));
    g_assert_no_error(error);
    g_assert_false(MS_KSM_HAS(&h, MS_KSM_GENERAL_PROFIT));
    g_assert_false(MS_KSM_HAS(&h, MS_KSM_SMART_SCAN));
    g_assert_true(MS_KSM_HAS(&h, MS_KSM_PAGES_SHARING));
    g_assert_cmpint(h.value[MS_KSM_PAGES_SHARING], ==, 250);
    /* pages_sharing, not pages_shared, is the saving */
    g_assert_cmpint(ms_ksm_host_saved_bytes(&h, 4096), ==, 250 * 4096);
}

static void
test_host_618(void)
{
    g_autofree char *root = fixture("sysfs-6.18");
    g_autoptr(GError) error = NULL;
    MsKsmHost h;
    g_assert_true(ms_ksm_read_host(root, &h, &error));
    g_assert_no_error(error);
    for (int c = 0; c < MS_KSM_N_COUNTERS; c++)
        g_assert_true(MS_KSM_HAS(&h, c));
    g_assert_cmpint(h.value[MS_KSM_ADVISOR_MODE], ==, 1);
    g_assert_cmpint(ms_ksm_host_saved_bytes(&h, 4096), ==, -4096);
}

static void
test_host_bad(void)
{
    g_autofree char *root = fixture("sysfs-bad");
    g_autoptr(GError) error = NULL;
    MsKsmHost h;
    g_assert_false(ms_ksm_read_host(root, &h, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "kernel/mm/ksm/pages_sharing': 'abc' is not a number"));
}

static void
test_host_missing(void)
{
    g_autofree char *root = fixture("sysfs-noksm");
    g_autoptr(GError) error = NULL;
    MsKsmHost h;
    g_assert_false(ms_ksm_read_host(root, &h, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_SUPPORTED);
}

static void
test_parse_counter(void)
{
    static const struct { const char *in; gboolean ok; gint64 v; } cases[] = {
        { "0\n", TRUE, 0 }, { "123", TRUE, 123 }, { "-5\n", TRUE, -5 },
        { "", FALSE, 0 }, { "abc", FALSE, 0 }, { "1 2", FALSE, 0 },
        { "+1", FALSE, 0 }, { "99999999999999999999", FALSE, 0 }, { "-", FALSE, 0 },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        gint64 v = 77;
        gboolean ok = ms_ksm_parse_counter(cases[i].in, strlen(cases[i].in), "x", &v, &error);
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok)
            g_assert_cmpint(v, ==, cases[i].v);
        else
            g_assert_cmpint(v, ==, 77);
    }
    g_autoptr(GError) error = NULL;
    gint64 v;
    g_assert_false(ms_ksm_parse_counter("1\0002", 3, "x", &v, &error));
}

static void
test_stat(void)
{
    g_autoptr(GError) error = NULL;
    MsKsmStat s;
    g_autofree char *p61 = fixture("proc-6.1");
    g_assert_true(ms_ksm_read_process(p61, 100, &s, &error));
    g_assert_no_error(error);
    g_assert_false(s.present & MS_KSM_STAT_PROCESS_PROFIT);
    g_assert_cmpuint(s.merging_pages, ==, 30);
    g_assert_cmpint(ms_ksm_process_contribution(&s, 4096), ==, 30 * 4096);

    g_autofree char *p618 = fixture("proc-6.18");
    g_assert_true(ms_ksm_read_process(p618, 100, &s, &error));
    g_assert_no_error(error);
    g_assert_true(s.mergeable);
    g_assert_false(s.merge_any);
    g_assert_cmpint(ms_ksm_process_contribution(&s, 4096), ==, -200);

    g_autofree char *pold = fixture("proc-old");
    g_assert_true(ms_ksm_read_process(pold, 100, &s, &error));
    g_assert_cmpuint(s.present, ==, MS_KSM_STAT_MERGING_PAGES);
    g_assert_cmpuint(s.merging_pages, ==, 42);

    g_autofree char *pdup = fixture("proc-dup");
    g_assert_false(ms_ksm_read_process(pdup, 100, &s, &error));
    g_assert_nonnull(strstr(error->message, "appears twice"));
    g_clear_error(&error);
    g_autofree char *pbad = fixture("proc-bad");
    g_assert_false(ms_ksm_read_process(pbad, 100, &s, &error));
    g_assert_nonnull(strstr(error->message, "'maybe' is not yes or no"));
    g_clear_error(&error);
    g_assert_false(ms_ksm_read_process(pbad, 101, &s, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_NOT_SUPPORTED);
}

static void
test_set(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *tmp = g_dir_make_tmp("ms-ksm-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *dir = g_build_filename(tmp, "kernel", "mm", "ksm", NULL);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_autofree char *run = g_build_filename(dir, "run", NULL);
    g_assert_true(g_file_set_contents(run, "0\n", -1, NULL));
    g_assert_true(ms_ksm_set(tmp, "run", 1, &error));
    g_autofree char *got = NULL;
    g_assert_true(g_file_get_contents(run, &got, NULL, NULL));
    g_assert_cmpstr(got, ==, "1");
    g_assert_false(ms_ksm_set(tmp, "merge_across_nodes", 0, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ms_ksm_set(tmp, "run", 3, &error));
    g_clear_error(&error);
    g_assert_false(ms_ksm_set(tmp, "pages_to_scan", 5, &error)); /* no file */
    g_unlink(run);
    g_rmdir(dir);
    g_autofree char *mm = g_path_get_dirname(dir);
    g_autofree char *kernel = g_path_get_dirname(mm);
    g_rmdir(mm);
    g_rmdir(kernel);
    g_rmdir(tmp);
}

static void
test_real_host(void)
{
    if (!g_file_test("/sys/kernel/mm/ksm", G_FILE_TEST_IS_DIR)) {
        g_test_skip("no KSM on this host");
        return;
    }
    g_autoptr(GError) error = NULL;
    MsKsmHost h;
    g_assert_true(ms_ksm_read_host(NULL, &h, &error));
    g_assert_no_error(error);
    for (int c = 0; c < MS_KSM_N_COUNTERS; c++) {
        g_autofree char *p = g_build_filename("/sys/kernel/mm/ksm", ms_ksm_counter_name(c), NULL);
        g_assert_cmpint(MS_KSM_HAS(&h, c), ==, g_file_test(p, G_FILE_TEST_EXISTS));
    }
    g_assert_cmpint(h.value[MS_KSM_PAGES_SHARING], >=, 0);
    MsKsmStat s;
    if (g_file_test("/proc/self/ksm_stat", G_FILE_TEST_EXISTS) ||
        g_file_test("/proc/self/ksm_merging_pages", G_FILE_TEST_EXISTS)) {
        g_assert_true(ms_ksm_read_process(NULL, getpid(), &s, &error));
        g_assert_no_error(error);
        g_assert_true(s.present & MS_KSM_STAT_MERGING_PAGES);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ksm/host/6.1", test_host_61);
    g_test_add_func("/ksm/host/6.18", test_host_618);
    g_test_add_func("/ksm/host/malformed", test_host_bad);
    g_test_add_func("/ksm/host/missing", test_host_missing);
    g_test_add_func("/ksm/parse-counter", test_parse_counter);
    g_test_add_func("/ksm/stat", test_stat);
    g_test_add_func("/ksm/set", test_set);
    g_test_add_func("/ksm/real-host", test_real_host);
    return g_test_run();
}
