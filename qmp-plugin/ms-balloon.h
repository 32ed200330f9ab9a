/* qmp-plugin/ms-balloon.h: the KSM balloon rebalancing module of the agent
 * (docs/balloon.md). Each period it reads what host KSM saves and what this
 * domain's QEMU contributes, publishes its inputs next to its pid file,
 * reads every live peer's inputs, runs the pure allocation (policies/
 * ms-alloc.c) on that one snapshot and moves only its own balloon (QMP
 * `balloon`). A balloon that does not follow is reported once and left
 * alone; at a clean stop the balloon goes back to its base. */
#pragma once

#include "ms-module.h"

G_BEGIN_DECLS

extern const MsAgentModule ms_balloon_module;

/* Host reserve: [balloon] host-reserve= in memshare.conf (a size), else
 * max(256 MiB, 5 % of MemTotal). Exposed for tests. */
guint64 ms_balloon_host_reserve(GKeyFile *conf, guint64 mem_total_bytes, GError **error);

/* The module's tick at a given monotonic time (us): the clock of stuck
 * detection. The module's tick() is this at g_get_monotonic_time();
 * exposed for the replay tests (tests/balloon/test-balloon-replay.c). */
gboolean ms_balloon_tick_at(gpointer self, const MsAgentEnv *env, GKeyFile *status, gint64 now_us,
                            GError **error);

G_END_DECLS
