/* formats/ms-units.c: sizes and periods as memshare's inputs write them
 * (policy attributes, the domain XML's <memory>, memshare.conf). One parser
 * for all, so "2G" means the same in a policy and in the config. */
#include "ms-units.h"
#include "ms-error.h"
#include "ms-util.h"

#include <string.h>

/* the longest value accepted: beyond it, a value is not a size but noise */
#define MS_UNITS_MAX_VALUE 256
#define HOUR_MS (3600 * 1000)

typedef struct {
    const char *name;
    guint64 mult;
} Unit;

/* As libvirt's virScaleInteger: k/KiB are binary, KB decimal, case-insensitive. */
static const Unit size_units[] = {
    { "b", 1 }, { "bytes", 1 },
    { "k", 1ULL << 10 }, { "kib", 1ULL << 10 }, { "kb", 1000ULL },
    { "m", 1ULL << 20 }, { "mib", 1ULL << 20 }, { "mb", 1000000ULL },
    { "g", 1ULL << 30 }, { "gib", 1ULL << 30 }, { "gb", 1000000000ULL },
    { "t", 1ULL << 40 }, { "tib", 1ULL << 40 }, { "tb", 1000000000000ULL },
};

static const Unit period_units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", HOUR_MS },
};

static gboolean
lookup_unit(const Unit *units, gsize n, const char *name, guint64 *mult)
{
    for (gsize i = 0; i < n; i++) {
        if (g_ascii_strcasecmp(units[i].name, name) == 0) {
            *mult = units[i].mult;
            return TRUE;
        }
    }
    return FALSE;
}

/* "<digits><unit>" with optional blanks around and between. Returns FALSE
 * on anything else. A number beyond 64 bits saturates, so that the callers'
 * range checks call it too large rather than not a number (the schema can
 * tell the form, not the range, and the two must agree on the form). */
static gboolean
split_number(const char *value, guint64 *number, char **unit)
{
    const char *p = value;
    guint64 n = 0;
    gboolean digits = FALSE;

    while (g_ascii_isspace(*p))
        p++;
    for (; g_ascii_isdigit(*p); p++) {
        guint d = *p - '0';
        n = n > (G_MAXUINT64 - d) / 10 ? G_MAXUINT64 : n * 10 + d;
        digits = TRUE;
    }
    if (!digits)
        return FALSE;
    while (g_ascii_isspace(*p))
        p++;
    g_autofree char *u = g_strdup(p);
    g_strchomp(u);
    for (const char *q = u; *q; q++)
        if (!g_ascii_isalpha(*q))
            return FALSE;
    *number = n;
    *unit = g_steal_pointer(&u);
    return TRUE;
}

gboolean
ms_units_parse_size_kib(const char *value, const char *default_unit, guint64 *kib, GError **error)
{
    guint64 n, mult;
    g_autofree char *unit = NULL;

    if (value == NULL || strlen(value) > MS_UNITS_MAX_VALUE || !split_number(value, &n, &unit)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "not a size (expected e.g. '512MiB')");
        return FALSE;
    }
    const char *u = *unit ? unit : (default_unit ? default_unit : "KiB");
    if (!lookup_unit(size_units, G_N_ELEMENTS(size_units), u, &mult)) {
        g_autofree char *pu = ms_printable(u);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "unknown unit '%s' (expected b, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", pu);
        return FALSE;
    }
    /* 2^63 bytes is far beyond any host; the bound keeps every later
     * sum and KiB->bytes conversion free of overflow. */
    if (n != 0 && n > (G_GUINT64_CONSTANT(1) << 63) / mult) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "too large");
        return FALSE;
    }
    guint64 bytes = n * mult;
    *kib = bytes / 1024 + (bytes % 1024 ? 1 : 0);
    return TRUE;
}

gboolean
ms_units_parse_period_ms(const char *value, guint64 *ms, GError **error)
{
    guint64 n, mult;
    g_autofree char *unit = NULL;

    if (value == NULL || strlen(value) > MS_UNITS_MAX_VALUE || !split_number(value, &n, &unit)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "not a period (expected e.g. '5s' or '500ms')");
        return FALSE;
    }
    if (!lookup_unit(period_units, G_N_ELEMENTS(period_units), *unit ? unit : "s", &mult)) {
        g_autofree char *pu = ms_printable(unit);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "unknown unit '%s' (expected ms, s, m or h)", pu);
        return FALSE;
    }
    if (n > G_MAXUINT64 / mult / 2) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "too large");
        return FALSE;
    }
    *ms = n * mult;
    return TRUE;
}

