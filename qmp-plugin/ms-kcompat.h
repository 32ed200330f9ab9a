/* qmp-plugin/ms-kcompat.h: which kernel interfaces newer than Debian 12's
 * Linux 6.1 the agent may use. Owns the one knob that hides them,
 * MEMSHARE_HIDE (and the older MEMSHARE_PAGEMAP_METHOD), so a 6.18 host
 * runs the code paths a 6.1 host runs: the pagemap scanner, the KSM readers
 * and the KSM tuner ask here, and a hidden sysfs file or ksm_stat key reads
 * as absent, exactly as on a kernel that lacks it (no separate branch).
 *
 *   MEMSHARE_HIDE=linux-6.1                 everything 6.1 lacks
 *   MEMSHARE_HIDE=pagemap-scan,general-profit   a selection
 *
 * See docs/usedmap.md and docs/balloon.md for what a 6.1 host does. */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Interfaces a Debian 12 (6.1) kernel does not have. */
typedef enum {
    MS_KCOMPAT_PAGEMAP_SCAN,        /* "pagemap-scan": the PAGEMAP_SCAN ioctl (6.7) */
    MS_KCOMPAT_GENERAL_PROFIT,      /* "general-profit": /sys/kernel/mm/ksm/general_profit */
    MS_KCOMPAT_KSM_PROCESS_PROFIT,  /* "ksm-process-profit": ksm_stat's ksm_process_profit */
    MS_KCOMPAT_KSM_ADVISOR,         /* "ksm-advisor": advisor_mode and advisor_* (6.8) */
    MS_KCOMPAT_KSM_COUNTERS,        /* "ksm-counters": pages_scanned, pages_skipped,
                                     * smart_scan, ksm_zero_pages */
    MS_KCOMPAT_KSM_STAT_FIELDS,     /* "ksm-stat-fields": ksm_stat's ksm_merging_pages,
                                     * ksm_zero_pages, ksm_merge_any, ksm_mergeable */
    MS_KCOMPAT_N_FEATURES
} MsKcompatFeature;

#define MS_KCOMPAT_ALL ((1u << MS_KCOMPAT_N_FEATURES) - 1)

const char *ms_kcompat_feature_name(MsKcompatFeature f);

/* Pure: "linux-6.1" or a comma-separated list of feature names (spaces
 * allowed, empty = nothing) -> a mask of (1 << MsKcompatFeature). An
 * unknown name is an error naming it and listing the known ones. */
gboolean ms_kcompat_parse(const char *spec, guint *mask, GError **error);

/* Reads MEMSHARE_HIDE and MEMSHARE_PAGEMAP_METHOD (read: hide pagemap-scan;
 * scan: require it; auto) once; the agent calls it at start and fails on
 * bad values. Later queries without it read the environment lazily. */
gboolean ms_kcompat_init(GError **error);

/* Tests: replaces what the environment said (required features cleared). */
void ms_kcompat_set_hidden(guint mask);

guint ms_kcompat_get_hidden(void);
gboolean ms_kcompat_hidden(MsKcompatFeature f);
/* MEMSHARE_PAGEMAP_METHOD=scan: fail rather than fall back. */
gboolean ms_kcompat_required(MsKcompatFeature f);
/* "pagemap-scan,general-profit" ("" when nothing is hidden); g_free. */
char *ms_kcompat_hidden_names(void);

/* ---- kernel files as a kernel without the hidden features shows them ---- */

/* PATH is a hidden sysfs KSM file (.../kernel/mm/ksm/NAME). */
gboolean ms_kcompat_path_hidden(const char *path);
/* g_file_test(EXISTS), FALSE for a hidden file. */
gboolean ms_kcompat_file_exists(const char *path);
/* ms_file_read_bounded(); a hidden file fails as a missing one
 * (G_FILE_ERROR_NOENT), and from a ksm_stat file the lines of hidden keys
 * are dropped, as a kernel that does not print them. */
gboolean ms_kcompat_read_file(const char *path, gsize max, char **contents,
                              gsize *length, GError **error);

/* ---- what the agent runs on ---- */

/* Logs one line saying which interfaces are in use and which the knob hid,
 * and writes them to STATUS's [kernel] group (hidden, pagemap,
 * ksm-saved, ksm-contribution, ksm-advisor). Reads through ms-pagemap and
 * ms-ksm, so it reports the paths those modules take. */
void ms_kcompat_report(const char *sys_root, const char *proc_root, pid_t qemu_pid,
                       GKeyFile *status);

G_END_DECLS
