/* tests/balloon/test-stuck.c: stuck detection (policies/ms-alloc.c,
 * ms_alloc_stuck_update) against data/stuck-cases.txt: each line one
 * period, the state after it as the expectation. */
#include "ms-alloc.h"

#include <stdio.h>
#include <string.h>

#define MiB (1024ULL * 1024)

typedef struct {
    char *name;
    GPtrArray *lines; /* the block's lines after "case" */
} Case;

static void
case_free(gpointer p)
{
    Case *c = p;
    g_free(c->name);
    g_ptr_array_unref(c->lines);
    g_free(c);
}

static GPtrArray *
load_cases(void)
{
    g_autofree char *path = g_test_build_filename(G_TEST_DIST, "data", "stuck-cases.txt", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, &error));
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    GPtrArray *cases = g_ptr_array_new_with_free_func(case_free);
    Case *c = NULL;
    for (guint i = 0; lines[i]; i++) {
        const char *l = lines[i];
        if (*l == '\0' || *l == '#')
            continue;
        if (g_str_has_prefix(l, "case ")) {
            g_assert_null(c);
            c = g_new0(Case, 1);
            c->name = g_strdup(l + 5);
            c->lines = g_ptr_array_new_with_free_func(g_free);
        } else if (g_str_equal(l, "end")) {
            g_assert_nonnull(c);
            g_ptr_array_add(cases, c);
            c = NULL;
        } else if (c != NULL) {
            g_ptr_array_add(c->lines, g_strdup(l));
        } else {
            g_error("%s: line %u outside a case: '%s'", path, i + 1, l);
        }
    }
    g_assert_null(c);
    return cases;
}

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
    const Case *c = data;
    MsAllocStuck s;
    gboolean started = FALSE;
    for (guint i = 0; i < c->lines->len; i++) {
        const char *l = c->lines->pdata[i];
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
            g_error("case %s: cannot parse '%s'", c->name, l);
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
    g_autoptr(GPtrArray) cases = load_cases();
    g_assert_cmpuint(cases->len, >, 0);
    for (guint i = 0; i < cases->len; i++) {
        Case *c = g_ptr_array_index(cases, i);
        g_autofree char *p = g_strdup_printf("/balloon/stuck/%s", c->name);
        g_test_add_data_func(p, c, test_case);
    }
    return g_test_run();
}
