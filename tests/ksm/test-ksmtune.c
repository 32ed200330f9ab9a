/* tests/ksm/test-ksmtune.c: the host KSM tuner's decision over a table of
 * host states (with and without the kernel's advisor), its config parsing,
 * and the module against a fixture sysfs tree: only the leader writes. */
#include "ms-kcompat.h"
#include "ms-ksmtune.h"
#include "ms-ksm.h"

#include <glib/gstdio.h>

typedef struct {
    const char *name;
    MsKsmTuneMode mode;
    guint64 total, avail;
    gint64 run, pages;
    gboolean advisor;
    gint64 advisor_mode;
    /* expected */
    gint64 x_run, x_pages, x_advisor;
} Case;

static const Case cases[] = {
    /* pressure mode, no advisor: ksmtuned's rule */
    { "short-of-memory starts and boosts", MS_KSMTUNE_PRESSURE, 1000, 100, 0, 100, FALSE, 0, 1, 400, -1 },
    { "boost is capped", MS_KSMTUNE_PRESSURE, 1000, 100, 1, 1200, FALSE, 0, 1, 1250, -1 },
    { "at the cap: unchanged", MS_KSMTUNE_PRESSURE, 1000, 100, 1, 1250, FALSE, 0, 1, -1, -1 },
    { "between thresholds: keeps running, decays", MS_KSMTUNE_PRESSURE, 1000, 250, 1, 400, FALSE, 0, 1, 350, -1 },
    { "between thresholds: stays stopped", MS_KSMTUNE_PRESSURE, 1000, 250, 0, 400, FALSE, 0, 0, -1, -1 },
    { "plenty: stops, never unmerges", MS_KSMTUNE_PRESSURE, 1000, 500, 1, 400, FALSE, 0, 0, -1, -1 },
    { "decay is floored", MS_KSMTUNE_PRESSURE, 1000, 250, 1, 80, FALSE, 0, 1, 64, -1 },
    { "exactly start%: not pressure", MS_KSMTUNE_PRESSURE, 1000, 200, 0, 100, FALSE, 0, 0, -1, -1 },
    { "exactly stop%: not relaxed", MS_KSMTUNE_PRESSURE, 1000, 300, 1, 100, FALSE, 0, 1, 64, -1 },
    /* with the kernel's advisor: switch it on, never set pages_to_scan */
    { "advisor switched on under pressure", MS_KSMTUNE_PRESSURE, 1000, 100, 0, 100, TRUE, 0, 1, -1, 1 },
    { "advisor already on", MS_KSMTUNE_PRESSURE, 1000, 100, 1, 5000, TRUE, 1, 1, -1, -1 },
    { "advisor, plenty: stops", MS_KSMTUNE_PRESSURE, 1000, 900, 1, 5000, TRUE, 1, 0, -1, -1 },
    /* always */
    { "always runs", MS_KSMTUNE_ALWAYS, 1000, 900, 0, 100, FALSE, 0, 1, -1, -1 },
    { "always clamps a silly rate", MS_KSMTUNE_ALWAYS, 1000, 900, 1, 100000, FALSE, 0, 1, 1250, -1 },
    { "always with advisor", MS_KSMTUNE_ALWAYS, 1000, 900, 1, 100, TRUE, 0, 1, -1, 1 },
    /* off touches nothing */
    { "off", MS_KSMTUNE_OFF, 1000, 10, 0, 100, TRUE, 0, 0, -1, -1 },
    { "zero MemTotal is not pressure", MS_KSMTUNE_PRESSURE, 0, 0, 1, 100, FALSE, 0, 0, -1, -1 },
};

static void
test_table(void)
{
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        const Case *c = &cases[i];
        MsKsmTuneConfig cfg;
        g_assert_true(ms_ksmtune_config_load(NULL, &cfg, NULL));
        cfg.mode = c->mode;
        MsKsmTuneInput in = { c->total, c->avail, c->run, c->pages, c->advisor, c->advisor_mode };
        MsKsmTuneDecision d;
        ms_ksmtune_decide(&cfg, &in, &d);
        g_test_message("%s: run %" G_GINT64_FORMAT " pages %" G_GINT64_FORMAT " advisor %" G_GINT64_FORMAT
                       " (%s)", c->name, d.run, d.pages_to_scan, d.advisor_mode, d.reason);
        g_assert_cmpint(d.run, ==, c->x_run);
        g_assert_cmpint(d.pages_to_scan, ==, c->x_pages);
        g_assert_cmpint(d.advisor_mode, ==, c->x_advisor);
        /* invariants: never unmerge (run=2), never leave the range */
        g_assert_cmpint(d.run, !=, 2);
        if (d.pages_to_scan >= 0)
            g_assert_true(d.pages_to_scan >= 64 && d.pages_to_scan <= 1250);
    }
}

static void
test_config(void)
{
    static const struct { const char *text; gboolean ok; MsKsmTuneMode mode; const char *msg; } cfgs[] = {
        { "", TRUE, MS_KSMTUNE_OFF, NULL },
        { "[ksm]\ntune=pressure\nstart-percent=10\nstop-percent=15\n", TRUE, MS_KSMTUNE_PRESSURE, NULL },
        { "[ksm]\ntune=always\n", TRUE, MS_KSMTUNE_ALWAYS, NULL },
        { "[ksm]\ntune=sometimes\n", FALSE, 0, "tune=sometimes: must be off, always or pressure" },
        { "[ksm]\ntune=pressure\nstart-percent=150\n", FALSE, 0, "larger than 100" },
        { "[ksm]\ntune=pressure\nstart-percent=40\nstop-percent=30\n", FALSE, 0, "stop-percent must be >= start-percent" },
        { "[ksm]\ntune=pressure\npages-min=-3\n", FALSE, 0, "[ksm] pages-min" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cfgs); i++) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_assert_true(g_key_file_load_from_data(kf, cfgs[i].text, -1, 0, NULL));
        MsKsmTuneConfig cfg;
        g_autoptr(GError) error = NULL;
        gboolean ok = ms_ksmtune_config_load(kf, &cfg, &error);
        g_assert_cmpint(ok, ==, cfgs[i].ok);
        if (ok) {
            g_assert_cmpint(cfg.mode, ==, cfgs[i].mode);
        } else {
            g_test_message("%s", error->message);
            g_assert_nonnull(strstr(error->message, cfgs[i].msg));
        }
    }
}

/* The module on a fixture tree: two agents, one leader; only the leader
 * writes run=1 into the fake sysfs. */
/* ms_config_path() and ms_runtime_dir() are read once per process: main()
 * sets them before any test runs. */
static char *tmp;

static void
test_module_leader(void)
{
    g_autofree char *ksm = g_build_filename(tmp, "sys/kernel/mm/ksm", NULL);
    g_autofree char *proc = g_build_filename(tmp, "proc", NULL);
    g_autofree char *run = g_build_filename(tmp, "run", NULL);
    g_assert_cmpint(g_mkdir_with_parents(ksm, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(proc, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(run, 0755), ==, 0);
    const char *files[][2] = { { "run", "0\n" }, { "pages_to_scan", "100\n" }, { "sleep_millisecs", "20\n" },
                               { "pages_shared", "0\n" }, { "pages_sharing", "0\n" } };
    for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *p = g_build_filename(ksm, files[i][0], NULL);
        g_assert_true(g_file_set_contents(p, files[i][1], -1, NULL));
    }
    g_autofree char *mi = g_build_filename(proc, "meminfo", NULL);
    g_assert_true(g_file_set_contents(mi, "MemTotal: 1000000 kB\nMemFree: 1 kB\nMemAvailable: 50000 kB\n", -1, NULL));
    g_autofree char *conf = g_build_filename(tmp, "memshare.conf", NULL);
    g_assert_true(g_file_set_contents(conf, "[ksm]\ntune=pressure\n", -1, NULL));
    g_autofree char *sys = g_build_filename(tmp, "sys", NULL);
    MsAgentEnv env = { .uuid = "u", .name = "t", .proc_root = proc, .sys_root = sys, .runtime_dir = run };

    g_assert_cmpuint(ms_ksmtune_module.period_ms(&env), >, 0);
    g_autoptr(GError) error = NULL;
    gpointer a = ms_ksmtune_module.create(&env, &error);
    g_assert_no_error(error);
    gpointer b = ms_ksmtune_module.create(&env, &error);
    g_assert_no_error(error);
    g_autoptr(GKeyFile) sa = g_key_file_new(), sb = g_key_file_new();
    g_assert_true(ms_ksmtune_module.tick(a, &env, sa, &error));
    g_assert_no_error(error);
    g_assert_true(ms_ksmtune_module.tick(b, &env, sb, &error));
    g_assert_no_error(error);
    g_assert_true(g_key_file_get_boolean(sa, "ksmtune", "leader", NULL));
    g_assert_false(g_key_file_get_boolean(sb, "ksmtune", "leader", NULL));
    g_autofree char *p = g_build_filename(ksm, "run", NULL);
    g_autofree char *v = NULL;
    g_assert_true(g_file_get_contents(p, &v, NULL, NULL));
    g_assert_cmpint(atoi(v), ==, 1);
    /* the leader goes away: the other agent takes over */
    ms_ksmtune_module.free(a);
    g_assert_true(ms_ksmtune_module.tick(b, &env, sb, &error));
    g_assert_true(g_key_file_get_boolean(sb, "ksmtune", "leader", NULL));
    ms_ksmtune_module.free(b);

    /* off: the module is not even created */
    g_assert_true(g_file_set_contents(conf, "[ksm]\ntune=off\n", -1, NULL));
    g_assert_cmpuint(ms_ksmtune_module.period_ms(&env), ==, 0);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmp);
    g_assert_cmpint(system(cmd), ==, 0);
}

/* The tuner on a 6.18-like tree (advisor_mode "[none] scan-time"): it
 * switches the advisor on and leaves pages_to_scan to it; with
 * MEMSHARE_HIDE=ksm-advisor it runs as on 6.1: advisor_mode untouched,
 * pages_to_scan by ksmtuned's rule (pressure: 100 + boost 300 = 400). */
static void
test_module_advisor(void)
{
    for (int hide = 0; hide < 2; hide++) {
        g_autofree char *top = g_build_filename(tmp, hide ? "adv-hidden" : "adv", NULL);
        g_autofree char *ksm = g_build_filename(top, "sys/kernel/mm/ksm", NULL);
        g_autofree char *proc = g_build_filename(top, "proc", NULL);
        g_autofree char *run = g_build_filename(tmp, "run", NULL);
        g_assert_cmpint(g_mkdir_with_parents(ksm, 0755), ==, 0);
        g_assert_cmpint(g_mkdir_with_parents(proc, 0755), ==, 0);
        g_assert_cmpint(g_mkdir_with_parents(run, 0755), ==, 0);
        const char *files[][2] = { { "run", "0\n" }, { "pages_to_scan", "100\n" },
                                   { "sleep_millisecs", "20\n" }, { "pages_sharing", "0\n" },
                                   { "advisor_mode", "[none] scan-time\n" } };
        for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
            g_autofree char *p = g_build_filename(ksm, files[i][0], NULL);
            g_assert_true(g_file_set_contents(p, files[i][1], -1, NULL));
        }
        g_autofree char *mi = g_build_filename(proc, "meminfo", NULL);
        g_assert_true(g_file_set_contents(mi, "MemTotal: 1000000 kB\nMemAvailable: 50000 kB\n", -1, NULL));
        g_autofree char *conf = g_build_filename(tmp, "memshare.conf", NULL);
        g_assert_true(g_file_set_contents(conf, "[ksm]\ntune=pressure\n", -1, NULL));
        g_autofree char *sys = g_build_filename(top, "sys", NULL);
        MsAgentEnv env = { .uuid = "u", .name = "t", .proc_root = proc, .sys_root = sys, .runtime_dir = run };

        ms_kcompat_set_hidden(hide ? 1u << MS_KCOMPAT_KSM_ADVISOR : 0);
        g_autoptr(GError) error = NULL;
        gpointer a = ms_ksmtune_module.create(&env, &error);
        g_assert_no_error(error);
        g_autoptr(GKeyFile) st = g_key_file_new();
        g_assert_true(ms_ksmtune_module.tick(a, &env, st, &error));
        g_assert_no_error(error);
        ms_ksmtune_module.free(a);
        ms_kcompat_set_hidden(0);
        g_assert_true(g_key_file_get_boolean(st, "ksmtune", "leader", NULL));
        g_assert_cmpint(g_key_file_get_boolean(st, "ksmtune", "advisor", NULL), ==, !hide);
        g_autofree char *am = g_build_filename(ksm, "advisor_mode", NULL);
        g_autofree char *pts = g_build_filename(ksm, "pages_to_scan", NULL);
        g_autofree char *v = NULL, *n = NULL;
        g_assert_true(g_file_get_contents(am, &v, NULL, NULL));
        g_assert_true(g_file_get_contents(pts, &n, NULL, NULL));
        g_assert_cmpstr(v, ==, hide ? "[none] scan-time\n" : "scan-time");
        g_assert_cmpint(atoi(n), ==, hide ? 400 : 100);
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", top);
        g_assert_cmpint(system(cmd), ==, 0);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmp = g_dir_make_tmp("ms-ksmtune-XXXXXX", NULL);
    g_autofree char *conf = g_build_filename(tmp, "memshare.conf", NULL);
    g_autofree char *run = g_build_filename(tmp, "run", NULL);
    g_setenv("MEMSHARE_CONFIG", conf, TRUE);
    g_setenv("MEMSHARE_RUNTIME_DIR", run, TRUE);
    g_test_add_func("/ksmtune/decide", test_table);
    g_test_add_func("/ksmtune/config", test_config);
    g_test_add_func("/ksmtune/module-advisor", test_module_advisor);
    g_test_add_func("/ksmtune/module-leader", test_module_leader);
    return g_test_run();
}
