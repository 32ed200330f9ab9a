/* formats/ms-units.h: the size and period unit parser shared by the policy
 * parser (policies/ms-policy.c) and the config readers (the agent's
 * [balloon] host-reserve). Errors are MS_ERROR_INVALID with a message that
 * says what was expected; callers prefix it with where the value stood. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sizes as libvirt writes them: "1024" (default_unit, NULL = KiB),
 * "512MiB", "2G", "1GB" (decimal), "4096b"/"bytes". Result in KiB, rounded
 * up; at most 2^63 bytes. */
gboolean ms_units_parse_size_kib(const char *value, const char *default_unit,
                                 guint64 *kib, GError **error);

/* Periods: "5s", "500ms", "2m", "1h"; bare numbers are seconds. */
gboolean ms_units_parse_period_ms(const char *value, guint64 *ms, GError **error);

G_END_DECLS
