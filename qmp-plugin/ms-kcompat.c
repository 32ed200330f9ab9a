/* qmp-plugin/ms-kcompat.c: the knob that hides kernel interfaces newer than
 * Debian 12's 6.1, and the kernel-file access that honours it. See
 * ms-kcompat.h. */
#include "ms-kcompat.h"
#include "ms-status-keys.h"

#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "ms-error.h"
#include "ms-ksm.h"
#include "ms-pagemap.h"
#include "ms-util.h"

static const char *const feature_names[MS_KCOMPAT_N_FEATURES] = {
    [MS_KCOMPAT_PAGEMAP_SCAN] = "pagemap-scan",
    [MS_KCOMPAT_GENERAL_PROFIT] = "general-profit",
    [MS_KCOMPAT_KSM_PROCESS_PROFIT] = "ksm-process-profit",
    [MS_KCOMPAT_KSM_ADVISOR] = "ksm-advisor",
    [MS_KCOMPAT_KSM_COUNTERS] = "ksm-counters",
    [MS_KCOMPAT_KSM_STAT_FIELDS] = "ksm-stat-fields",
};

/* Every sysfs KSM file and ksm_stat key 6.1 lacks among those ms-ksm reads
 * (tests/ksm checks this table against the 6.1 and 6.18 fixture trees). */
typedef enum { KIND_KSM_SYSFS, KIND_KSM_STAT } ItemKind;
static const struct {
    MsKcompatFeature feature;
    ItemKind kind;
    const char *name;
} items[] = {
    { MS_KCOMPAT_GENERAL_PROFIT, KIND_KSM_SYSFS, "general_profit" },
    { MS_KCOMPAT_KSM_ADVISOR, KIND_KSM_SYSFS, "advisor_mode" },
    { MS_KCOMPAT_KSM_ADVISOR, KIND_KSM_SYSFS, "advisor_max_cpu" },
    { MS_KCOMPAT_KSM_ADVISOR, KIND_KSM_SYSFS, "advisor_min_pages_to_scan" },
    { MS_KCOMPAT_KSM_ADVISOR, KIND_KSM_SYSFS, "advisor_max_pages_to_scan" },
    { MS_KCOMPAT_KSM_ADVISOR, KIND_KSM_SYSFS, "advisor_target_scan_time" },
    { MS_KCOMPAT_KSM_COUNTERS, KIND_KSM_SYSFS, "pages_scanned" },
    { MS_KCOMPAT_KSM_COUNTERS, KIND_KSM_SYSFS, "pages_skipped" },
    { MS_KCOMPAT_KSM_COUNTERS, KIND_KSM_SYSFS, "smart_scan" },
    { MS_KCOMPAT_KSM_COUNTERS, KIND_KSM_SYSFS, "ksm_zero_pages" },
    { MS_KCOMPAT_KSM_PROCESS_PROFIT, KIND_KSM_STAT, "ksm_process_profit" },
    { MS_KCOMPAT_KSM_STAT_FIELDS, KIND_KSM_STAT, "ksm_merging_pages" },
    { MS_KCOMPAT_KSM_STAT_FIELDS, KIND_KSM_STAT, "ksm_zero_pages" },
    { MS_KCOMPAT_KSM_STAT_FIELDS, KIND_KSM_STAT, "ksm_merge_any" },
    { MS_KCOMPAT_KSM_STAT_FIELDS, KIND_KSM_STAT, "ksm_mergeable" },
};

/* The name that stands for every feature: what Debian 12's kernel lacks. */
#define MS_KCOMPAT_LINUX_61 "linux-6.1"

/* Set once at agent start (single-threaded then); tests replace it. */
static gboolean state_ready;
static guint state_hidden;
static guint state_required;

const char *
ms_kcompat_feature_name(MsKcompatFeature f)
{
    g_return_val_if_fail(f < MS_KCOMPAT_N_FEATURES, NULL);
    return feature_names[f];
}

gboolean
ms_kcompat_parse(const char *spec, guint *mask, GError **error)
{
    guint m = 0;
    g_auto(GStrv) names = g_strsplit(spec ? spec : "", ",", -1);
    for (guint i = 0; names[i] != NULL; i++) {
        const char *n = g_strstrip(names[i]);
        if (*n == '\0')
            continue;
        if (strcmp(n, MS_KCOMPAT_LINUX_61) == 0) {
            m |= MS_KCOMPAT_ALL;
            continue;
        }
        gboolean found = FALSE;
        for (guint f = 0; f < MS_KCOMPAT_N_FEATURES; f++) {
            if (strcmp(n, feature_names[f]) == 0) {
                m |= 1u << f;
                found = TRUE;
            }
        }
        if (!found) {
            g_autoptr(GString) known = g_string_new(MS_KCOMPAT_LINUX_61);
            for (guint f = 0; f < MS_KCOMPAT_N_FEATURES; f++)
                g_string_append_printf(known, ", %s", feature_names[f]);
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "MEMSHARE_HIDE: unknown kernel interface '%s' (known: %s)", n, known->str);
            return FALSE;
        }
    }
    *mask = m;
    return TRUE;
}

static gboolean
kcompat_from_env(guint *hidden, guint *required, GError **error)
{
    guint h = 0, r = 0;
    if (!ms_kcompat_parse(g_getenv("MEMSHARE_HIDE"), &h, error))
        return FALSE;
    /* The older, pagemap-only knob: "read" is hiding PAGEMAP_SCAN. */
    const char *m = g_getenv("MEMSHARE_PAGEMAP_METHOD");
    if (m == NULL || *m == '\0' || strcmp(m, "auto") == 0) {
        /* nothing */
    } else if (strcmp(m, "read") == 0) {
        h |= 1u << MS_KCOMPAT_PAGEMAP_SCAN;
    } else if (strcmp(m, "scan") == 0) {
        r |= 1u << MS_KCOMPAT_PAGEMAP_SCAN;
    } else {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "MEMSHARE_PAGEMAP_METHOD='%s': must be auto, read or scan", m);
        return FALSE;
    }
    if (h & r) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "MEMSHARE_PAGEMAP_METHOD=scan asks for PAGEMAP_SCAN, which MEMSHARE_HIDE hides");
        return FALSE;
    }
    *hidden = h;
    *required = r;
    return TRUE;
}

gboolean
ms_kcompat_init(GError **error)
{
    guint h, r;
    if (!kcompat_from_env(&h, &r, error))
        return FALSE;
    state_hidden = h;
    state_required = r;
    state_ready = TRUE;
    return TRUE;
}

void
ms_kcompat_set_hidden(guint mask)
{
    state_hidden = mask & MS_KCOMPAT_ALL;
    state_required = 0;
    state_ready = TRUE;
}

static void
kcompat_ensure(void)
{
    if (state_ready)
        return;
    g_autoptr(GError) error = NULL;
    /* Programs other than the agent (tests, benches) that never called
     * init: a bad value is reported and hides nothing. */
    if (!ms_kcompat_init(&error)) {
        g_warning("%s: hiding nothing", error->message);
        ms_kcompat_set_hidden(0);
    }
}

guint
ms_kcompat_get_hidden(void)
{
    kcompat_ensure();
    return state_hidden;
}

gboolean
ms_kcompat_hidden(MsKcompatFeature f)
{
    return (ms_kcompat_get_hidden() & (1u << f)) != 0;
}

gboolean
ms_kcompat_required(MsKcompatFeature f)
{
    kcompat_ensure();
    return (state_required & (1u << f)) != 0;
}

char *
ms_kcompat_hidden_names(void)
{
    g_autoptr(GString) s = g_string_new(NULL);
    for (guint f = 0; f < MS_KCOMPAT_N_FEATURES; f++)
        if (ms_kcompat_hidden(f))
            g_string_append_printf(s, "%s%s", s->len ? "," : "", feature_names[f]);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static gboolean
item_hidden(ItemKind kind, const char *name, gsize len)
{
    for (guint i = 0; i < G_N_ELEMENTS(items); i++)
        if (items[i].kind == kind && strlen(items[i].name) == len &&
            strncmp(items[i].name, name, len) == 0 && ms_kcompat_hidden(items[i].feature))
            return TRUE;
    return FALSE;
}

gboolean
ms_kcompat_path_hidden(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    if (!g_str_has_suffix(dir, "/kernel/mm/ksm"))
        return FALSE;
    return item_hidden(KIND_KSM_SYSFS, base, strlen(base));
}

gboolean
ms_kcompat_file_exists(const char *path)
{
    return !ms_kcompat_path_hidden(path) && g_file_test(path, G_FILE_TEST_EXISTS);
}

/* Drops the lines of hidden keys; the key is what ms_ksm_stat_parse takes
 * as one ("key N" or "key: yes"). */
static char *
kcompat_filter_ksm_stat(const char *buf, gsize len, gsize *out_len)
{
    GString *out = g_string_sized_new(len);
    const char *end = buf + len;
    for (const char *line = buf; line < end;) {
        const char *nl = memchr(line, '\n', (gsize)(end - line));
        const char *next = nl ? nl + 1 : end;
        const char *k = line;
        while (k < next && (*k == ' ' || *k == '\t'))
            k++;
        gsize klen = 0;
        while (k + klen < next && strchr(": \t\n", k[klen]) == NULL)
            klen++;
        if (!item_hidden(KIND_KSM_STAT, k, klen))
            g_string_append_len(out, line, next - line);
        line = next;
    }
    *out_len = out->len;
    return g_string_free(out, FALSE);
}

gboolean
ms_kcompat_read_file(const char *path, gsize max, char **contents, gsize *length,
                     GError **error)
{
    if (ms_kcompat_path_hidden(path)) {
        /* What ms_file_read_bounded says of a file the kernel lacks. */
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                    "cannot open '%s': %s (hidden by MEMSHARE_HIDE)", path,
                    g_strerror(ENOENT));
        return FALSE;
    }
    g_autofree char *buf = NULL;
    gsize len = 0;
    if (!ms_file_read_bounded(path, max, &buf, &len, error))
        return FALSE;
    g_autofree char *base = g_path_get_basename(path);
    if (strcmp(base, "ksm_stat") == 0 && ms_kcompat_get_hidden() != 0) {
        gsize flen = 0;
        char *filtered = kcompat_filter_ksm_stat(buf, len, &flen);
        g_free(buf);
        buf = filtered;
        len = flen;
    }
    *contents = g_steal_pointer(&buf);
    if (length)
        *length = len;
    return TRUE;
}

void
ms_kcompat_report(const char *sys_root, const char *proc_root, pid_t qemu_pid,
                  GKeyFile *status)
{
    g_autofree char *hidden = ms_kcompat_hidden_names();
    struct utsname u;
    const char *release = uname(&u) == 0 ? u.release : "?";

    gboolean scan = ms_pagemap_scan_supported();
    const char *pagemap = scan ? "scan" : "read";

    MsKsmHost host;
    const char *saved = "none", *contribution = "none";
    gboolean advisor = FALSE;
    if (ms_ksm_read_host(sys_root, &host, NULL)) {
        saved = MS_KSM_HAS(&host, MS_KSM_GENERAL_PROFIT) ? "general_profit" : "pages_sharing";
        advisor = MS_KSM_HAS(&host, MS_KSM_ADVISOR_MODE);
    }
    MsKsmStat st;
    if (qemu_pid > 0 && ms_ksm_read_process(proc_root, qemu_pid, &st, NULL)) {
        contribution = (st.present & MS_KSM_STAT_PROCESS_PROFIT) ? "ksm_process_profit"
                       : (st.present & MS_KSM_STAT_MERGING_PAGES) ? "ksm_merging_pages"
                                                                  : "none";
    }
    g_message("kernel %s: pagemap %s, KSM saved from %s, contribution from %s, advisor %s%s%s%s",
              release, scan ? "PAGEMAP_SCAN" : "pread", saved, contribution,
              advisor ? "yes" : "no", *hidden ? "; hidden by MEMSHARE_HIDE: " : "", hidden,
              ms_kcompat_get_hidden() == MS_KCOMPAT_ALL ? " (as on Debian 12's Linux 6.1)" : "");
    if (status == NULL)
        return;
    g_key_file_set_string(status, MS_STATUS_KERNEL, MS_STATUS_KERNEL_RELEASE, release);
    g_key_file_set_string(status, MS_STATUS_KERNEL, MS_STATUS_KERNEL_HIDDEN, hidden);
    g_key_file_set_string(status, MS_STATUS_KERNEL, MS_STATUS_KERNEL_PAGEMAP, pagemap);
    g_key_file_set_string(status, MS_STATUS_KERNEL, MS_STATUS_KERNEL_KSM_SAVED, saved);
    g_key_file_set_string(status, MS_STATUS_KERNEL, MS_STATUS_KERNEL_KSM_CONTRIBUTION, contribution);
    g_key_file_set_boolean(status, MS_STATUS_KERNEL, MS_STATUS_KERNEL_KSM_ADVISOR, advisor);
}
