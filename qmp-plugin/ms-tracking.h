/* qmp-plugin/ms-tracking.h: the agent's used-page tracking module (see
 * ms-tracking.c). */
#pragma once

#include "ms-module.h"

G_BEGIN_DECLS

extern const MsAgentModule ms_tracking_module;

/* Scans now and writes the used-page bitmap file (docs/usedmap.md). */
gboolean ms_tracking_write_usedmap(gpointer self, const char *path, GError **error);

G_END_DECLS
