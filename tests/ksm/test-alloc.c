/* tests/ksm/test-alloc.c: policies/ms-alloc against data/alloc-cases.txt,
 * with the invariants checked on every case and on 10000 random snapshots. */
#include <stdio.h>
#include <string.h>
#include "ms-alloc.h"
#include "ms-test-cases.h"

#define MiB G_GUINT64_CONSTANT(1048576)

/* The invariants every allocation must hold. */
static void
check_invariants(const MsAllocHost *host, const MsAllocParams *params,
                 const MsAllocDomain *d, gsize n, const MsAllocResult *r)
{
    guint64 dist = ms_alloc_distributable(host, d, n);
    guint64 grown = 0;
    gboolean shortage = host->mem_available_bytes < host->reserve_bytes;
    for (gsize i = 0; i < n; i++) {
        guint64 lo = MIN(MAX(d[i].floor, d[i].working_set_floor), d[i].ceiling);
        if (d[i].stuck) {
            g_assert_cmpuint(r[i].target, ==, d[i].current_target);
            g_assert_cmpint(r[i].reason, ==, MS_ALLOC_REASON_STUCK);
        } else {
            g_assert_cmpuint(r[i].target, >=, lo);
            g_assert_cmpuint(r[i].target, <=, d[i].ceiling);
            g_assert_cmpuint(r[i].ideal, >=, lo);
            g_assert_cmpuint(r[i].ideal, <=, d[i].ceiling);
            /* growth only towards the ideal, unless a floor demands it */
            if (r[i].target > d[i].current_target && r[i].target > lo)
                g_assert_cmpuint(r[i].target, <=, r[i].ideal);
            if (shortage && r[i].target > d[i].current_target)
                g_assert_cmpuint(r[i].target, <=, MAX(lo, d[i].current_target));
            if (params->max_step && d[i].current_target >= lo &&
                d[i].current_target <= d[i].ceiling) {
                guint64 diff = r[i].target > d[i].current_target
                    ? r[i].target - d[i].current_target : d[i].current_target - r[i].target;
                g_assert_cmpuint(diff, <=, params->max_step);
            }
        }
        guint64 above = MAX(d[i].base, lo);
        if (!d[i].stuck && r[i].ideal > above)
            grown += r[i].ideal - above;
        if (d[i].stuck && d[i].current_target > d[i].base)
            grown += d[i].current_target - d[i].base;
        else if (!d[i].stuck && lo > d[i].base)
            grown += lo - d[i].base;
    }
    /* floors above base are a requirement that may exceed the pool */
    guint64 required = 0;
    for (gsize i = 0; i < n; i++) {
        guint64 lo = MIN(MAX(d[i].floor, d[i].working_set_floor), d[i].ceiling);
        if (d[i].stuck && d[i].current_target > d[i].base)
            required += d[i].current_target - d[i].base;
        else if (!d[i].stuck && lo > d[i].base)
            required += lo - d[i].base;
    }
    g_assert_cmpuint(grown, <=, MAX(dist, required));

    ms_test_alloc_check_reversed(ms_alloc_compute, host, params, d, n, r);
}

static void
test_case(gconstpointer data)
{
    const MsTestAllocCase *c = data;
    gsize n = c->doms->len;
    const MsAllocDomain *d = (const MsAllocDomain *)(void *)c->doms->data;
    g_autofree MsAllocResult *r = ms_test_alloc_case_run(c, ms_alloc_compute);
    check_invariants(&c->host, &c->params, d, n, r);
}

static void
test_random(void)
{
    GRand *rand = g_rand_new_with_seed(20261122);
    for (int iter = 0; iter < 10000; iter++) {
        MsAllocHost host;
        MsAllocParams params;
        gsize n;
        g_autofree MsAllocDomain *d = ms_test_alloc_random(rand, &host, &params, &n);
        g_autofree MsAllocResult *r = g_new0(MsAllocResult, n);
        ms_alloc_compute(&host, &params, d, n, r);
        check_invariants(&host, &params, d, n, r);
    }
    g_rand_free(rand);
}

static void
test_keyfile(void)
{
    MsAllocDomain d = { "0a1b2c3d-0000-4000-8000-000000000001", 3, 1 * MiB, 2, 3, 4, 5, 6, TRUE, "" };
    g_autofree char *text = ms_alloc_input_to_keyfile(&d, MS_ALLOC_WEIGHTED);
    MsAllocDomain back;
    MsAllocMode mode;
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_alloc_input_from_keyfile(text, strlen(text), "inputs", &back, &mode, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(back.uuid, ==, d.uuid);
    g_assert_cmpuint(back.weight, ==, 3);
    g_assert_cmpuint(back.base, ==, MiB);
    g_assert_cmpuint(back.floor, ==, 2);
    g_assert_cmpuint(back.ceiling, ==, 3);
    g_assert_cmpuint(back.contribution_bytes, ==, 4);
    g_assert_cmpuint(back.current_target, ==, 5);
    g_assert_cmpuint(back.working_set_floor, ==, 6);
    g_assert_true(back.stuck);
    g_assert_cmpint(mode, ==, MS_ALLOC_WEIGHTED);
    static const struct { const char *in; const char *msg; } bad[] = {
        { "uuid=x\n", "is missing" },
        { "uuid=x\nuuid=y\n", "appears twice" },
        { "garbage\n", "not key=value" },
        { "uuid=nope\nmode=equal\nweight=1\nbase=1\nfloor=1\nceiling=1\ncontribution=1\ncurrent=1\nws_floor=1\nstuck=0\n", "not a UUID" },
        { "uuid=0a1b2c3d-0000-4000-8000-000000000001\nmode=fair\nweight=1\nbase=1\nfloor=1\nceiling=1\ncontribution=1\ncurrent=1\nws_floor=1\nstuck=0\n", "unknown division mode 'fair'" },
        { "uuid=0a1b2c3d-0000-4000-8000-000000000001\nmode=equal\nweight=1\nbase=-1\nfloor=1\nceiling=1\ncontribution=1\ncurrent=1\nws_floor=1\nstuck=0\n", "base" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_clear_error(&error);
        g_assert_false(ms_alloc_input_from_keyfile(bad[i].in, strlen(bad[i].in), "inputs", &back, &mode, &error));
        g_assert_nonnull(error);
        g_test_message("%s", error->message);
        g_assert_nonnull(strstr(error->message, bad[i].msg));
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_autofree char *path = ms_test_data_path("data", "alloc-cases.txt");
    g_autoptr(GPtrArray) cases = ms_test_alloc_cases_load(path, FALSE);
    ms_test_cases_add(cases, "/alloc/case", test_case);
    g_test_add_func("/alloc/random", test_random);
    g_test_add_func("/alloc/keyfile", test_keyfile);
    return g_test_run();
}
