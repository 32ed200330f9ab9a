/* qmp-plugin/ms-ksmtune.c: optional host-wide KSM tuning (see ms-ksmtune.h
 * for the why): the pure decision, the [ksm] config section, and the agent
 * module whose one leader (flock) applies the decision to sysfs. */
#include "ms-ksmtune.h"
#include "ms-error.h"
#include "ms-kcompat.h"
#include "ms-ksm.h"
#include "ms-meminfo.h"
#include "ms-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define MS_KSMTUNE_PERIOD_MS 10000

void
ms_ksmtune_decide(const MsKsmTuneConfig *cfg, const MsKsmTuneInput *in, MsKsmTuneDecision *out)
{
    out->run = in->run;
    out->pages_to_scan = -1;
    out->advisor_mode = -1;
    out->reason = "unchanged";

    /* The kernel's advisor sizes pages_to_scan to reach a full scan in a
     * target time within a CPU budget: better informed than any rule of
     * ours, so where it exists we only switch it on. */
    if (in->has_advisor && in->advisor_mode != 1)
        out->advisor_mode = 1;

    guint pct = in->mem_total_kib ? (guint)(in->mem_available_kib * 100 / in->mem_total_kib) : 100;
    gboolean pressure = pct < cfg->start_percent;
    gboolean relaxed = pct > cfg->stop_percent;

    switch (cfg->mode) {
    case MS_KSMTUNE_OFF:
        out->advisor_mode = -1;
        return;
    case MS_KSMTUNE_ALWAYS:
        out->run = 1;
        out->reason = "always";
        break;
    case MS_KSMTUNE_PRESSURE:
        if (pressure) {
            out->run = 1;
            out->reason = "memory pressure";
        } else if (relaxed) {
            /* 0 stops scanning; merged pages stay merged (2 would unmerge
             * them all at once, the opposite of what a host wants). */
            out->run = 0;
            out->reason = "enough free memory";
        } else {
            out->reason = "between thresholds";
        }
        break;
    }
    if (in->has_advisor)
        return;

    /* No advisor: ksmtuned's rule, scan harder while short of memory,
     * ease off otherwise, within [pages_min, pages_max]. */
    gint64 cur = in->pages_to_scan;
    gint64 next = cur;
    if (cfg->mode == MS_KSMTUNE_PRESSURE && pressure)
        next = cur + (gint64)cfg->pages_boost;
    else if (cfg->mode == MS_KSMTUNE_PRESSURE && out->run == 1)
        next = cur - (gint64)cfg->pages_decay;
    next = CLAMP(next, (gint64)cfg->pages_min, (gint64)cfg->pages_max);
    if (next != cur)
        out->pages_to_scan = next;
}

static gboolean
ms_ksmtune_get_uint(GKeyFile *kf, const char *key, guint64 max, guint64 *out, GError **error)
{
    g_autofree char *v = g_key_file_get_string(kf, "ksm", key, NULL);
    if (v == NULL)
        return TRUE;
    g_autofree char *what = g_strdup_printf("[ksm] %s", key);
    if (!ms_parse_u64(v, what, out, error))
        return FALSE;
    if (*out > max) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s=%s: larger than %" G_GUINT64_FORMAT, what,
                    v, max);
        return FALSE;
    }
    return TRUE;
}

gboolean
ms_ksmtune_config_load(GKeyFile *kf, MsKsmTuneConfig *cfg, GError **error)
{
    guint64 start = 20, stop = 30;
    *cfg = (MsKsmTuneConfig){
        .mode = MS_KSMTUNE_OFF,
        .pages_min = 64, .pages_max = 1250, .pages_boost = 300, .pages_decay = 50,
    };
    g_autofree char *tune = kf ? g_key_file_get_string(kf, "ksm", "tune", NULL) : NULL;
    if (tune == NULL || strcmp(tune, "off") == 0)
        cfg->mode = MS_KSMTUNE_OFF;
    else if (strcmp(tune, "always") == 0)
        cfg->mode = MS_KSMTUNE_ALWAYS;
    else if (strcmp(tune, "pressure") == 0)
        cfg->mode = MS_KSMTUNE_PRESSURE;
    else {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: [ksm] tune=%s: must be off, always or pressure", ms_config_path(), tune);
        return FALSE;
    }
    if (kf && (!ms_ksmtune_get_uint(kf, "start-percent", 100, &start, error) ||
               !ms_ksmtune_get_uint(kf, "stop-percent", 100, &stop, error) ||
               !ms_ksmtune_get_uint(kf, "pages-min", 100000, &cfg->pages_min, error) ||
               !ms_ksmtune_get_uint(kf, "pages-max", 100000, &cfg->pages_max, error) ||
               !ms_ksmtune_get_uint(kf, "pages-boost", 100000, &cfg->pages_boost, error) ||
               !ms_ksmtune_get_uint(kf, "pages-decay", 100000, &cfg->pages_decay, error)))
        return FALSE;
    if (stop < start || cfg->pages_max < cfg->pages_min) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: [ksm]: stop-percent must be >= start-percent and pages-max >= pages-min",
                    ms_config_path());
        return FALSE;
    }
    cfg->start_percent = (guint)start;
    cfg->stop_percent = (guint)stop;
    return TRUE;
}

/* ---- the module ----------------------------------------------------------- */

typedef struct {
    MsKsmTuneConfig cfg;
    int lock_fd;
    gboolean leader;
    gboolean said_advisor;  /* the advisor's presence is logged once per leadership */
} MsKsmTune;

static guint64
ms_ksmtune_period(const MsAgentEnv *env)
{
    (void)env;
    g_autoptr(GKeyFile) kf = ms_config_load(NULL);
    MsKsmTuneConfig cfg;
    if (!ms_ksmtune_config_load(kf, &cfg, NULL))
        return MS_KSMTUNE_PERIOD_MS; /* create() reports the error */
    return cfg.mode == MS_KSMTUNE_OFF ? 0 : MS_KSMTUNE_PERIOD_MS;
}

static gpointer
ms_ksmtune_create(const MsAgentEnv *env, GError **error)
{
    (void)env;
    g_autoptr(GKeyFile) kf = ms_config_load(error);
    MsKsmTune *t = g_new0(MsKsmTune, 1);
    t->lock_fd = -1;
    if (kf == NULL || !ms_ksmtune_config_load(kf, &t->cfg, error)) {
        g_free(t);
        return NULL;
    }
    g_autofree char *path = g_build_filename(ms_runtime_dir(), "ksm-tuner.lock", NULL);
    t->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (t->lock_fd < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", path, g_strerror(e));
        g_free(t);
        return NULL;
    }
    return t;
}

static void
ms_ksmtune_free(gpointer p)
{
    MsKsmTune *t = p;
    if (t == NULL)
        return;
    if (t->lock_fd >= 0)
        close(t->lock_fd); /* releases the leadership */
    g_free(t);
}

static gboolean
ms_ksmtune_tick(gpointer self, const MsAgentEnv *env, GKeyFile *status, GError **error)
{
    MsKsmTune *t = self;

    if (!t->leader && flock(t->lock_fd, LOCK_EX | LOCK_NB) == 0) {
        t->leader = TRUE;
        g_message("ksmtune: this agent now tunes host KSM (mode %s)",
                  t->cfg.mode == MS_KSMTUNE_ALWAYS ? "always" : "pressure");
    }
    g_key_file_set_boolean(status, "ksmtune", "leader", t->leader);
    if (!t->leader)
        return TRUE;

    MsKsmHost host;
    MsKsmTuneInput in = { 0 };
    MsMeminfo mi;
    if (!ms_ksm_read_host(env->sys_root, &host, error) || !ms_meminfo_read(env->proc_root, &mi, error))
        return FALSE;
    in.mem_total_kib = mi.total_kib;
    in.mem_available_kib = mi.available_kib;
    in.run = host.value[MS_KSM_RUN];
    in.pages_to_scan = host.value[MS_KSM_PAGES_TO_SCAN];
    in.has_advisor = MS_KSM_HAS(&host, MS_KSM_ADVISOR_MODE);
    in.advisor_mode = host.value[MS_KSM_ADVISOR_MODE];
    if (!t->said_advisor) {
        /* ms-ksm reads advisor_mode as absent both on a kernel before 6.8
         * and under MEMSHARE_HIDE=ksm-advisor: one path for both. */
        if (!in.has_advisor)
            g_message("ksmtune: no advisor_mode (%s): pages_to_scan follows ksmtuned's rule, %"
                      G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT,
                      ms_kcompat_hidden(MS_KCOMPAT_KSM_ADVISOR) ? "hidden by MEMSHARE_HIDE"
                                                                 : "kernel before 6.8",
                      t->cfg.pages_min, t->cfg.pages_max);
        t->said_advisor = TRUE;
    }

    MsKsmTuneDecision d;
    ms_ksmtune_decide(&t->cfg, &in, &d);
    if (d.advisor_mode >= 0 && d.advisor_mode != in.advisor_mode) {
        if (!ms_ksm_set(env->sys_root, "advisor_mode", (guint64)d.advisor_mode, error))
            return FALSE;
        g_message("ksmtune: advisor_mode=scan-time (the kernel sizes pages_to_scan)");
    }
    if (d.pages_to_scan >= 0 && !ms_ksm_set(env->sys_root, "pages_to_scan", (guint64)d.pages_to_scan, error))
        return FALSE;
    if (d.run != in.run) {
        if (!ms_ksm_set(env->sys_root, "run", (guint64)d.run, error))
            return FALSE;
        g_message("ksmtune: run=%" G_GINT64_FORMAT " (%s; MemAvailable %" G_GUINT64_FORMAT
                  " of %" G_GUINT64_FORMAT " MiB)", d.run, d.reason, in.mem_available_kib >> 10,
                  in.mem_total_kib >> 10);
    }
    g_key_file_set_int64(status, "ksmtune", "run", d.run);
    g_key_file_set_int64(status, "ksmtune", "pages-to-scan",
                         d.pages_to_scan >= 0 ? d.pages_to_scan : in.pages_to_scan);
    g_key_file_set_boolean(status, "ksmtune", "advisor", in.has_advisor);
    g_key_file_set_string(status, "ksmtune", "reason", d.reason);
    return TRUE;
}

const MsAgentModule ms_ksmtune_module = {
    .name = "ksmtune",
    .create = ms_ksmtune_create,
    .period_ms = ms_ksmtune_period,
    .tick = ms_ksmtune_tick,
    .stop = NULL,
    .free = ms_ksmtune_free,
};
