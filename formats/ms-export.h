/* formats/ms-export.h: memshare's figures in the forms other tools read.
 * One table (ms_export_fields) says which status-file key becomes which
 * `memsharectl domstats` key, Prometheus metric and stats-element attribute,
 * so the three can never drift apart. Everything here is pure (status
 * GKeyFile in, text out) except ms_export_write_prometheus_file.
 * docs/domstats.md documents every key, metric and the XML element. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MS_EXPORT_STATS_NS "https://memshare.dev/xmlns/stats/1.0"
/* virDomainSetMetadata key (the element's prefix) */
#define MS_EXPORT_STATS_KEY "memshare-stats"

typedef enum {
    MS_EXPORT_U64,   /* unsigned decimal */
    MS_EXPORT_I64,   /* signed decimal (KSM profit may be negative) */
    MS_EXPORT_BOOL,  /* GKeyFile boolean; printed yes/no, exported 1/0 */
    MS_EXPORT_STR,   /* free text, exported as a label or attribute only */
} MsExportType;

typedef struct {
    const char *group;      /* domstats group: agent, tracking, ksm, balloon, images */
    const char *key;        /* domstats key: memshare.GROUP.KEY */
    const char *src_group;  /* where the agent writes it in the status file */
    const char *src_key;
    const char *alt_group;  /* read when src is absent (may be NULL) */
    const char *alt_key;
    MsExportType type;
    const char *metric;     /* Prometheus family, NULL = not exported */
    const char *label;      /* extra label pair inside {} or NULL */
    gboolean counter;       /* TYPE counter (else gauge) */
    guint divisor;          /* value / divisor in Prometheus (us -> s); 0 = 1 */
    const char *help;
} MsExportField;

extern const MsExportField ms_export_fields[];
extern const gsize ms_export_n_fields;

typedef struct {
    const char *name;       /* libvirt domain name */
    const char *uuid;
    gboolean running;       /* the agent is alive (memshare.state) */
    GKeyFile *status;       /* as the agent publishes it; never NULL */
} MsExportDomain;

/* The value of one field in canonical form (numbers re-printed, booleans
 * "yes"/"no"), or *value = NULL when the status lacks it. A value that does
 * not parse as the field's type is an error naming group, key and value. */
gboolean ms_export_field_value(GKeyFile *status, const MsExportField *field,
                               char **value, GError **error);

/* The way back from a domstats key (the stats element's group and
 * attribute, as carried by a migration) to the status file: value goes to
 * the field's status key, and to its alternative too when it has one (what
 * an older agent wrote there, and what the history reads). A key not in
 * the table is set as it stands. GKeyFile escapes the value: it can never
 * become a second key. */
void ms_export_unexport_value(GKeyFile *status, const char *group, const char *key, const char *value);

/* Checks every field of the table: FALSE names the first bad one. */
gboolean ms_export_validate(GKeyFile *status, GError **error);

/* Prometheus text exposition format (version 0.0.4) for n domains: one
 * HELP/TYPE block per family, samples of all domains below it. */
char *ms_export_prometheus(const MsExportDomain *domains, gsize n, GError **error);

/* <stats xmlns='MS_EXPORT_STATS_NS' time='UNIX_TIME'> ... </stats>, valid
 * against xml-schemas/memshare-stats.rng; no XML declaration (it goes to
 * virDomainSetMetadata as is). */
char *ms_export_stats_xml(const MsExportDomain *domain, gint64 unix_time, GError **error);

/* Writes DIR/memshare-UUID.prom with the domain's metrics atomically (temp
 * file + rename), so node_exporter's textfile collector never reads half. */
gboolean ms_export_write_prometheus_file(const char *dir, const MsExportDomain *domain,
                                         GError **error);

/* Removes DIR/memshare-UUID.prom (agent exit); a missing file is fine. */
gboolean ms_export_remove_prometheus_file(const char *dir, const char *uuid, GError **error);

/* [stats] of memshare.conf:
 *   prometheus-dir=DIR   absolute; unset = no textfile (default)
 *   metadata=true|false  live-metadata stats element (default true) */
typedef struct {
    char *prometheus_dir;
    gboolean metadata;
} MsExportConfig;

/* conf may be NULL (no config file): the defaults. */
gboolean ms_export_config_load(GKeyFile *conf, MsExportConfig *out, GError **error);
void ms_export_config_clear(MsExportConfig *config);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MsExportConfig, ms_export_config_clear)

G_END_DECLS
