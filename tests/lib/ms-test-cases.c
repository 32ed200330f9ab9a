/* tests/lib/ms-test-cases.c: the case-file reader of the unit tests and the
 * allocation tables' parser (ms-test-cases.h). */
#include "ms-test-cases.h"

#include <stdio.h>
#include <string.h>

#define MiB G_GUINT64_CONSTANT(1048576)

static void
line_free(gpointer p)
{
    MsTestLine *l = p;
    g_free(l->file);
    g_free(l->text);
    g_free(l);
}

static void
case_free(gpointer p)
{
    MsTestCase *c = p;
    g_free(c->name);
    line_free(c->at);
    g_ptr_array_unref(c->lines);
    g_free(c);
}

char *
ms_test_data_path(const char *dir, const char *file)
{
    if (dir == NULL)
        return g_test_build_filename(G_TEST_DIST, file, NULL);
    return g_test_build_filename(G_TEST_DIST, dir, file, NULL);
}

void
ms_test_line_fail(const MsTestLine *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_error("%s:%u: %s: '%s'", l->file, l->line, why, l->text);
}

GPtrArray *
ms_test_lines_load(const char *path)
{
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    if (!g_file_get_contents(path, &text, NULL, &error))
        g_error("%s", error->message);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    GPtrArray *out = g_ptr_array_new_with_free_func(line_free);
    for (guint i = 0; lines[i]; i++) {
        char *t = g_strstrip(lines[i]);
        if (*t == '\0' || *t == '#')
            continue;
        MsTestLine *l = g_new0(MsTestLine, 1);
        l->file = g_strdup(path);
        l->line = i + 1;
        l->text = g_strdup(t);
        g_ptr_array_add(out, l);
    }
    if (out->len == 0)
        g_error("%s: no cases", path);
    return out;
}

GPtrArray *
ms_test_cases_load(const char *path)
{
    g_autoptr(GPtrArray) lines = ms_test_lines_load(path);
    /* each line moves to its case (or is freed here) */
    g_ptr_array_set_free_func(lines, NULL);
    GPtrArray *cases = g_ptr_array_new_with_free_func(case_free);
    MsTestCase *c = NULL;
    for (guint i = 0; i < lines->len; i++) {
        MsTestLine *l = lines->pdata[i];
        if (g_str_has_prefix(l->text, "case ")) {
            if (c != NULL)
                ms_test_line_fail(l, "case '%s' has no 'end'", c->name);
            c = g_new0(MsTestCase, 1);
            c->name = g_strdup(g_strstrip(l->text + 5));
            c->at = l;
            c->lines = g_ptr_array_new_with_free_func(line_free);
        } else if (g_str_equal(l->text, "end")) {
            if (c == NULL)
                ms_test_line_fail(l, "'end' outside a case");
            g_ptr_array_add(cases, c);
            c = NULL;
            line_free(l);
        } else if (c != NULL) {
            g_ptr_array_add(c->lines, l);
        } else {
            ms_test_line_fail(l, "line outside a case");
        }
    }
    if (c != NULL)
        ms_test_line_fail(c->at, "case '%s' has no 'end'", c->name);
    return cases;
}

void
ms_test_cases_add(GPtrArray *cases, const char *prefix, GTestDataFunc fn)
{
    for (guint i = 0; i < cases->len; i++) {
        const char *name = *(char **)cases->pdata[i]; /* both case types start with their name */
        g_autofree char *p = g_strdup_printf("%s/%s", prefix, name);
        g_test_add_data_func(p, cases->pdata[i], fn);
    }
}

static void
alloc_case_free(gpointer p)
{
    MsTestAllocCase *c = p;
    g_free(c->name);
    g_array_unref(c->doms);
    g_array_unref(c->expect);
    g_ptr_array_unref(c->reason);
    g_array_unref(c->groups);
    g_free(c);
}

/* "dom UUID [GROUP] WEIGHT BASE FLOOR CEILING CONTRIB CURRENT WSFLOOR STUCK
 *  => TARGET REASON", sizes in MiB. */
static void
alloc_dom_parse(const MsTestLine *l, gboolean grouped, MsTestAllocCase *c)
{
    g_auto(GStrv) t = g_strsplit_set(l->text, " \t", -1);
    GPtrArray *tok = g_ptr_array_new();
    for (guint i = 1; t[i]; i++)
        if (*t[i])
            g_ptr_array_add(tok, t[i]);
    guint want = grouped ? 14 : 13;
    if (tok->len != want - 1 || !g_str_equal(tok->pdata[want - 4], "=>")) {
        g_ptr_array_unref(tok);
        ms_test_line_fail(l, "expected %u columns with '=>' before the last two", want);
    }
    MsAllocDomain d = { 0 };
    guint k = 0;
    if (g_strlcpy(d.uuid, tok->pdata[k++], sizeof d.uuid) >= sizeof d.uuid)
        ms_test_line_fail(l, "uuid too long");
    if (grouped) {
        const char *g = tok->pdata[k++];
        if (!g_str_equal(g, "-")) {
            if (!ms_sharing_group_is_valid(g))
                ms_test_line_fail(l, "'%s' is not a sharing group", g);
            g_strlcpy(d.group, g, sizeof d.group);
        }
    }
    guint64 v[9];
    for (guint i = 0; i < 9; i++) {
        const char *s = tok->pdata[k++];
        if (i == 8)
            s = tok->pdata[k++]; /* past "=>" */
        if (!g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64 / MiB, &v[i], NULL))
            ms_test_line_fail(l, "'%s' is not a number", s);
    }
    d.weight = v[0];
    d.base = v[1] * MiB;
    d.floor = v[2] * MiB;
    d.ceiling = v[3] * MiB;
    d.contribution_bytes = v[4] * MiB;
    d.current_target = v[5] * MiB;
    d.working_set_floor = v[6] * MiB;
    d.stuck = v[7] != 0;
    guint64 target = v[8] * MiB;
    g_array_append_val(c->doms, d);
    g_array_append_val(c->expect, target);
    g_ptr_array_add(c->reason, g_strdup(tok->pdata[k]));
    g_ptr_array_unref(tok);
}

GPtrArray *
ms_test_alloc_cases_load(const char *path, gboolean grouped)
{
    g_autoptr(GPtrArray) blocks = ms_test_cases_load(path);
    GPtrArray *cases = g_ptr_array_new_with_free_func(alloc_case_free);
    for (guint b = 0; b < blocks->len; b++) {
        const MsTestCase *blk = blocks->pdata[b];
        MsTestAllocCase *c = g_new0(MsTestAllocCase, 1);
        c->name = g_strdup(blk->name);
        c->doms = g_array_new(FALSE, TRUE, sizeof(MsAllocDomain));
        c->expect = g_array_new(FALSE, TRUE, sizeof(guint64));
        c->reason = g_ptr_array_new_with_free_func(g_free);
        c->groups = g_array_new(FALSE, TRUE, sizeof(MsAllocGroup));
        g_ptr_array_add(cases, c);
        for (guint i = 0; i < blk->lines->len; i++) {
            const MsTestLine *l = blk->lines->pdata[i];
            char a[80];
            guint64 x, y, z;
            guint m;
            if (sscanf(l->text, "host %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                       &x, &y, &z) == 3) {
                c->host = (MsAllocHost){ x * MiB, y * MiB, z * MiB };
            } else if (sscanf(l->text, "params %79s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, a, &x, &y) == 3) {
                if (!ms_alloc_mode_from_string(a, &c->params.mode))
                    ms_test_line_fail(l, "unknown mode '%s'", a);
                c->params.max_step = x * MiB;
                c->params.hysteresis = y * MiB;
            } else if (g_str_has_prefix(l->text, "dom ")) {
                alloc_dom_parse(l, grouped, c);
            } else if (grouped && sscanf(l->text, "group %79s %u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                         a, &m, &x, &y) == 4) {
                MsAllocGroup g = { 0 };
                g_strlcpy(g.group, a, sizeof g.group);
                g.members = m;
                g.saved_bytes = x * MiB;
                g.pool_bytes = y * MiB;
                g_array_append_val(c->groups, g);
            } else {
                ms_test_line_fail(l, "not a host, params, dom%s line", grouped ? " or group" : "");
            }
        }
        if (c->doms->len == 0)
            ms_test_line_fail(blk->at, "case without a dom line");
        if (grouped && c->groups->len == 0)
            ms_test_line_fail(blk->at, "case without a group line");
    }
    return cases;
}

gboolean
ms_test_regenerating(void)
{
    const char *v = g_getenv("MS_REGENERATE");
    return v != NULL && *v != '\0' && !g_str_equal(v, "0");
}

/* Rewrites PATH with the first line MATCH accepts replaced by TEXT. */
static void
regenerate(const char *path, gboolean (*match)(const char *line, guint n, gconstpointer data),
           gconstpointer data, const char *text)
{
    g_autofree char *old = NULL;
    g_autoptr(GError) error = NULL;
    if (!g_file_get_contents(path, &old, NULL, &error))
        g_error("%s", error->message);
    g_auto(GStrv) lines = g_strsplit(old, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        if (match(lines[i], i + 1, data)) {
            g_free(lines[i]);
            lines[i] = g_strdup(text);
            g_autofree char *out = g_strjoinv("\n", lines);
            if (!g_file_set_contents(path, out, -1, &error))
                g_error("%s", error->message);
            g_test_message("regenerated %s:%u: %s", path, i + 1, text);
            return;
        }
    }
    g_error("%s: no line to regenerate as '%s'", path, text);
}

static gboolean
match_line(const char *line, guint n, gconstpointer data)
{
    (void)line;
    return n == GPOINTER_TO_UINT(data);
}

static gboolean
match_key(const char *line, guint n, gconstpointer data)
{
    (void)n;
    gsize len = strlen(data);
    return strncmp(line, data, len) == 0 && line[len] == '=';
}

void
ms_test_regenerate_line(const char *path, guint line, const char *text)
{
    regenerate(path, match_line, GUINT_TO_POINTER(line), text);
}

void
ms_test_regenerate_key(const char *path, const char *key, const char *value)
{
    g_autofree char *text = g_strdup_printf("%s=%s", key, value);
    regenerate(path, match_key, key, text);
}

MsAllocResult *
ms_test_alloc_case_run(const MsTestAllocCase *c, MsTestAllocFn fn)
{
    const MsAllocDomain *d = (const MsAllocDomain *)(void *)c->doms->data;
    MsAllocResult *r = g_new0(MsAllocResult, c->doms->len);
    fn(&c->host, &c->params, d, c->doms->len, r);
    for (guint i = 0; i < c->doms->len; i++) {
        g_test_message("%s %s: target %" G_GUINT64_FORMAT " MiB (%s)", c->name, d[i].uuid,
                       r[i].target / MiB, ms_alloc_reason_name(r[i].reason));
        g_assert_cmpuint(r[i].target, ==, g_array_index(c->expect, guint64, i));
        g_assert_cmpstr(ms_alloc_reason_name(r[i].reason), ==, g_ptr_array_index(c->reason, i));
    }
    return r;
}

void
ms_test_alloc_check_reversed(MsTestAllocFn fn, const MsAllocHost *host, const MsAllocParams *params,
                             const MsAllocDomain *d, gsize n, const MsAllocResult *r)
{
    g_autofree MsAllocDomain *rev = g_new(MsAllocDomain, n);
    g_autofree MsAllocResult *rr = g_new0(MsAllocResult, n);
    for (gsize i = 0; i < n; i++)
        rev[i] = d[n - 1 - i];
    fn(host, params, rev, n, rr);
    for (gsize i = 0; i < n; i++) {
        g_assert_cmpuint(rr[n - 1 - i].target, ==, r[i].target);
        g_assert_cmpint(rr[n - 1 - i].reason, ==, r[i].reason);
    }
}

MsAllocDomain *
ms_test_alloc_random(GRand *rand, MsAllocHost *host, MsAllocParams *params, gsize *n)
{
    *n = g_rand_int_range(rand, 1, 9);
    *host = (MsAllocHost){
        g_rand_int_range(rand, 0, 4096) * MiB,
        g_rand_int_range(rand, 0, 8192) * MiB,
        g_rand_int_range(rand, 0, 4096) * MiB,
    };
    *params = (MsAllocParams){
        (MsAllocMode)g_rand_int_range(rand, 0, 3),
        g_rand_boolean(rand) ? g_rand_int_range(rand, 1, 512) * MiB : 0,
        g_rand_boolean(rand) ? g_rand_int_range(rand, 1, 64) * MiB : 0,
    };
    MsAllocDomain *d = g_new0(MsAllocDomain, *n);
    for (gsize i = 0; i < *n; i++) {
        g_snprintf(d[i].uuid, sizeof d[i].uuid, "%08x-0000-0000-0000-%012x", g_rand_int(rand), (guint)i);
        d[i].weight = g_rand_int_range(rand, 0, 10);
        d[i].base = g_rand_int_range(rand, 256, 4096) * MiB;
        d[i].floor = g_rand_int_range(rand, 128, 4096) * MiB;
        d[i].ceiling = g_rand_int_range(rand, 256, 8192) * MiB;
        d[i].contribution_bytes = g_rand_boolean(rand) ? g_rand_int_range(rand, 0, 1024) * MiB : 0;
        d[i].current_target = g_rand_int_range(rand, 128, 8192) * MiB;
        d[i].working_set_floor = g_rand_boolean(rand) ? g_rand_int_range(rand, 0, 4096) * MiB : 0;
        d[i].stuck = g_rand_int_range(rand, 0, 10) == 0;
    }
    return d;
}
