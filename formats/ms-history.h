/* formats/ms-history.h: the bounded timeline each agent keeps of its
 * domain's figures (RUNSTATEDIR/memshare/domains/UUID/history), read by
 * `memsharectl plot`. One line per stats period: a unix time then the
 * values of MS_HISTORY_COLUMNS, space-separated, "-" when unknown. Appended
 * with O_APPEND (a crash can cut only the last line, which readers skip);
 * when the file passes 2 x limit lines it is rewritten atomically with the
 * newest limit lines, so it never grows without bound. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* "group.key" of the status file, in column order. */
extern const char *const ms_history_columns[];

#define MS_HISTORY_DEFAULT_LIMIT 4320  /* 6 h at the default 5 s period */

/* Formats one line ("TIME v1 v2 ...\n") from a status key file. */
char *ms_history_format_line(GKeyFile *status, gint64 unix_time);

/* Appends the line to PATH (creating it with a header), trimming to the
 * newest `limit` lines when it holds more than 2 x limit. */
gboolean ms_history_append(const char *path, const char *line, guint limit, GError **error);

/* Parses a history file: rows of (1 + n_columns) doubles (NAN for "-");
 * malformed lines are skipped and counted. */
GArray *ms_history_parse(const char *text, gsize len, guint *n_columns, guint *skipped,
                         GError **error);

G_END_DECLS
