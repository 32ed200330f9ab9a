/* formats/ms-export.c: the field table shared by `memsharectl domstats`,
 * the Prometheus textfile and the live-metadata stats element, and the two
 * serialisers. Pure functions of the status GKeyFile except the file
 * writers. See ms-export.h and docs/domstats.md. */
#include "ms-export.h"
#include "ms-error.h"
#include "ms-util.h"

#include <errno.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>
#include <string.h>
#include <unistd.h>

#define U MS_EXPORT_U64
#define I MS_EXPORT_I64
#define B MS_EXPORT_BOOL
#define S MS_EXPORT_STR

/* Order is the output order of domstats and of the Prometheus families;
 * samples of one family must stay adjacent (the class rows). */
const MsExportField ms_export_fields[] = {
    /* agent */
    { "agent", "pid", "agent", "pid", NULL, NULL, U, NULL, NULL, FALSE, 0, NULL },
    { "agent", "transport", "agent", "transport", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "agent", "ticks", "agent", "ticks", NULL, NULL, U, "memshare_agent_ticks_total", NULL, TRUE, 0,
      "Stats periods the agent has completed since it started." },
    { "agent", "updated", "agent", "updated", NULL, NULL, I, "memshare_agent_updated_timestamp_seconds",
      NULL, FALSE, 0, "Unix time the agent last published its status." },
    { "agent", "qemu-pid", "qemu", "pid", NULL, NULL, I, NULL, NULL, FALSE, 0, NULL },
    { "agent", "qemu-version", "qemu", "version", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* tracking (memsharectl domstats --used) */
    { "tracking", "method", "tracking", "method", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "tracking", "page-size", "tracking", "page-size", NULL, NULL, U, "memshare_tracking_page_size_bytes",
      NULL, FALSE, 0, "Page size the guest's memory is classified in." },
    { "tracking", "total", "tracking", "total", NULL, NULL, U, "memshare_tracking_guest_memory_bytes", NULL,
      FALSE, 0, "Guest RAM the agent classifies." },
    { "tracking", "used", "tracking", "used", NULL, NULL, U, "memshare_tracking_used_bytes", NULL, FALSE, 0,
      "Guest RAM backed by host memory or swap (private + ksm + swapped)." },
    { "tracking", "unpopulated", "tracking", "unpopulated", NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"unpopulated\"", FALSE, 0, "Guest RAM by page class (docs/usedmap.md)." },
    { "tracking", "zero", "tracking", "zero", NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"zero\"", FALSE, 0, NULL },
    { "tracking", "private", "tracking", "private", NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"private\"", FALSE, 0, NULL },
    { "tracking", "ksm", "tracking", "ksm", NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"ksm\"", FALSE, 0, NULL },
    { "tracking", "swapped", "tracking", "swapped", NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"swapped\"", FALSE, 0, NULL },
    { "tracking", "freed", "tracking", "freed", NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"freed\"", FALSE, 0, NULL },
    { "tracking", "freed-since-last", "tracking", "freed-since-last", NULL, NULL, U,
      "memshare_tracking_freed_since_last_bytes", NULL, FALSE, 0,
      "Guest RAM the guest freed since the previous scan." },
    { "tracking", "working-set", "tracking", "working-set", NULL, NULL, U,
      "memshare_tracking_working_set_bytes", NULL, FALSE, 0,
      "Guest RAM written during the last working-set window (soft-dirty)." },
    { "tracking", "kpageflags", "tracking", "kpageflags", NULL, NULL, B, "memshare_tracking_kpageflags",
      NULL, FALSE, 0, "1 when /proc/kpageflags was readable (KSM pages told apart)." },
    { "tracking", "scan-us", "tracking", "scan-us", NULL, NULL, U, "memshare_tracking_scan_duration_seconds",
      NULL, FALSE, 1000000, "Duration of the last page-table scan." },
    { "tracking", "error", "tracking", "error", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* ksm */
    { "ksm", "contribution", "ksm", "contribution", "balloon", "contribution", I,
      "memshare_ksm_contribution_bytes", NULL, FALSE, 0,
      "Host memory KSM saves thanks to this domain (ksm_process_profit or merging pages)." },
    { "ksm", "profit", "ksm", "profit", NULL, NULL, I, "memshare_ksm_profit_bytes", NULL, FALSE, 0,
      "ksm_process_profit of the QEMU process (may be negative)." },
    { "ksm", "merging-pages", "ksm", "merging-pages", NULL, NULL, U, "memshare_ksm_merging_pages", NULL,
      FALSE, 0, "Pages of the QEMU process KSM has merged (ksm_merging_pages)." },
    { "ksm", "host-saved", "ksm", "host-saved", "balloon", "host-saved", U, "memshare_ksm_host_saved_bytes",
      NULL, FALSE, 0, "Host-wide KSM saving the balloon pool is built from." },
    { "ksm", "tune.leader", "ksmtune", "leader", NULL, NULL, B, "memshare_ksm_tune_leader", NULL, FALSE, 0,
      "1 when this agent tunes host KSM." },
    { "ksm", "tune.run", "ksmtune", "run", NULL, NULL, I, NULL, NULL, FALSE, 0, NULL },
    { "ksm", "tune.pages-to-scan", "ksmtune", "pages-to-scan", NULL, NULL, I,
      "memshare_ksm_tune_pages_to_scan", NULL, FALSE, 0, "pages_to_scan the KSM tuner last set." },
    { "ksm", "tune.reason", "ksmtune", "reason", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* balloon */
    { "balloon", "mode", "balloon", "mode", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "balloon", "division", "balloon", "division", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "balloon", "weight", "balloon", "weight", NULL, NULL, U, "memshare_balloon_weight", NULL, FALSE, 0,
      "Weight of the domain in the weighted division." },
    { "balloon", "maximum", "domain", "memory", NULL, NULL, U, "memshare_balloon_maximum_bytes", NULL, FALSE, 0,
      "The domain's <memory> (the most the balloon can give it)." },
    { "balloon", "base", "balloon", "base", NULL, NULL, U, "memshare_balloon_base_bytes", NULL, FALSE, 0,
      "Memory the domain gets before any KSM saving is shared out." },
    { "balloon", "floor", "balloon", "floor", NULL, NULL, U, "memshare_balloon_floor_bytes", NULL, FALSE, 0,
      "Lowest balloon target allowed." },
    { "balloon", "ceiling", "balloon", "ceiling", NULL, NULL, U, "memshare_balloon_ceiling_bytes", NULL, FALSE,
      0, "Highest balloon target allowed." },
    { "balloon", "target", "balloon", "target", NULL, NULL, U, "memshare_balloon_target_bytes", NULL, FALSE, 0,
      "Balloon target the agent last set." },
    { "balloon", "actual", "balloon", "actual", NULL, NULL, U, "memshare_balloon_actual_bytes", NULL, FALSE, 0,
      "Memory the guest has according to the balloon driver." },
    { "balloon", "share", "balloon", "share", NULL, NULL, U, "memshare_balloon_share_bytes", NULL, FALSE, 0,
      "This domain's share of the KSM saving pool." },
    { "balloon", "stuck", "balloon", "stuck", NULL, NULL, B, "memshare_balloon_stuck", NULL, FALSE, 0,
      "1 when the guest does not follow its balloon target." },
    { "balloon", "peers", "balloon", "peers", NULL, NULL, U, "memshare_balloon_peers", NULL, FALSE, 0,
      "Agents the saving pool is divided between (this one included)." },
    { "balloon", "reason", "balloon", "reason", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "balloon", "error", "balloon", "error", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* sharing trust groups (docs/security.md) */
    { "sharing", "group", "sharing", "group", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "sharing", "source", "sharing", "source", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "sharing", "merging", "sharing", "merging", NULL, NULL, B, "memshare_sharing_ksm_merging", NULL, FALSE, 0,
      "1 when the domain runs with KSM merging on (no <nosharepages/>)." },
    { "sharing", "group-ksm-saved", "balloon", "group-saved", NULL, NULL, U,
      "memshare_sharing_group_ksm_saved_bytes", NULL, FALSE, 0,
      "The part of the host's KSM saving attributed to the domain's sharing group (its members' merging)." },
    { "sharing", "group-pool", "balloon", "group-pool", NULL, NULL, U, "memshare_sharing_group_pool_bytes",
      NULL, FALSE, 0, "What the members of the domain's sharing group may share through their balloons." },
    { "sharing", "group-members", "balloon", "group-peers", NULL, NULL, U, "memshare_sharing_group_members",
      NULL, FALSE, 0, "Balloon-sharing domains in the domain's sharing group." },
    { "sharing", "groups", "balloon", "groups", NULL, NULL, U, "memshare_sharing_groups", NULL, FALSE, 0,
      "Sharing groups among the host's balloon-sharing domains." },
    { "sharing", "pending", "sharing", "pending", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "sharing", "error", "sharing", "error", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* images */
    { "images", "count", "images", "count", NULL, NULL, U, "memshare_images_configured", NULL, FALSE, 0,
      "Shared images the policy names." },
    { "images", "attached", "images", "attached", NULL, NULL, U, "memshare_images_attached", NULL, FALSE, 0,
      "Shared images attached to the domain." },
    { "images", "bytes", "images", "bytes", NULL, NULL, U, "memshare_images_shared_bytes", NULL, FALSE, 0,
      "Size of the attached shared images (shared with every domain using them)." },
    { "images", "names", "images", "names", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { "images", "error", "images", "error", NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
};
const gsize ms_export_n_fields = G_N_ELEMENTS(ms_export_fields);

#undef U
#undef I
#undef B
#undef S

gboolean
ms_export_field_value(GKeyFile *status, const MsExportField *f, char **value, GError **error)
{
    const char *group = f->src_group, *key = f->src_key;
    if (!g_key_file_has_key(status, group, key, NULL)) {
        if (f->alt_group == NULL || !g_key_file_has_key(status, f->alt_group, f->alt_key, NULL)) {
            *value = NULL;
            return TRUE;
        }
        group = f->alt_group;
        key = f->alt_key;
    }
    g_autoptr(GError) local = NULL;
    g_autofree char *raw = g_key_file_get_string(status, group, key, &local);
    if (raw == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "[%s] %s: %s", group, key, local->message);
        return FALSE;
    }
    switch (f->type) {
    case MS_EXPORT_STR:
        *value = g_steal_pointer(&raw);
        return TRUE;
    case MS_EXPORT_U64: {
        guint64 v;
        if (!ms_parse_u64(raw, key, &v, NULL))
            break;
        *value = g_strdup_printf("%" G_GUINT64_FORMAT, v);
        return TRUE;
    }
    case MS_EXPORT_I64: {
        gint64 v;
        if (!g_ascii_string_to_signed(g_strstrip(raw), 10, G_MININT64, G_MAXINT64, &v, NULL))
            break;
        *value = g_strdup_printf("%" G_GINT64_FORMAT, v);
        return TRUE;
    }
    case MS_EXPORT_BOOL: {
        gboolean b = g_key_file_get_boolean(status, group, key, &local);
        if (local)
            break;
        *value = g_strdup(b ? "yes" : "no");
        return TRUE;
    }
    }
    static const char *const what[] = { "an unsigned integer", "an integer", "a boolean", "a string" };
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "[%s] %s: '%s' is not %s", group, key,
                g_strstrip(raw), what[f->type]);
    return FALSE;
}

gboolean
ms_export_validate(GKeyFile *status, GError **error)
{
    for (gsize i = 0; i < ms_export_n_fields; i++) {
        g_autofree char *v = NULL;
        if (!ms_export_field_value(status, &ms_export_fields[i], &v, error))
            return FALSE;
    }
    return TRUE;
}

/* ---- Prometheus ----------------------------------------------------------- */

/* Label values escape backslash, double quote and newline (exposition
 * format 0.0.4); everything else, UTF-8 included, goes as is. */
static void
ms_export_prom_escape(GString *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            g_string_append(out, "\\\\");
        else if (*s == '"')
            g_string_append(out, "\\\"");
        else if (*s == '\n')
            g_string_append(out, "\\n");
        else
            g_string_append_c(out, *s);
    }
}

static void
ms_export_prom_labels(GString *out, const MsExportDomain *d, const char *extra)
{
    g_string_append(out, "{domain=\"");
    ms_export_prom_escape(out, d->name ? d->name : "");
    g_string_append(out, "\",uuid=\"");
    ms_export_prom_escape(out, d->uuid ? d->uuid : "");
    g_string_append_c(out, '"');
    if (extra)
        g_string_append_printf(out, ",%s", extra);
    g_string_append_c(out, '}');
}

static void
ms_export_prom_family(GString *out, const char *name, const char *type, const char *help)
{
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
ms_export_prom_value(GString *out, const MsExportField *f, const char *v)
{
    if (f->type == MS_EXPORT_BOOL) {
        g_string_append(out, g_str_equal(v, "yes") ? "1" : "0");
    } else if (f->divisor > 1) {
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        double x = g_ascii_strtod(v, NULL) / (double)f->divisor;
        g_string_append(out, g_ascii_formatd(buf, sizeof buf, "%.6f", x));
    } else {
        g_string_append(out, v);
    }
}

char *
ms_export_prometheus(const MsExportDomain *domains, gsize n, GError **error)
{
    for (gsize d = 0; d < n; d++) {
        g_autoptr(GError) local = NULL;
        if (!ms_export_validate(domains[d].status, &local)) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "status of domain '%s': %s",
                        domains[d].name, local->message);
            return NULL;
        }
    }
    GString *out = g_string_new(NULL);

    ms_export_prom_family(out, "memshare_agent_up", "gauge",
                          "1 while the domain's memshare agent runs, 0 for a stale status file.");
    for (gsize d = 0; d < n; d++) {
        g_string_append(out, "memshare_agent_up");
        ms_export_prom_labels(out, &domains[d], NULL);
        g_string_append_printf(out, " %d\n", domains[d].running ? 1 : 0);
    }
    /* Strings become labels of an info metric (Prometheus' convention for
     * text that does not change often). */
    ms_export_prom_family(out, "memshare_agent_info", "gauge",
                          "Constant 1; labels describe the agent and its policy.");
    static const struct { const char *label, *group, *key; } info[] = {
        { "transport", "agent", "transport" },   { "qemu_version", "qemu", "version" },
        { "tracking_method", "tracking", "method" }, { "balloon_mode", "balloon", "mode" },
        { "balloon_division", "balloon", "division" }, { "sharing_group", "sharing", "group" },
    };
    for (gsize d = 0; d < n; d++) {
        g_autoptr(GString) extra = g_string_new(NULL);
        for (gsize i = 0; i < G_N_ELEMENTS(info); i++) {
            g_autofree char *v = g_key_file_get_string(domains[d].status, info[i].group, info[i].key, NULL);
            if (v == NULL)
                continue;
            g_string_append_printf(extra, "%s%s=\"", extra->len ? "," : "", info[i].label);
            ms_export_prom_escape(extra, v);
            g_string_append_c(extra, '"');
        }
        g_string_append(out, "memshare_agent_info");
        ms_export_prom_labels(out, &domains[d], extra->len ? extra->str : NULL);
        g_string_append(out, " 1\n");
    }

    const char *family = NULL;
    for (gsize i = 0; i < ms_export_n_fields; i++) {
        const MsExportField *f = &ms_export_fields[i];
        if (f->metric == NULL)
            continue;
        /* The HELP of a family sits on its first row in the table. */
        if (g_strcmp0(family, f->metric) != 0) {
            /* families are written even without samples: a scraper then
             * knows the metric exists and this host lacks it */
            family = f->metric;
            ms_export_prom_family(out, f->metric, f->counter ? "counter" : "gauge", f->help);
        }
        for (gsize d = 0; d < n; d++) {
            g_autofree char *v = NULL;
            if (!ms_export_field_value(domains[d].status, f, &v, NULL) || v == NULL)
                continue;
            g_string_append(out, f->metric);
            ms_export_prom_labels(out, &domains[d], f->label);
            g_string_append_c(out, ' ');
            ms_export_prom_value(out, f, v);
            g_string_append_c(out, '\n');
        }
    }
    return g_string_free(out, FALSE);
}

gboolean
ms_export_write_prometheus_file(const char *dir, const MsExportDomain *domain, GError **error)
{
    if (domain->uuid == NULL || !ms_uuid_is_valid(domain->uuid)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "prometheus file for domain '%s': invalid uuid '%s'",
                    domain->name, domain->uuid ? domain->uuid : "");
        return FALSE;
    }
    g_autofree char *text = ms_export_prometheus(domain, 1, error);
    if (text == NULL)
        return FALSE;
    g_autofree char *base = g_strdup_printf("memshare-%s.prom", domain->uuid);
    g_autofree char *path = g_build_filename(dir, base, NULL);
    /* ms_file_write_atomic writes PATH.XXXXXX in DIR then renames:
     * the collector only reads *.prom, so it never sees the temporary. */
    return ms_file_write_atomic(path, text, -1, 0644, error);
}

gboolean
ms_export_remove_prometheus_file(const char *dir, const char *uuid, GError **error)
{
    if (!ms_uuid_is_valid(uuid)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "invalid uuid '%s'", uuid);
        return FALSE;
    }
    g_autofree char *base = g_strdup_printf("memshare-%s.prom", uuid);
    g_autofree char *path = g_build_filename(dir, base, NULL);
    if (unlink(path) < 0 && errno != ENOENT) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot remove '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    return TRUE;
}

/* ---- live-metadata stats element ----------------------------------------- */

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlBuffer, xmlBufferFree)

char *
ms_export_stats_xml(const MsExportDomain *domain, gint64 unix_time, GError **error)
{
    g_autoptr(GError) local = NULL;
    if (!ms_export_validate(domain->status, &local)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "status of domain '%s': %s", domain->name,
                    local->message);
        return NULL;
    }
    g_autoptr(xmlDoc) doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = xmlNewDocNode(doc, NULL, BAD_CAST "stats", NULL);
    xmlDocSetRootElement(doc, root);
    xmlNsPtr ns = xmlNewNs(root, BAD_CAST MS_EXPORT_STATS_NS, NULL);
    xmlSetNs(root, ns);
    g_autofree char *t = g_strdup_printf("%" G_GINT64_FORMAT, unix_time);
    xmlNewProp(root, BAD_CAST "time", BAD_CAST t);
    xmlNewProp(root, BAD_CAST "state", BAD_CAST(domain->running ? "running" : "stale"));

    /* One child per domstats group, one attribute per key: the element
     * reads like `memsharectl domstats` and the schema stays flat. */
    xmlNodePtr group = NULL;
    const char *gname = NULL;
    for (gsize i = 0; i < ms_export_n_fields; i++) {
        const MsExportField *f = &ms_export_fields[i];
        g_autofree char *v = NULL;
        ms_export_field_value(domain->status, f, &v, NULL);
        if (v == NULL)
            continue;
        if (g_strcmp0(gname, f->group) != 0) {
            gname = f->group;
            group = xmlNewChild(root, ns, BAD_CAST f->group, NULL);
        }
        /* XML 1.0 has no way to carry most control characters, even
         * escaped; an error message from QEMU must not make libvirt refuse
         * the whole element */
        for (char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
                *p = '?';
        xmlNewProp(group, BAD_CAST f->key, BAD_CAST v);
    }

    g_autoptr(xmlBuffer) buf = xmlBufferCreate();
    xmlSaveCtxtPtr save = xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_FORMAT | XML_SAVE_NO_DECL);
    if (save == NULL || xmlSaveTree(save, root) < 0) {
        if (save)
            xmlSaveClose(save);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot serialise the stats of domain '%s'",
                    domain->name);
        return NULL;
    }
    xmlSaveClose(save);
    return g_strdup((const char *)xmlBufferContent(buf));
}

/* ---- [stats] of memshare.conf ---------------------------------------------- */

gboolean
ms_export_config_load(GKeyFile *conf, MsExportConfig *out, GError **error)
{
    g_autofree char *dir = conf ? g_key_file_get_string(conf, "stats", "prometheus-dir", NULL) : NULL;
    if (dir)
        g_strstrip(dir);
    if (dir && *dir == '\0')
        g_clear_pointer(&dir, g_free);
    /* the agent's cwd is nobody's business: a relative dir is a mistake */
    if (dir && !g_path_is_absolute(dir)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "config '%s': [stats] prometheus-dir='%s': must be an absolute path", ms_config_path(), dir);
        return FALSE;
    }
    gboolean metadata = TRUE;
    if (conf && g_key_file_has_key(conf, "stats", "metadata", NULL)) {
        g_autoptr(GError) local = NULL;
        metadata = g_key_file_get_boolean(conf, "stats", "metadata", &local);
        if (local) {
            g_autofree char *raw = g_key_file_get_value(conf, "stats", "metadata", NULL);
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "config '%s': [stats] metadata='%s': expected true or false", ms_config_path(),
                        raw ? raw : "");
            return FALSE;
        }
    }
    out->prometheus_dir = g_steal_pointer(&dir);
    out->metadata = metadata;
    return TRUE;
}

void
ms_export_config_clear(MsExportConfig *config)
{
    g_clear_pointer(&config->prometheus_dir, g_free);
}
