/* formats/ms-history.c: the agent's bounded timeline file (see
 * ms-history.h for the format and why it is append-then-trim). */
#include "ms-history.h"
#include "ms-status-keys.h"
#include "ms-error.h"
#include "ms-util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

const char *const ms_history_columns[] = {
    MS_STATUS_BALLOON "." MS_STATUS_BALLOON_ACTUAL,
    MS_STATUS_BALLOON "." MS_STATUS_BALLOON_TARGET,
    MS_STATUS_BALLOON "." MS_STATUS_BALLOON_BASE,
    MS_STATUS_BALLOON "." MS_STATUS_BALLOON_HOST_SAVED,
    MS_STATUS_BALLOON "." MS_STATUS_BALLOON_CONTRIBUTION,
    MS_STATUS_TRACKING "." MS_STATUS_TRACKING_USED,
    MS_STATUS_TRACKING "." MS_STATUS_TRACKING_TOTAL,
    MS_STATUS_IMAGES "." MS_STATUS_IMAGES_BYTES,
    NULL,
};

#define MS_HISTORY_HEADER_PREFIX "# memshare history v1: time"
#define MS_HISTORY_MAX_FILE (64 * 1024 * 1024)

char *
ms_history_format_line(GKeyFile *status, gint64 unix_time)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "%" G_GINT64_FORMAT, unix_time);
    for (gsize i = 0; ms_history_columns[i]; i++) {
        g_auto(GStrv) gk = g_strsplit(ms_history_columns[i], ".", 2);
        g_autoptr(GError) error = NULL;
        guint64 v = g_key_file_get_uint64(status, gk[0], gk[1], &error);
        if (error)
            g_string_append(s, " -");
        else
            g_string_append_printf(s, " %" G_GUINT64_FORMAT, v);
    }
    g_string_append_c(s, '\n');
    return g_string_free(s, FALSE);
}

static char *
ms_history_header(void)
{
    GString *s = g_string_new(MS_HISTORY_HEADER_PREFIX);
    for (gsize i = 0; ms_history_columns[i]; i++)
        g_string_append_printf(s, " %s", ms_history_columns[i]);
    g_string_append_c(s, '\n');
    return g_string_free(s, FALSE);
}

gboolean
ms_history_append(const char *path, const char *line, guint limit, GError **error)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", path, g_strerror(e));
        return FALSE;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    g_autofree char *header = size == 0 ? ms_history_header() : NULL;
    g_autofree char *all = g_strconcat(header ? header : "", line, NULL);
    gsize len = strlen(all);
    ssize_t n = write(fd, all, len);
    int e = errno;
    close(fd);
    if (n != (ssize_t)len) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", path,
                    n < 0 ? g_strerror(e) : "short write (disk full?)");
        return FALSE;
    }

    /* Trim: cheap test first (the size), exact count only then. */
    if (limit == 0 || (gsize)size + len < (gsize)limit * 2 * 40)
        return TRUE;
    g_autofree char *text = NULL;
    gsize tlen = 0;
    if (!ms_file_read_bounded(path, MS_HISTORY_MAX_FILE, &text, &tlen, error))
        return FALSE;
    g_auto(GStrv) ls = g_strsplit(text, "\n", -1);
    g_autoptr(GPtrArray) data = g_ptr_array_new();
    for (char **l = ls; *l; l++)
        if (**l && **l != '#')
            g_ptr_array_add(data, *l);
    if (data->len <= 2 * limit)
        return TRUE;
    GString *out = g_string_new(NULL);
    g_autofree char *hdr = ms_history_header();
    g_string_append(out, hdr);
    for (guint i = data->len - limit; i < data->len; i++)
        g_string_append_printf(out, "%s\n", (char *)g_ptr_array_index(data, i));
    gboolean ok = ms_file_write_atomic(path, out->str, out->len, 0644, error);
    g_string_free(out, TRUE);
    return ok;
}

GArray *
ms_history_parse(const char *text, gsize len, guint *n_columns, guint *skipped, GError **error)
{
    guint ncol = g_strv_length((char **)ms_history_columns);
    GArray *rows = g_array_new(FALSE, FALSE, sizeof(double));
    *n_columns = ncol;
    *skipped = 0;
    if (len == 0 || strncmp(text, MS_HISTORY_HEADER_PREFIX, strlen(MS_HISTORY_HEADER_PREFIX)) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "not a memshare history file (no '%s' header)",
                    MS_HISTORY_HEADER_PREFIX);
        g_array_unref(rows);
        return NULL;
    }
    g_autofree char *copy = g_strndup(text, len);
    g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
    guint nlines = g_strv_length(lines);
    for (guint i = 1; i < nlines; i++) {
        /* the last element is what follows the final newline: a cut line
         * (crash mid-append) or empty */
        if (lines[i][0] == '\0' || lines[i][0] == '#')
            continue;
        g_auto(GStrv) f = g_strsplit(lines[i], " ", -1);
        gboolean ok = g_strv_length(f) == ncol + 1 && i + 1 < nlines;
        double vals[64];
        for (guint c = 0; ok && c <= ncol && c < G_N_ELEMENTS(vals); c++) {
            char *end = NULL;
            if (strcmp(f[c], "-") == 0 && c > 0) {
                vals[c] = NAN;
                continue;
            }
            vals[c] = g_ascii_strtod(f[c], &end);
            ok = end && *end == '\0' && end != f[c] && isfinite(vals[c]);
        }
        if (!ok) {
            (*skipped)++;
            continue;
        }
        g_array_append_vals(rows, vals, ncol + 1);
    }
    return rows;
}
