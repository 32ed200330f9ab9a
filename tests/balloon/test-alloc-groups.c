/* tests/balloon/test-alloc-groups.c: the per-group balloon allocation
 * (policies/ms-alloc.c: ms_alloc_groups, ms_alloc_compute_grouped) against
 * data/alloc-group-cases.txt (format at its top), with the invariants checked
 * on every case and on 10000 random snapshots:
 *   - one group gives exactly ms_alloc_compute (groups change nothing for a
 *     host that shares everything);
 *   - with several groups, a group's saving never exceeds what its members
 *     merge, the pools together never exceed the host's saving nor its room,
 *     and a group's members grow together by at most its pool (floors apart);
 *   - input order does not matter. */
#include <stdio.h>
#include <string.h>
#include "ms-alloc.h"
#include "ms-test-cases.h"

#define MiB G_GUINT64_CONSTANT(1048576)

static guint64
lo_of(const MsAllocDomain *d)
{
    return MIN(MAX(d->floor, d->working_set_floor), d->ceiling);
}

static void
check_invariants(const MsAllocHost *host, const MsAllocParams *params,
                 const MsAllocDomain *d, gsize n, const MsAllocResult *r)
{
    g_autoptr(GArray) groups = ms_alloc_groups(host, d, n);
    if (groups->len == 1) {
        g_autofree MsAllocResult *plain = g_new0(MsAllocResult, n);
        ms_alloc_compute(host, params, d, n, plain);
        for (gsize i = 0; i < n; i++) {
            g_assert_cmpuint(plain[i].target, ==, r[i].target);
            g_assert_cmpuint(plain[i].ideal, ==, r[i].ideal);
            g_assert_cmpint(plain[i].reason, ==, r[i].reason);
        }
    } else {
        MsAllocHost unlimited = *host;
        unlimited.saved_bytes = G_MAXUINT64;
        guint64 room = ms_alloc_distributable(&unlimited, d, n);
        guint64 sum_pool = 0, sum_saved = 0;
        for (guint g = 0; g < groups->len; g++) {
            const MsAllocGroup *G = &g_array_index(groups, MsAllocGroup, g);
            g_assert_cmpuint(G->saved_bytes, <=, G->contribution_bytes);
            g_assert_cmpuint(G->pool_bytes, <=, G->saved_bytes);
            sum_pool += G->pool_bytes;
            sum_saved += G->saved_bytes;
        }
        g_assert_cmpuint(sum_saved, <=, host->saved_bytes);
        g_assert_cmpuint(sum_pool, <=, MIN(host->saved_bytes, room));
    }
    /* per group: growth above max(base, lo) within the pool, as
     * tests/ksm/test-alloc.c checks for the host */
    for (guint g = 0; g < groups->len; g++) {
        const MsAllocGroup *G = &g_array_index(groups, MsAllocGroup, g);
        guint64 grown = 0, required = 0;
        guint members = 0;
        for (gsize i = 0; i < n; i++) {
            char buf[MS_SHARING_GROUP_MAX + 1];
            if (strcmp(ms_alloc_domain_group(&d[i], buf), G->group) != 0)
                continue;
            members++;
            guint64 lo = lo_of(&d[i]), above = MAX(d[i].base, lo);
            if (d[i].stuck) {
                g_assert_cmpuint(r[i].target, ==, d[i].current_target);
                if (d[i].current_target > d[i].base)
                    required += d[i].current_target - d[i].base;
                continue;
            }
            g_assert_cmpuint(r[i].target, >=, lo);
            g_assert_cmpuint(r[i].target, <=, MAX(d[i].ceiling, lo));
            if (r[i].ideal > above)
                grown += r[i].ideal - above;
            if (lo > d[i].base)
                required += lo - d[i].base;
        }
        g_assert_cmpuint(members, ==, G->members);
        g_assert_cmpuint(grown, <=, MAX(G->pool_bytes, required) + 0);
    }
    ms_test_alloc_check_reversed(ms_alloc_compute_grouped, host, params, d, n, r);
}

static void
test_case(gconstpointer data)
{
    const MsTestAllocCase *c = data;
    gsize n = c->doms->len;
    const MsAllocDomain *d = (const MsAllocDomain *)(void *)c->doms->data;
    g_autofree MsAllocResult *r = ms_test_alloc_case_run(c, ms_alloc_compute_grouped);
    g_autoptr(GArray) groups = ms_alloc_groups(&c->host, d, n);
    for (guint g = 0; g < groups->len; g++) {
        const MsAllocGroup *G = &g_array_index(groups, MsAllocGroup, g);
        g_test_message("%s group %s: %u member(s), saved %" G_GUINT64_FORMAT " MiB, pool %" G_GUINT64_FORMAT
                       " MiB", c->name, G->group, G->members, G->saved_bytes / MiB, G->pool_bytes / MiB);
    }
    g_assert_cmpuint(groups->len, ==, c->groups->len);
    for (guint g = 0; g < groups->len; g++) {
        const MsAllocGroup *G = &g_array_index(groups, MsAllocGroup, g);
        const MsAllocGroup *E = &g_array_index(c->groups, MsAllocGroup, g);
        g_assert_cmpstr(G->group, ==, E->group);
        g_assert_cmpuint(G->members, ==, E->members);
        g_assert_cmpuint(G->saved_bytes, ==, E->saved_bytes);
        g_assert_cmpuint(G->pool_bytes, ==, E->pool_bytes);
    }
    check_invariants(&c->host, &c->params, d, n, r);
}

static void
test_random(void)
{
    static const char *const names[] = { "", "host", "tenant-a", "tenant-b", "nova:4b2f0c6e1d9a4c7b8e5f3a2d1c0b9e8f" };
    GRand *rand = g_rand_new_with_seed(20261202);
    for (int iter = 0; iter < 10000; iter++) {
        MsAllocHost host;
        MsAllocParams params;
        gsize n;
        g_autofree MsAllocDomain *d = ms_test_alloc_random(rand, &host, &params, &n);
        g_autofree MsAllocResult *r = g_new0(MsAllocResult, n);
        /* a third of the snapshots in one group: must equal the plain function */
        gboolean one = g_rand_int_range(rand, 0, 3) == 0;
        for (gsize i = 0; i < n; i++)
            g_strlcpy(d[i].group, one ? "host" : names[g_rand_int_range(rand, 0, G_N_ELEMENTS(names))],
                      sizeof d[i].group);
        ms_alloc_compute_grouped(&host, &params, d, n, r);
        check_invariants(&host, &params, d, n, r);
    }
    g_rand_free(rand);
}

/* The group travels in the inputs file; old files without it read as the
 * domain alone; a hostile one is refused. */
static void
test_keyfile_group(void)
{
    MsAllocDomain d = { .uuid = "0a1b2c3d-0000-4000-8000-000000000001", .weight = 1, .group = "tenant-a" };
    g_autofree char *text = ms_alloc_input_to_keyfile(&d, MS_ALLOC_EQUAL);
    g_assert_nonnull(strstr(text, "\ngroup=tenant-a\n"));
    MsAllocDomain back;
    MsAllocMode mode;
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_alloc_input_from_keyfile(text, strlen(text), "inputs", &back, &mode, &error));
    g_assert_cmpstr(back.group, ==, "tenant-a");

    const char *old = "uuid=0A1B2C3D-0000-4000-8000-000000000001\nmode=equal\nweight=1\nbase=1\nfloor=1\n"
                      "ceiling=1\ncontribution=1\ncurrent=1\nws_floor=1\nstuck=0\n";
    g_assert_true(ms_alloc_input_from_keyfile(old, strlen(old), "inputs", &back, &mode, &error));
    char buf[MS_SHARING_GROUP_MAX + 1];
    g_assert_cmpstr(ms_alloc_domain_group(&back, buf), ==, "domain:0a1b2c3d-0000-4000-8000-000000000001");

    static const char *const bad[] = { "../../etc", "a/b", "x:y", "", "domain:nope" };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *in = g_strdup_printf("%sgroup=%s\n", old, bad[i]);
        g_clear_error(&error);
        g_assert_false(ms_alloc_input_from_keyfile(in, strlen(in), "inputs", &back, &mode, &error));
        g_autofree char *want = g_strdup_printf("'inputs': group '%s' is not a sharing group", bad[i]);
        g_assert_cmpstr(error->message, ==, want);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autofree char *path = ms_test_data_path("data", "alloc-group-cases.txt");
    g_autoptr(GPtrArray) cases = ms_test_alloc_cases_load(path, TRUE);
    ms_test_cases_add(cases, "/alloc-groups/case", test_case);
    g_test_add_func("/alloc-groups/random", test_random);
    g_test_add_func("/alloc-groups/keyfile", test_keyfile_group);
    return g_test_run();
}
