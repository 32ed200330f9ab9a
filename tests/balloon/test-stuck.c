/* tests/balloon/test-stuck.c: stuck detection (policies/ms-alloc.c,
 * ms_alloc_stuck_update) against data/stuck-cases.txt: each line one
 * period, the state after it as the expectation. */
#include "ms-alloc.h"
#include "ms-test-cases.h"

#include <stdio.h>
#include <string.h>

#define MiB (1024ULL * 1024)

static const char *
change_name(MsAllocStuckChange c)
{
    switch (c) {
    case MS_ALLOC_STUCK_SAME:
        return "same";
    case MS_ALLOC_STUCK_BECAME:
        return "became";
    case MS_ALLOC_STUCK_MOVING:
        return "moving";
    }
    return "?";
}

static void
test_case(gconstpointer data)
{
    const MsTestCase *c = data;
    MsAllocStuck s;
    gboolean started = FALSE;
    for (guint i = 0; i < c->lines->len; i++) {
        const MsTestLine *line = c->lines->pdata[i];
        const char *l = line->text;
        guint64 start, t, target, actual;
        guint still;
        char stuck[8], change[16];
        if (sscanf(l, "start %" G_GUINT64_FORMAT, &start) == 1) {
            ms_alloc_stuck_init(&s, start * MiB);
            started = TRUE;
            continue;
        }
        if (sscanf(l, "at %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                      " => %u %7s %15s", &t, &target, &actual, &still, stuck, change) != 6)
            ms_test_line_fail(line, "not a start or at line");
        g_assert_true(started);
        MsAllocStuckChange got = ms_alloc_stuck_update(&s, target * MiB, actual * MiB,
                                                       (gint64)t * G_USEC_PER_SEC);
        g_test_message("%s: %s -> still %u stuck %d %s", c->name, l, s.still_ticks, s.stuck,
                       change_name(got));
        g_assert_cmpuint(s.still_ticks, ==, still);
        g_assert_cmpstr(s.stuck ? "yes" : "no", ==, stuck);
        g_assert_cmpstr(change_name(got), ==, change);
        g_assert_cmpuint(s.last_actual, ==, actual * MiB);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autofree char *path = ms_test_data_path("data", "stuck-cases.txt");
    g_autoptr(GPtrArray) cases = ms_test_cases_load(path);
    ms_test_cases_add(cases, "/balloon/stuck", test_case);
    return g_test_run();
}
