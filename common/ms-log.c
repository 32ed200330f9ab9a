/* common/ms-log.c: a GLib structured-log writer that adds the domain name to
 * every record. journald gets MEMSHARE_DOMAIN= and SYSLOG_IDENTIFIER= fields
 * (when stderr is connected to the journal, as under our systemd unit);
 * otherwise we write one plain line per record to stderr:
 *   2026-11-22T14:00:00.123Z memshare-agent[123]: domain 'web1': message */
#include "ms-log.h"

#include <stdio.h>
#include <unistd.h>

static char *ms_log_program;
static char *ms_log_domain;
static gboolean ms_log_verbose;
static gboolean ms_log_journal;

static GLogWriterOutput
ms_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
              gpointer user_data)
{
    if (!ms_log_verbose && (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)))
        return G_LOG_WRITER_HANDLED;

    const char *message = NULL;
    for (gsize i = 0; i < n_fields; i++) {
        if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
            message = fields[i].value;
    }
    g_autofree char *full = NULL;
    if (ms_log_domain)
        full = g_strdup_printf("domain '%s': %s", ms_log_domain, message ? message : "");
    else
        full = g_strdup(message ? message : "");

    if (ms_log_journal) {
        g_autofree GLogField *f = g_new0(GLogField, n_fields + 2);
        gsize k = 0;
        for (gsize i = 0; i < n_fields; i++) {
            if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
                f[k++] = (GLogField){ "MESSAGE", full, -1 };
            else
                f[k++] = fields[i];
        }
        f[k++] = (GLogField){ "SYSLOG_IDENTIFIER", ms_log_program, -1 };
        if (ms_log_domain)
            f[k++] = (GLogField){ "MEMSHARE_DOMAIN", ms_log_domain, -1 };
        if (g_log_writer_journald(level, f, k, user_data) == G_LOG_WRITER_HANDLED)
            return G_LOG_WRITER_HANDLED;
    }

    const char *lvl = "info";
    if (level & G_LOG_LEVEL_ERROR) lvl = "error";
    else if (level & G_LOG_LEVEL_CRITICAL) lvl = "critical";
    else if (level & G_LOG_LEVEL_WARNING) lvl = "warning";
    else if (level & G_LOG_LEVEL_MESSAGE) lvl = "notice";
    else if (level & G_LOG_LEVEL_DEBUG) lvl = "debug";
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *ts = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S.%fZ");
    fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, ms_log_program, (int)getpid(), lvl, full);
    fflush(stderr);
    return G_LOG_WRITER_HANDLED;
}

void
ms_log_init(const char *program, const char *domain_name, gboolean verbose)
{
    g_free(ms_log_program);
    ms_log_program = g_strdup(program);
    ms_log_verbose = verbose || g_getenv("MEMSHARE_DEBUG") != NULL;
    ms_log_journal = g_log_writer_is_journald(fileno(stderr));
    ms_log_set_domain(domain_name);
    g_log_set_writer_func(ms_log_writer, NULL, NULL);
}

void
ms_log_set_domain(const char *domain_name)
{
    g_free(ms_log_domain);
    ms_log_domain = g_strdup(domain_name);
}
