/* qmp-plugin/ms-ksmtune.h: optional host-wide KSM tuning, off by default
 * ([ksm] tune= in memshare.conf). There is no memshare daemon: every agent
 * runs this module, and the one that holds RUNSTATEDIR/memshare/ksm-tuner.lock
 * (flock, released when that agent exits, taken over by the next) tunes.
 * Like ksmtuned it scans only when the host is short of memory; unlike it,
 * it lets the kernel's own advisor (advisor_mode=scan-time, Linux 6.8+) pick
 * the scan rate where present, and never unmerges what is merged. */
#pragma once

#include "ms-module.h"

G_BEGIN_DECLS

typedef enum {
    MS_KSMTUNE_OFF = 0,    /* never touch KSM (default) */
    MS_KSMTUNE_ALWAYS,     /* keep KSM running */
    MS_KSMTUNE_PRESSURE,   /* run while MemAvailable is low, as ksmtuned */
} MsKsmTuneMode;

typedef struct {
    MsKsmTuneMode mode;
    guint start_percent;    /* pressure: start when MemAvailable < this % of MemTotal (20) */
    guint stop_percent;     /* pressure: stop when MemAvailable > this % (30) */
    guint64 pages_min;      /* no advisor: pages_to_scan range (64..1250, as ksmtuned) */
    guint64 pages_max;
    guint64 pages_boost;    /* added per period under pressure (300) */
    guint64 pages_decay;    /* removed per period otherwise (50) */
} MsKsmTuneConfig;

typedef struct {
    guint64 mem_total_kib;
    guint64 mem_available_kib;
    gint64 run;             /* current /sys/kernel/mm/ksm/run */
    gint64 pages_to_scan;
    gboolean has_advisor;   /* advisor_mode exists */
    gint64 advisor_mode;
} MsKsmTuneInput;

typedef struct {
    gint64 run;             /* 0 = stop (merged pages stay merged), 1 = run */
    gint64 pages_to_scan;   /* -1 = leave alone (the advisor decides) */
    gint64 advisor_mode;    /* -1 = leave alone */
    const char *reason;
} MsKsmTuneDecision;

/* Pure: what the knobs should be. Unit-tested over tables. */
void ms_ksmtune_decide(const MsKsmTuneConfig *cfg, const MsKsmTuneInput *in,
                       MsKsmTuneDecision *out);

/* Reads [ksm] from the config file; unknown values are an error naming the
 * key. A missing section is mode off. */
gboolean ms_ksmtune_config_load(GKeyFile *kf, MsKsmTuneConfig *cfg, GError **error);

extern const MsAgentModule ms_ksmtune_module;

G_END_DECLS
