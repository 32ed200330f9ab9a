/* qmp-plugin/ms-meminfo.h: the one /proc/meminfo reader of the agent (the
 * balloon module's host reserve and MemAvailable, the KSM tuner's
 * pressure thresholds). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    guint64 total_kib;     /* MemTotal */
    guint64 available_kib; /* MemAvailable (kernel >= 3.14) */
} MsMeminfo;

/* Reads PROC_ROOT/meminfo (bounded). Both lines must be there: a kernel
 * without MemAvailable gives no figure we could trust for pressure. */
gboolean ms_meminfo_read(const char *proc_root, MsMeminfo *out, GError **error);

G_END_DECLS
