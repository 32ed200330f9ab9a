/* tests/balloon/test-balloon-replay.c: the balloon module (qmp-plugin/
 * ms-balloon.c) without a guest, against QMP transcripts recorded from
 * QEMU 7.2 with the test guest (tests/qmp/record-transcripts.py, replayed
 * by tests/lib/fake-qmp.c): a guest whose balloon driver loads late and
 * one without a driver, whose balloon never moves. The transcripts are the
 * expectation of what the module sends: one `balloon` to 192 MiB, then
 * only query-balloon, and nothing at the stop. The module's clock is the
 * test's, so "stuck" (3 periods and 30 s, policies/ms-alloc.h) is decided
 * by the period given here, not by how fast this machine is. */
#include "fake-qmp.h"
#include "ms-balloon.h"
#include "ms-balloon-size.h"
#include "ms-policy.h"

#include <glib/gstdio.h>

#define MiB ((guint64)1024 * 1024)
#define UUID "6f0c1e1a-3b5e-4c1d-9a7e-2f4b8d9c0a11"

/* 256 MiB guest, base 192 MiB: with no KSM saving the target is the base. */
static const char domain_xml[] =
    "<domain type='kvm'><name>replay</name><uuid>" UUID "</uuid><metadata>"
    "<memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>"
    "<memshare:balloon mode='ksm-share' base='192MiB' floor='128MiB'/></memshare:policy>"
    "</metadata><memory unit='KiB'>262144</memory><currentMemory unit='KiB'>262144</currentMemory>"
    "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>"
    "<devices><memballoon model='virtio'><alias name='balloon0'/></memballoon></devices></domain>";

typedef struct {
    const char *transcript;
    gint64 period_s;          /* the module's clock advances this much per tick */
    gboolean ever_stuck;      /* stuck at some period */
    gboolean stuck_at_end;
    guint64 actual_at_end;    /* MiB */
    const char *reason_at_end;
} ReplayCase;

typedef struct {
    char *dir;
    MsAgentEnv env;
    MsBalloonSize size;
    MsPolicy *policy;
    char *runtime_dir;
    char *proc_root;
    char *sys_root;
    guint events;             /* BALLOON_CHANGE the size owner took */
} Fixture;

static void
on_event(MsQmpClient *client, const char *event, JsonObject *data, gint64 seconds, gint64 micros,
         gpointer user_data)
{
    Fixture *f = user_data;
    if (ms_balloon_size_event(&f->size, event, data))
        f->events++;
}

static void
fixture_setup(Fixture *f)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_dir_make_tmp("ms-balloon-replay-XXXXXX", &error);
    g_assert_no_error(error);
    f->runtime_dir = g_build_filename(f->dir, "memshare", "domains", UUID, NULL);
    g_assert_cmpint(g_mkdir_with_parents(f->runtime_dir, 0755), ==, 0);
    /* a host with room: no shortage; no KSM in sys_root: nothing saved */
    f->proc_root = g_build_filename(f->dir, "proc", NULL);
    g_assert_cmpint(g_mkdir_with_parents(f->proc_root, 0755), ==, 0);
    g_autofree char *meminfo = g_build_filename(f->proc_root, "meminfo", NULL);
    g_assert_true(g_file_set_contents(meminfo,
                                      "MemTotal:       16384000 kB\n"
                                      "MemFree:         8000000 kB\n"
                                      "MemAvailable:    8192000 kB\n", -1, &error));
    f->sys_root = g_build_filename(f->dir, "sys", NULL);
    g_assert_true(ms_policy_parse_domain_xml(domain_xml, -1, MS_POLICY_CHECK_NONE, NULL, &f->policy,
                                             NULL, &error));
    g_assert_no_error(error);
    f->env = (MsAgentEnv){
        .uuid = UUID,
        .name = "replay",
        .policy = f->policy,
        .runtime_dir = f->runtime_dir,
        .proc_root = f->proc_root,
        .sys_root = f->sys_root,
        .balloon = &f->size,
    };
}

static void
fixture_teardown(Fixture *f)
{
    g_autofree char *inputs = g_build_filename(f->runtime_dir, "inputs", NULL);
    g_unlink(inputs);
    g_autofree char *meminfo = g_build_filename(f->proc_root, "meminfo", NULL);
    g_unlink(meminfo);
    g_rmdir(f->proc_root);
    g_rmdir(f->runtime_dir);
    g_autofree char *domains = g_path_get_dirname(f->runtime_dir);
    g_autofree char *memshare = g_path_get_dirname(domains);
    g_rmdir(domains);
    g_rmdir(memshare);
    g_rmdir(f->dir);
    ms_policy_free(f->policy);
    g_free(f->runtime_dir);
    g_free(f->proc_root);
    g_free(f->sys_root);
    g_free(f->dir);
}

static void
drain_main_context(void)
{
    while (g_main_context_iteration(NULL, FALSE))
        ;
}

static void
test_replay(gconstpointer data)
{
    const ReplayCase *rc = data;
    Fixture f = { 0 };
    fixture_setup(&f);
    g_autoptr(GPtrArray) script = ms_fake_qmp_load(rc->transcript);
    MsFakeQmp *fake = ms_fake_qmp_start(script, FALSE);
    MsQmpClient *client = ms_fake_qmp_connect(fake);
    ms_qmp_client_set_event_handler(client, on_event, &f);
    f.env.qmp = client;

    g_autoptr(GError) error = NULL;
    gpointer self = ms_balloon_module.create(&f.env, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(ms_balloon_module.period_ms(&f.env), >, 0);

    g_autoptr(GKeyFile) status = g_key_file_new();
    gboolean ever_stuck = FALSE;
    guint ticks = 0;
    guint64 actual_before_events = 0;
    /* one period per recorded query-balloon, until the transcript is done */
    while (ms_fake_qmp_commands_left(fake) > 0) {
        gint64 now = (gint64)ticks * rc->period_s * G_USEC_PER_SEC;
        guint events = f.events;
        g_assert_true(ms_balloon_tick_at(self, &f.env, status, now, &error));
        g_assert_no_error(error);
        ticks++;
        drain_main_context();
        g_assert_cmpuint(g_key_file_get_uint64(status, "balloon", "target", NULL), ==, 192 * MiB);
        gboolean stuck = g_key_file_get_boolean(status, "balloon", "stuck", NULL);
        ever_stuck |= stuck;
        g_autofree char *reason = g_key_file_get_string(status, "balloon", "reason", NULL);
        g_test_message("%s: tick %u at %" G_GINT64_FORMAT " s: actual %" G_GUINT64_FORMAT
                       " MiB (size owner %" G_GUINT64_FORMAT " MiB), stuck %d, reason %s", rc->transcript,
                       ticks, now / G_USEC_PER_SEC,
                       g_key_file_get_uint64(status, "balloon", "actual", NULL) / MiB, f.size.actual / MiB,
                       stuck, reason);
        if (f.events > events && actual_before_events == 0)
            actual_before_events = g_key_file_get_uint64(status, "balloon", "actual", NULL);
        g_assert_cmpuint(ticks, <, 100);
    }
    /* the stop asks for nothing: at its base already, or stuck */
    ms_balloon_module.stop(self, &f.env);
    ms_balloon_module.free(self);

    g_assert_cmpint(ever_stuck, ==, rc->ever_stuck);
    g_assert_cmpint(g_key_file_get_boolean(status, "balloon", "stuck", NULL), ==, rc->stuck_at_end);
    g_assert_cmpuint(g_key_file_get_uint64(status, "balloon", "actual", NULL), ==, rc->actual_at_end * MiB);
    g_assert_cmpuint(f.size.actual, ==, rc->actual_at_end * MiB);
    g_autofree char *reason = g_key_file_get_string(status, "balloon", "reason", NULL);
    g_assert_cmpstr(reason, ==, rc->reason_at_end);
    if (rc->actual_at_end == 192) {
        /* QEMU's BALLOON_CHANGE reached the size owner before the query
         * that saw it: the events, not only the replies, are followed */
        g_assert_cmpuint(f.events, >, 0);
        g_assert_cmpuint(actual_before_events, ==, 256 * MiB);
    } else {
        g_assert_cmpuint(f.events, ==, 0);
    }

    ms_qmp_client_free(client);
    ms_fake_qmp_finish(fake);
    fixture_teardown(&f);
}

static const ReplayCase cases[] = {
    /* periods of 1 s: the boot takes 7 of them, less than the 30 s a
     * booting guest is given */
    { "balloon-late.txt", 1, FALSE, FALSE, 192, "share" },
    /* periods of 15 s: the same late driver is reported stuck, then moving */
    { "balloon-late.txt", 15, TRUE, FALSE, 192, "share" },
    /* no driver: stuck after 3 periods and 30 s, left alone */
    { "balloon-stuck.txt", 15, TRUE, TRUE, 256, "stuck" },
    /* no driver, but the time bound is not reached in 7 s */
    { "balloon-stuck.txt", 1, FALSE, FALSE, 256, "share" },
};

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* the module's "balloon stuck" warning is part of what is tested */
    g_log_set_always_fatal(G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL);
    g_setenv("MEMSHARE_CONFIG", "/nonexistent/memshare.conf", TRUE);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *p = g_strdup_printf("/balloon/replay/%s/period-%" G_GINT64_FORMAT "s",
                                             cases[i].transcript, cases[i].period_s);
        g_test_add_data_func(p, &cases[i], test_replay);
    }
    return g_test_run();
}
