/* qmp-plugin/ms-ksm.c: host KSM counters, per-process ksm_stat and the
 * whitelisted knob writer. See ms-ksm.h and docs/balloon.md. Every kernel
 * file is read through ms-kcompat, so what MEMSHARE_HIDE hides is absent
 * here exactly as on a kernel without it. */
#include "ms-ksm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ms-error.h"
#include "ms-kcompat.h"
#include "ms-util.h"

static const char *const counter_names[MS_KSM_N_COUNTERS] = {
    [MS_KSM_RUN] = "run",
    [MS_KSM_PAGES_TO_SCAN] = "pages_to_scan",
    [MS_KSM_SLEEP_MILLISECS] = "sleep_millisecs",
    [MS_KSM_PAGES_SHARED] = "pages_shared",
    [MS_KSM_PAGES_SHARING] = "pages_sharing",
    [MS_KSM_PAGES_UNSHARED] = "pages_unshared",
    [MS_KSM_PAGES_VOLATILE] = "pages_volatile",
    [MS_KSM_PAGES_SKIPPED] = "pages_skipped",
    [MS_KSM_PAGES_SCANNED] = "pages_scanned",
    [MS_KSM_FULL_SCANS] = "full_scans",
    [MS_KSM_GENERAL_PROFIT] = "general_profit",
    [MS_KSM_ZERO_PAGES] = "ksm_zero_pages",
    [MS_KSM_USE_ZERO_PAGES] = "use_zero_pages",
    [MS_KSM_MAX_PAGE_SHARING] = "max_page_sharing",
    [MS_KSM_STABLE_NODE_CHAINS] = "stable_node_chains",
    [MS_KSM_STABLE_NODE_DUPS] = "stable_node_dups",
    [MS_KSM_STABLE_NODE_CHAINS_PRUNE_MILLISECS] = "stable_node_chains_prune_millisecs",
    [MS_KSM_MERGE_ACROSS_NODES] = "merge_across_nodes",
    [MS_KSM_SMART_SCAN] = "smart_scan",
    [MS_KSM_ADVISOR_MODE] = "advisor_mode",
    [MS_KSM_ADVISOR_MAX_CPU] = "advisor_max_cpu",
    [MS_KSM_ADVISOR_MIN_PAGES_TO_SCAN] = "advisor_min_pages_to_scan",
    [MS_KSM_ADVISOR_MAX_PAGES_TO_SCAN] = "advisor_max_pages_to_scan",
    [MS_KSM_ADVISOR_TARGET_SCAN_TIME] = "advisor_target_scan_time",
};

/* sysfs values are one short line; anything longer is not a counter. */
#define KSM_VALUE_MAX 256

const char *
ms_ksm_counter_name(MsKsmCounter c)
{
    g_return_val_if_fail(c < MS_KSM_N_COUNTERS, NULL);
    return counter_names[c];
}

/* Copies a buffer into a NUL-terminated, whitespace-stripped string;
 * refuses embedded NULs so "12\0junk" is not read as 12. */
static char *
ksm_dup_value(const char *buf, gsize len, const char *what, GError **error)
{
    if (len > KSM_VALUE_MAX) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                    "'%s': value longer than %d bytes", what, KSM_VALUE_MAX);
        return NULL;
    }
    if (memchr(buf, '\0', len) != NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': value contains a NUL byte", what);
        return NULL;
    }
    char *s = g_strndup(buf, len);
    return g_strstrip(s);
}

gboolean
ms_ksm_parse_counter(const char *buf, gsize len, const char *what,
                     gint64 *value, GError **error)
{
    g_autofree char *s = ksm_dup_value(buf, len, what, error);
    if (s == NULL)
        return FALSE;
    const char *p = s;
    gboolean neg = FALSE;
    if (*p == '-') {
        neg = TRUE;
        p++;
    }
    guint64 v = 0;
    if (*p == '\0' || !g_ascii_isdigit(*p) ||
        !g_ascii_string_to_unsigned(p, 10, 0, G_MAXINT64, &v, NULL)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': '%s' is not a number", what, s);
        return FALSE;
    }
    *value = neg ? -(gint64)v : (gint64)v;
    return TRUE;
}

gboolean
ms_ksm_parse_advisor_mode(const char *buf, gsize len, const char *what,
                          gint64 *value, GError **error)
{
    g_autofree char *s = ksm_dup_value(buf, len, what, error);
    if (s == NULL)
        return FALSE;
    if (strstr(s, "[none]") != NULL)
        *value = 0;
    else if (strstr(s, "[scan-time]") != NULL)
        *value = 1;
    else {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': '%s' names no known advisor mode", what, s);
        return FALSE;
    }
    return TRUE;
}

gboolean
ms_ksm_read_host(const char *sysfs_root, MsKsmHost *out, GError **error)
{
    g_autofree char *dir = g_build_filename(sysfs_root ? sysfs_root : "/sys",
                                            "kernel", "mm", "ksm", NULL);
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_SUPPORTED,
                    "'%s' does not exist: the kernel is built without KSM", dir);
        return FALSE;
    }
    MsKsmHost h = { 0 };
    for (int c = 0; c < MS_KSM_N_COUNTERS; c++) {
        g_autofree char *path = g_build_filename(dir, counter_names[c], NULL);
        g_autofree char *buf = NULL;
        gsize len = 0;
        g_autoptr(GError) local = NULL;
        if (!ms_kcompat_read_file(path, KSM_VALUE_MAX, &buf, &len, &local)) {
            /* Optional: older kernels lack it. Any other failure is real. */
            if (!ms_kcompat_file_exists(path))
                continue;
            g_propagate_error(error, g_steal_pointer(&local));
            return FALSE;
        }
        gboolean ok = c == MS_KSM_ADVISOR_MODE
            ? ms_ksm_parse_advisor_mode(buf, len, path, &h.value[c], error)
            : ms_ksm_parse_counter(buf, len, path, &h.value[c], error);
        if (!ok)
            return FALSE;
        if (c != MS_KSM_GENERAL_PROFIT && h.value[c] < 0) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "'%s': negative value %" G_GINT64_FORMAT, path, h.value[c]);
            return FALSE;
        }
        h.present |= G_GUINT64_CONSTANT(1) << c;
    }
    *out = h;
    return TRUE;
}

gint64
ms_ksm_host_saved_bytes(const MsKsmHost *h, guint64 page_size)
{
    if (MS_KSM_HAS(h, MS_KSM_GENERAL_PROFIT))
        return h->value[MS_KSM_GENERAL_PROFIT];
    if (MS_KSM_HAS(h, MS_KSM_PAGES_SHARING)) {
        guint64 pages = (guint64)h->value[MS_KSM_PAGES_SHARING];
        if (page_size != 0 && pages > (guint64)G_MAXINT64 / page_size)
            return G_MAXINT64;
        return (gint64)(pages * page_size);
    }
    return 0;
}

static const struct {
    const char *key;
    MsKsmStatField field;
    gboolean boolean;
    gboolean is_signed;
} stat_keys[] = {
    { "ksm_rmap_items", MS_KSM_STAT_RMAP_ITEMS, FALSE, FALSE },
    { "ksm_zero_pages", MS_KSM_STAT_ZERO_PAGES, FALSE, FALSE },
    { "ksm_merging_pages", MS_KSM_STAT_MERGING_PAGES, FALSE, FALSE },
    { "ksm_process_profit", MS_KSM_STAT_PROCESS_PROFIT, FALSE, TRUE },
    { "ksm_merge_any", MS_KSM_STAT_MERGE_ANY, TRUE, FALSE },
    { "ksm_mergeable", MS_KSM_STAT_MERGEABLE, TRUE, FALSE },
};

gboolean
ms_ksm_stat_parse(const char *buf, gsize len, const char *what,
                  MsKsmStat *out, GError **error)
{
    if (len > MS_KSM_STAT_MAX) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                    "'%s': larger than %d bytes", what, MS_KSM_STAT_MAX);
        return FALSE;
    }
    if (memchr(buf, '\0', len) != NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': contains a NUL byte", what);
        return FALSE;
    }
    g_autofree char *copy = g_strndup(buf, len);
    g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
    MsKsmStat s = { 0 };
    for (guint i = 0; lines[i] != NULL; i++) {
        char *line = g_strstrip(lines[i]);
        if (*line == '\0')
            continue;
        /* 6.1-6.x: "key N"; ksm_merge_any/ksm_mergeable: "key: yes" */
        gsize klen = strcspn(line, ": \t");
        g_autofree char *key = g_strndup(line, klen);
        const char *val = line + klen;
        if (*val == ':')
            val++;
        while (*val == ' ' || *val == '\t')
            val++;
        for (guint k = 0; k < G_N_ELEMENTS(stat_keys); k++) {
            if (strcmp(key, stat_keys[k].key) != 0)
                continue;
            if (s.present & stat_keys[k].field) {
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "'%s': key '%s' appears twice", what, key);
                return FALSE;
            }
            g_autofree char *fwhat = g_strdup_printf("%s: %s", what, key);
            if (stat_keys[k].boolean) {
                gboolean b;
                if (strcmp(val, "yes") == 0)
                    b = TRUE;
                else if (strcmp(val, "no") == 0)
                    b = FALSE;
                else {
                    g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                                "'%s': '%s' is not yes or no", fwhat, val);
                    return FALSE;
                }
                if (stat_keys[k].field == MS_KSM_STAT_MERGE_ANY)
                    s.merge_any = b;
                else
                    s.mergeable = b;
            } else {
                gint64 v;
                if (!ms_ksm_parse_counter(val, strlen(val), fwhat, &v, error))
                    return FALSE;
                if (!stat_keys[k].is_signed && v < 0) {
                    g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                                "'%s': negative value %" G_GINT64_FORMAT, fwhat, v);
                    return FALSE;
                }
                switch (stat_keys[k].field) {
                case MS_KSM_STAT_RMAP_ITEMS: s.rmap_items = (guint64)v; break;
                case MS_KSM_STAT_ZERO_PAGES: s.zero_pages = (guint64)v; break;
                case MS_KSM_STAT_MERGING_PAGES: s.merging_pages = (guint64)v; break;
                case MS_KSM_STAT_PROCESS_PROFIT: s.process_profit = v; break;
                default: break;
                }
            }
            s.present |= stat_keys[k].field;
        }
    }
    *out = s;
    return TRUE;
}

gboolean
ms_ksm_read_process(const char *proc_root, pid_t pid, MsKsmStat *out,
                    GError **error)
{
    const char *root = proc_root ? proc_root : "/proc";
    g_autofree char *pidstr = g_strdup_printf("%d", (int)pid);
    g_autofree char *stat_path = g_build_filename(root, pidstr, "ksm_stat", NULL);
    g_autofree char *buf = NULL;
    gsize len = 0;

    if (ms_kcompat_file_exists(stat_path)) {
        MsKsmStat s;
        if (!ms_kcompat_read_file(stat_path, MS_KSM_STAT_MAX, &buf, &len, error) ||
            !ms_ksm_stat_parse(buf, len, stat_path, &s, error))
            return FALSE;
        /* 6.1's ksm_stat has only ksm_rmap_items: take merging pages from
         * the separate file when ksm_stat does not carry them. */
        g_autofree char *mp = g_build_filename(root, pidstr, "ksm_merging_pages", NULL);
        g_autofree char *mbuf = NULL;
        gsize mlen = 0;
        gint64 v;
        if (!(s.present & MS_KSM_STAT_MERGING_PAGES) &&
            ms_kcompat_file_exists(mp)) {
            if (!ms_kcompat_read_file(mp, KSM_VALUE_MAX, &mbuf, &mlen, error) ||
                !ms_ksm_parse_counter(mbuf, mlen, mp, &v, error))
                return FALSE;
            if (v < 0) {
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "'%s': negative value %" G_GINT64_FORMAT, mp, v);
                return FALSE;
            }
            s.merging_pages = (guint64)v;
            s.present |= MS_KSM_STAT_MERGING_PAGES;
        }
        *out = s;
        return TRUE;
    }
    /* Kernels before ksm_stat (< 6.1) only have ksm_merging_pages. */
    g_autofree char *mp_path = g_build_filename(root, pidstr, "ksm_merging_pages", NULL);
    if (!ms_kcompat_file_exists(mp_path)) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_SUPPORTED,
                    "neither '%s' nor '%s' exists", stat_path, mp_path);
        return FALSE;
    }
    if (!ms_kcompat_read_file(mp_path, KSM_VALUE_MAX, &buf, &len, error))
        return FALSE;
    gint64 v;
    if (!ms_ksm_parse_counter(buf, len, mp_path, &v, error))
        return FALSE;
    if (v < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': negative value %" G_GINT64_FORMAT, mp_path, v);
        return FALSE;
    }
    MsKsmStat s = { 0 };
    s.merging_pages = (guint64)v;
    s.present = MS_KSM_STAT_MERGING_PAGES;
    *out = s;
    return TRUE;
}

gint64
ms_ksm_process_contribution(const MsKsmStat *s, guint64 page_size)
{
    if (s->present & MS_KSM_STAT_PROCESS_PROFIT)
        return s->process_profit;
    if (s->present & MS_KSM_STAT_MERGING_PAGES) {
        if (page_size != 0 && s->merging_pages > (guint64)G_MAXINT64 / page_size)
            return G_MAXINT64;
        return (gint64)(s->merging_pages * page_size);
    }
    return 0;
}

gboolean
ms_ksm_set(const char *sysfs_root, const char *knob, guint64 value,
           GError **error)
{
    static const char *const allowed[] = {
        "run", "pages_to_scan", "sleep_millisecs", "advisor_mode",
    };
    gboolean ok = FALSE;
    for (guint i = 0; i < G_N_ELEMENTS(allowed); i++)
        ok = ok || strcmp(knob, allowed[i]) == 0;
    if (!ok) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "KSM knob '%s' is not one memshare may set", knob);
        return FALSE;
    }
    g_autofree char *text = NULL;
    if (strcmp(knob, "advisor_mode") == 0) {
        if (value > 1) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "KSM advisor_mode %" G_GUINT64_FORMAT " is not 0 (none) or 1 (scan-time)",
                        value);
            return FALSE;
        }
        text = g_strdup(value ? "scan-time" : "none");
    } else if (strcmp(knob, "run") == 0 && value > 2) {
        /* 2 unmerges everything; higher values are not defined */
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "KSM run %" G_GUINT64_FORMAT " is not 0, 1 or 2", value);
        return FALSE;
    } else {
        text = g_strdup_printf("%" G_GUINT64_FORMAT, value);
    }
    g_autofree char *path = g_build_filename(sysfs_root ? sysfs_root : "/sys",
                                             "kernel", "mm", "ksm", knob, NULL);
    /* sysfs attributes are written in place, never replaced by rename. A
     * hidden knob fails as on a kernel without it. */
    int fd = ms_kcompat_path_hidden(path) ? (errno = ENOENT, -1)
                                          : open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                    "cannot open '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    gsize n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    if (w != (ssize_t)n) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                    "cannot write '%s' to '%s': %s", text, path,
                    w < 0 ? g_strerror(e) : "short write");
        return FALSE;
    }
    return TRUE;
}
