/* formats/ms-export.c: the field table shared by `memsharectl domstats`,
 * the Prometheus textfile and the live-metadata stats element, and the two
 * serialisers. Pure functions of the status GKeyFile except the file
 * writers. See ms-export.h and docs/domstats.md. */
#include "ms-export.h"
#include "ms-status-keys.h"
#include "ms-error.h"
#include "ms-util.h"

#include <errno.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>
#include <string.h>
#include <unistd.h>

/* status-file names (ms-status-keys.h): ST(GROUP, KEY) is a group and a
 * key; SAME(GROUP, KEY) a domstats key that is the status key itself */
#define ST_GROUP(g) MS_STATUS_##g
#define ST(g, k) MS_STATUS_##g, MS_STATUS_##g##_##k
#define SAME(g, k) ST(g, k), ST(g, k)
#define SAME_ERR(g) MS_STATUS_##g, MS_STATUS_KEY_ERROR, MS_STATUS_##g, MS_STATUS_KEY_ERROR

#define U MS_EXPORT_U64
#define I MS_EXPORT_I64
#define B MS_EXPORT_BOOL
#define S MS_EXPORT_STR

/* Order is the output order of domstats and of the Prometheus families;
 * samples of one family must stay adjacent (the class rows). */
const MsExportField ms_export_fields[] = {
    /* agent */
    { SAME(AGENT, PID), NULL, NULL, U, NULL, NULL, FALSE, 0, NULL },
    { SAME(AGENT, TRANSPORT), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME(AGENT, TICKS), NULL, NULL, U, "memshare_agent_ticks_total", NULL, TRUE, 0,
      "Stats periods the agent has completed since it started." },
    { SAME(AGENT, UPDATED), NULL, NULL, I, "memshare_agent_updated_timestamp_seconds",
      NULL, FALSE, 0, "Unix time the agent last published its status." },
    { ST_GROUP(AGENT), "qemu-pid", ST(QEMU, PID), NULL, NULL, I, NULL, NULL, FALSE, 0, NULL },
    { ST_GROUP(AGENT), "qemu-version", ST(QEMU, VERSION), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* tracking (memsharectl domstats --used) */
    { SAME(TRACKING, METHOD), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME(TRACKING, PAGE_SIZE), NULL, NULL, U, "memshare_tracking_page_size_bytes",
      NULL, FALSE, 0, "Page size the guest's memory is classified in." },
    { SAME(TRACKING, TOTAL), NULL, NULL, U, "memshare_tracking_guest_memory_bytes", NULL,
      FALSE, 0, "Guest RAM the agent classifies." },
    { SAME(TRACKING, USED), NULL, NULL, U, "memshare_tracking_used_bytes", NULL, FALSE, 0,
      "Guest RAM backed by host memory or swap (private + ksm + swapped)." },
    { SAME(TRACKING, UNPOPULATED), NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"unpopulated\"", FALSE, 0, "Guest RAM by page class (docs/usedmap.md)." },
    { SAME(TRACKING, ZERO), NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"zero\"", FALSE, 0, NULL },
    { SAME(TRACKING, PRIVATE), NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"private\"", FALSE, 0, NULL },
    { SAME(TRACKING, KSM), NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"ksm\"", FALSE, 0, NULL },
    { SAME(TRACKING, SWAPPED), NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"swapped\"", FALSE, 0, NULL },
    { SAME(TRACKING, FREED), NULL, NULL, U, "memshare_tracking_class_bytes",
      "class=\"freed\"", FALSE, 0, NULL },
    { SAME(TRACKING, FREED_SINCE_LAST), NULL, NULL, U,
      "memshare_tracking_freed_since_last_bytes", NULL, FALSE, 0,
      "Guest RAM the guest freed since the previous scan." },
    { SAME(TRACKING, WORKING_SET), NULL, NULL, U,
      "memshare_tracking_working_set_bytes", NULL, FALSE, 0,
      "Guest RAM written during the last working-set window (soft-dirty)." },
    { SAME(TRACKING, KPAGEFLAGS), NULL, NULL, B, "memshare_tracking_kpageflags",
      NULL, FALSE, 0, "1 when /proc/kpageflags was readable (KSM pages told apart)." },
    { SAME(TRACKING, SCAN_US), NULL, NULL, U, "memshare_tracking_scan_duration_seconds",
      NULL, FALSE, 1000000, "Duration of the last page-table scan." },
    { SAME_ERR(TRACKING), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* ksm */
    { SAME(KSM, CONTRIBUTION), ST(BALLOON, CONTRIBUTION), I,
      "memshare_ksm_contribution_bytes", NULL, FALSE, 0,
      "Host memory KSM saves thanks to this domain (ksm_process_profit or merging pages)." },
    { SAME(KSM, PROFIT), NULL, NULL, I, "memshare_ksm_profit_bytes", NULL, FALSE, 0,
      "ksm_process_profit of the QEMU process (may be negative)." },
    { SAME(KSM, MERGING_PAGES), NULL, NULL, U, "memshare_ksm_merging_pages", NULL,
      FALSE, 0, "Pages of the QEMU process KSM has merged (ksm_merging_pages)." },
    { SAME(KSM, HOST_SAVED), ST(BALLOON, HOST_SAVED), U, "memshare_ksm_host_saved_bytes",
      NULL, FALSE, 0, "Host-wide KSM saving the balloon pool is built from." },
    { ST_GROUP(KSM), "tune.leader", ST(KSMTUNE, LEADER), NULL, NULL, B, "memshare_ksm_tune_leader", NULL, FALSE, 0,
      "1 when this agent tunes host KSM." },
    { ST_GROUP(KSM), "tune.run", ST(KSMTUNE, RUN), NULL, NULL, I, NULL, NULL, FALSE, 0, NULL },
    { ST_GROUP(KSM), "tune.pages-to-scan", ST(KSMTUNE, PAGES_TO_SCAN), NULL, NULL, I,
      "memshare_ksm_tune_pages_to_scan", NULL, FALSE, 0, "pages_to_scan the KSM tuner last set." },
    { ST_GROUP(KSM), "tune.reason", ST(KSMTUNE, REASON), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* balloon */
    { SAME(BALLOON, MODE), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME(BALLOON, DIVISION), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME(BALLOON, WEIGHT), NULL, NULL, U, "memshare_balloon_weight", NULL, FALSE, 0,
      "Weight of the domain in the weighted division." },
    { ST_GROUP(BALLOON), "maximum", ST(DOMAIN, MEMORY), NULL, NULL, U, "memshare_balloon_maximum_bytes", NULL, FALSE, 0,
      "The domain's <memory> (the most the balloon can give it)." },
    { SAME(BALLOON, BASE), NULL, NULL, U, "memshare_balloon_base_bytes", NULL, FALSE, 0,
      "Memory the domain gets before any KSM saving is shared out." },
    { SAME(BALLOON, FLOOR), NULL, NULL, U, "memshare_balloon_floor_bytes", NULL, FALSE, 0,
      "Lowest balloon target allowed." },
    { SAME(BALLOON, CEILING), NULL, NULL, U, "memshare_balloon_ceiling_bytes", NULL, FALSE,
      0, "Highest balloon target allowed." },
    { SAME(BALLOON, TARGET), NULL, NULL, U, "memshare_balloon_target_bytes", NULL, FALSE, 0,
      "Balloon target the agent last set." },
    { SAME(BALLOON, ACTUAL), NULL, NULL, U, "memshare_balloon_actual_bytes", NULL, FALSE, 0,
      "Memory the guest has according to the balloon driver." },
    { SAME(BALLOON, SHARE), NULL, NULL, U, "memshare_balloon_share_bytes", NULL, FALSE, 0,
      "This domain's share of the KSM saving pool." },
    { SAME(BALLOON, STUCK), NULL, NULL, B, "memshare_balloon_stuck", NULL, FALSE, 0,
      "1 when the guest does not follow its balloon target." },
    { SAME(BALLOON, PEERS), NULL, NULL, U, "memshare_balloon_peers", NULL, FALSE, 0,
      "Agents the saving pool is divided between (this one included)." },
    { SAME(BALLOON, REASON), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME_ERR(BALLOON), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* sharing trust groups (docs/security.md) */
    { SAME(SHARING, GROUP), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME(SHARING, SOURCE), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME(SHARING, MERGING), NULL, NULL, B, "memshare_sharing_ksm_merging", NULL, FALSE, 0,
      "1 when the domain runs with KSM merging on (no <nosharepages/>)." },
    { ST_GROUP(SHARING), "group-ksm-saved", ST(BALLOON, GROUP_SAVED), NULL, NULL, U,
      "memshare_sharing_group_ksm_saved_bytes", NULL, FALSE, 0,
      "The part of the host's KSM saving attributed to the domain's sharing group (its members' merging)." },
    { ST_GROUP(SHARING), "group-pool", ST(BALLOON, GROUP_POOL), NULL, NULL, U, "memshare_sharing_group_pool_bytes",
      NULL, FALSE, 0, "What the members of the domain's sharing group may share through their balloons." },
    { ST_GROUP(SHARING), "group-members", ST(BALLOON, GROUP_PEERS), NULL, NULL, U, "memshare_sharing_group_members",
      NULL, FALSE, 0, "Balloon-sharing domains in the domain's sharing group." },
    { ST_GROUP(SHARING), "groups", ST(BALLOON, GROUPS), NULL, NULL, U, "memshare_sharing_groups", NULL, FALSE, 0,
      "Sharing groups among the host's balloon-sharing domains." },
    { ST_GROUP(SHARING), "group-image-copies", ST(IMAGES, GROUP_COPIES), NULL, NULL, U,
      "memshare_sharing_group_image_copies", NULL, FALSE, 0,
      "Image copies of the domain's sharing group that its running domains map." },
    { ST_GROUP(SHARING), "group-image-bytes", ST(IMAGES, GROUP_BYTES), NULL, NULL, U,
      "memshare_sharing_group_image_bytes", NULL, FALSE, 0,
      "Size of the image copies of the domain's sharing group that its running domains map." },
    { ST_GROUP(SHARING), "group-image-cached", ST(IMAGES, GROUP_CACHED), NULL, NULL, U,
      "memshare_sharing_group_image_cached_bytes", NULL, FALSE, 0,
      "Bytes of those copies in the host's page cache (what the group's images cost the host)." },
    { SAME(SHARING, PENDING), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME_ERR(SHARING), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    /* images */
    { SAME(IMAGES, COUNT), NULL, NULL, U, "memshare_images_configured", NULL, FALSE, 0,
      "Shared images the policy names." },
    { SAME(IMAGES, ATTACHED), NULL, NULL, U, "memshare_images_attached", NULL, FALSE, 0,
      "Shared images attached to the domain." },
    { SAME(IMAGES, BYTES), NULL, NULL, U, "memshare_images_shared_bytes", NULL, FALSE, 0,
      "Size of the attached shared images (shared with every domain using them)." },
    { SAME(IMAGES, NAMES), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
    { SAME_ERR(IMAGES), NULL, NULL, S, NULL, NULL, FALSE, 0, NULL },
};
const gsize ms_export_n_fields = G_N_ELEMENTS(ms_export_fields);

#undef ST_GROUP
#undef ST
#undef SAME
#undef SAME_ERR
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

void
ms_export_unexport_value(GKeyFile *status, const char *group, const char *key, const char *value)
{
    for (gsize i = 0; i < ms_export_n_fields; i++) {
        const MsExportField *f = &ms_export_fields[i];
        if (!g_str_equal(f->group, group) || !g_str_equal(f->key, key))
            continue;
        g_key_file_set_string(status, f->src_group, f->src_key, value);
        if (f->alt_group)
            g_key_file_set_string(status, f->alt_group, f->alt_key, value);
        return;
    }
    g_key_file_set_string(status, group, key, value);
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
        { "transport", MS_STATUS_AGENT, MS_STATUS_AGENT_TRANSPORT },
        { "qemu_version", MS_STATUS_QEMU, MS_STATUS_QEMU_VERSION },
        { "tracking_method", MS_STATUS_TRACKING, MS_STATUS_TRACKING_METHOD },
        { "balloon_mode", MS_STATUS_BALLOON, MS_STATUS_BALLOON_MODE },
        { "balloon_division", MS_STATUS_BALLOON, MS_STATUS_BALLOON_DIVISION },
        { "sharing_group", MS_STATUS_SHARING, MS_STATUS_SHARING_GROUP },
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
