/* qmp-plugin/ms-meminfo.c: the one /proc/meminfo reader (ms-meminfo.h). */
#include "ms-meminfo.h"
#include "ms-error.h"
#include "ms-util.h"

#include <stdio.h>
#include <string.h>

/* meminfo is about 1.5 KiB; anything far larger is not meminfo. */
#define MS_MEMINFO_MAX (64 * 1024)

gboolean
ms_meminfo_read(const char *proc_root, MsMeminfo *out, GError **error)
{
    g_autofree char *path = g_build_filename(proc_root, "meminfo", NULL);
    g_autofree char *text = NULL;
    if (!ms_file_read_bounded(path, MS_MEMINFO_MAX, &text, NULL, error))
        return FALSE;
    *out = (MsMeminfo){ 0 };
    gboolean have_total = FALSE, have_avail = FALSE;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        guint64 v;
        /* the first of each counts; the unit is always kB */
        if (!have_total && g_str_has_prefix(line, "MemTotal:") &&
            sscanf(line + 9, "%" G_GUINT64_FORMAT, &v) == 1)
            out->total_kib = v, have_total = TRUE;
        else if (!have_avail && g_str_has_prefix(line, "MemAvailable:") &&
                 sscanf(line + 13, "%" G_GUINT64_FORMAT, &v) == 1)
            out->available_kib = v, have_avail = TRUE;
        line = nl ? nl + 1 : NULL;
    }
    if (!have_total || !have_avail) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: no MemTotal or MemAvailable line", path);
        return FALSE;
    }
    return TRUE;
}
