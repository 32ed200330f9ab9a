/* qmp-plugin/ms-ksm.h: reading host KSM counters (/sys/kernel/mm/ksm) and
 * per-process KSM statistics (/proc/PID/ksm_stat, ksm_merging_pages), the
 * "saved memory" figures derived from them, and a whitelisted writer for the
 * KSM tuning knobs. Parsers take buffers; readers take a root directory so
 * tests point them at fixture trees, and read through ms-kcompat, so what
 * MEMSHARE_HIDE hides is absent as on a kernel without it. */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Every counter is optional: Debian 12's 6.1 lacks general_profit,
 * ksm_zero_pages, smart_scan and advisor_*; a newer kernel may add more. */
typedef enum {
    MS_KSM_RUN,
    MS_KSM_PAGES_TO_SCAN,
    MS_KSM_SLEEP_MILLISECS,
    MS_KSM_PAGES_SHARED,
    MS_KSM_PAGES_SHARING,
    MS_KSM_PAGES_UNSHARED,
    MS_KSM_PAGES_VOLATILE,
    MS_KSM_PAGES_SKIPPED,
    MS_KSM_PAGES_SCANNED,
    MS_KSM_FULL_SCANS,
    MS_KSM_GENERAL_PROFIT,      /* signed, bytes */
    MS_KSM_ZERO_PAGES,
    MS_KSM_USE_ZERO_PAGES,
    MS_KSM_MAX_PAGE_SHARING,
    MS_KSM_STABLE_NODE_CHAINS,
    MS_KSM_STABLE_NODE_DUPS,
    MS_KSM_STABLE_NODE_CHAINS_PRUNE_MILLISECS,
    MS_KSM_MERGE_ACROSS_NODES,
    MS_KSM_SMART_SCAN,
    MS_KSM_ADVISOR_MODE,        /* 0 = none, 1 = scan-time */
    MS_KSM_ADVISOR_MAX_CPU,
    MS_KSM_ADVISOR_MIN_PAGES_TO_SCAN,
    MS_KSM_ADVISOR_MAX_PAGES_TO_SCAN,
    MS_KSM_ADVISOR_TARGET_SCAN_TIME,
    MS_KSM_N_COUNTERS
} MsKsmCounter;

typedef struct {
    guint64 present;                 /* bit (1 << MsKsmCounter) */
    gint64 value[MS_KSM_N_COUNTERS]; /* general_profit may be negative */
} MsKsmHost;

#define MS_KSM_HAS(h, c) (((h)->present & (G_GUINT64_CONSTANT(1) << (c))) != 0)

/* sysfs file name of a counter. */
const char *ms_ksm_counter_name(MsKsmCounter c);

/* One sysfs value: a decimal number, optional trailing newline. "what"
 * names the file in errors. */
gboolean ms_ksm_parse_counter(const char *buf, gsize len, const char *what,
                              gint64 *value, GError **error);
/* advisor_mode: "[none] scan-time" -> 0, "none [scan-time]" -> 1. */
gboolean ms_ksm_parse_advisor_mode(const char *buf, gsize len, const char *what,
                                   gint64 *value, GError **error);

/* Reads SYSFS_ROOT/kernel/mm/ksm (sysfs_root NULL = "/sys"). A missing
 * directory is MS_ERROR_NOT_SUPPORTED (kernel built without KSM). */
gboolean ms_ksm_read_host(const char *sysfs_root, MsKsmHost *out, GError **error);

/* Bytes KSM saves host-wide: general_profit when present (can be negative:
 * rmap_items cost more than merging saved), else pages_sharing * page_size. */
gint64 ms_ksm_host_saved_bytes(const MsKsmHost *h, guint64 page_size);

typedef enum {
    MS_KSM_STAT_RMAP_ITEMS = 1 << 0,
    MS_KSM_STAT_ZERO_PAGES = 1 << 1,
    MS_KSM_STAT_MERGING_PAGES = 1 << 2,
    MS_KSM_STAT_PROCESS_PROFIT = 1 << 3,
    MS_KSM_STAT_MERGE_ANY = 1 << 4,
    MS_KSM_STAT_MERGEABLE = 1 << 5,
} MsKsmStatField;

typedef struct {
    guint present;                   /* MsKsmStatField bits */
    guint64 rmap_items;
    guint64 zero_pages;
    guint64 merging_pages;
    gint64 process_profit;           /* bytes, may be negative */
    gboolean merge_any;
    gboolean mergeable;
} MsKsmStat;

#define MS_KSM_STAT_MAX 4096

/* /proc/PID/ksm_stat contents. Unknown keys are ignored (newer kernels),
 * a duplicated key or a malformed value is an error. */
gboolean ms_ksm_stat_parse(const char *buf, gsize len, const char *what,
                           MsKsmStat *out, GError **error);
/* Reads PROC_ROOT/PID/ksm_stat, or falls back to PROC_ROOT/PID/ksm_merging_pages
 * (proc_root NULL = "/proc"). */
gboolean ms_ksm_read_process(const char *proc_root, pid_t pid, MsKsmStat *out,
                             GError **error);
/* Bytes this process contributes: ksm_process_profit when present, else
 * ksm_merging_pages * page_size (an over-estimate, see docs/balloon.md). */
gint64 ms_ksm_process_contribution(const MsKsmStat *s, guint64 page_size);

/* Writes one tuning knob; only run, pages_to_scan, sleep_millisecs and
 * advisor_mode (value 0 = none, 1 = scan-time) are accepted. */
gboolean ms_ksm_set(const char *sysfs_root, const char *knob, guint64 value,
                    GError **error);

G_END_DECLS
