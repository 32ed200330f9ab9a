/* qmp-plugin/ms-peers.h: reading every live agent's published allocation
 * inputs (RUNTIME/domains/UUID/inputs, see docs/balloon.md) so each agent can
 * run ms_alloc_compute on the same snapshot. */
#pragma once

#include <glib.h>
#include "ms-alloc.h"

G_BEGIN_DECLS

/* Each entry carries the domain's sharing group (inputs' group=; see
 * ms_alloc_compute_grouped). Returns an array of MsAllocDomain, sorted by uuid, for every domain
 * directory whose agent.pid names a live process and whose inputs parse and
 * name that directory's uuid; others are skipped (g_debug). *mode is the most
 * common published mode, ties going to equal. A missing domains directory
 * gives an empty array. */
GArray *ms_peers_read_inputs(const char *runtime_dir, MsAllocMode *mode,
                             GError **error);

G_END_DECLS
