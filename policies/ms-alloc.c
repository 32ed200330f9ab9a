/* policies/ms-alloc.c: the pure balloon allocation (water-filling of the
 * KSM saving over the domains). See ms-alloc.h and docs/balloon.md. */
#include "ms-alloc.h"

#include <string.h>

static const char *const reason_names[] = {
    "share", "at-floor", "at-ceiling", "shortage", "stuck", "hysteresis",
    "step-limited",
};
static const char *const mode_names[] = { "equal", "weighted", "contribution" };

const char *
ms_alloc_reason_name(MsAllocReason r)
{
    return (guint)r < G_N_ELEMENTS(reason_names) ? reason_names[r] : "?";
}

const char *
ms_alloc_mode_name(MsAllocMode m)
{
    return (guint)m < G_N_ELEMENTS(mode_names) ? mode_names[m] : "?";
}

gboolean
ms_alloc_mode_from_string(const char *s, MsAllocMode *out)
{
    for (guint i = 0; i < G_N_ELEMENTS(mode_names); i++) {
        if (g_strcmp0(s, mode_names[i]) == 0) {
            *out = (MsAllocMode)i;
            return TRUE;
        }
    }
    return FALSE;
}

static guint64
sat_add(guint64 a, guint64 b)
{
    return a > G_MAXUINT64 - b ? G_MAXUINT64 : a + b;
}

guint64
ms_alloc_distributable(const MsAllocHost *host, const MsAllocDomain *d, gsize n)
{
    /* Memory already handed out above base is counted as available again:
     * the allocation is recomputed from scratch, and what we give back to
     * one domain may go to another. */
    guint64 handed = 0;
    for (gsize i = 0; i < n; i++)
        if (d[i].current_target > d[i].base)
            handed = sat_add(handed, d[i].current_target - d[i].base);
    guint64 avail = sat_add(host->mem_available_bytes, handed);
    guint64 room = avail > host->reserve_bytes ? avail - host->reserve_bytes : 0;
    return MIN(host->saved_bytes, room);
}

static int
cmp_index_by_uuid(gconstpointer a, gconstpointer b, gpointer user)
{
    const MsAllocDomain *d = user;
    const gsize *ia = a, *ib = b;
    int c = strcmp(d[*ia].uuid, d[*ib].uuid);
    if (c != 0)
        return c;
    return *ia < *ib ? -1 : *ia > *ib;
}

/* The lower bound: floor or working set, never above the ceiling. */
static guint64
dom_lo(const MsAllocDomain *d)
{
    return MIN(MAX(d->floor, d->working_set_floor), d->ceiling);
}

static guint64
dom_key(const MsAllocDomain *d, MsAllocMode mode)
{
    switch (mode) {
    case MS_ALLOC_WEIGHTED: return d->weight;
    case MS_ALLOC_CONTRIBUTION: return d->contribution_bytes;
    default: return 1;
    }
}

/* The allocation of one pool over domains (one group, or all of them). */
static void
compute_with_pool(gboolean shortage, guint64 pool, const MsAllocParams *params,
                  const MsAllocDomain *domains, gsize n, MsAllocResult *results)
{
    if (n == 0)
        return;
    g_autofree gsize *order = g_new(gsize, n);
    g_autofree gboolean *fixed = g_new0(gboolean, n);
    for (gsize i = 0; i < n; i++)
        order[i] = i;
    g_qsort_with_data(order, n, sizeof(gsize), cmp_index_by_uuid, (gpointer)domains);

    /* Stuck domains keep what they have; their excess over base is spent. */
    for (gsize k = 0; k < n; k++) {
        gsize i = order[k];
        const MsAllocDomain *d = &domains[i];
        if (!d->stuck)
            continue;
        fixed[i] = TRUE;
        results[i].ideal = results[i].target = d->current_target;
        results[i].reason = MS_ALLOC_REASON_STUCK;
        if (d->current_target > d->base) {
            guint64 e = d->current_target - d->base;
            pool = pool > e ? pool - e : 0;
        }
    }
    /* A lower bound above base is a requirement, not a share: pay it first. */
    for (gsize k = 0; k < n; k++) {
        gsize i = order[k];
        const MsAllocDomain *d = &domains[i];
        guint64 lo = dom_lo(d);
        if (fixed[i] || lo <= d->base)
            continue;
        guint64 e = lo - d->base;
        pool = pool > e ? pool - e : 0;
    }

    MsAllocMode mode = params->mode;
    if (mode == MS_ALLOC_CONTRIBUTION) {
        guint64 sum = 0;
        for (gsize i = 0; i < n; i++)
            if (!fixed[i])
                sum = sat_add(sum, domains[i].contribution_bytes);
        if (sum == 0)
            mode = MS_ALLOC_EQUAL;
    } else if (mode == MS_ALLOC_WEIGHTED) {
        guint64 sum = 0;
        for (gsize i = 0; i < n; i++)
            if (!fixed[i])
                sum = sat_add(sum, domains[i].weight);
        if (sum == 0)
            mode = MS_ALLOC_EQUAL;
    }

    /* Water-filling: a domain whose share would take it past its ceiling
     * is pinned there and the rest is shared again among the others.
     * "extra" is the amount above max(base, lo) a domain gets. */
    for (;;) {
        unsigned __int128 sumk = 0;
        for (gsize i = 0; i < n; i++)
            if (!fixed[i])
                sumk += dom_key(&domains[i], mode);
        if (sumk == 0)
            break;
        gboolean changed = FALSE;
        for (gsize k = 0; k < n; k++) {
            gsize i = order[k];
            const MsAllocDomain *d = &domains[i];
            if (fixed[i])
                continue;
            guint64 start = MAX(d->base, dom_lo(d));
            guint64 share = (guint64)((unsigned __int128)pool * dom_key(d, mode) / sumk);
            if (start >= d->ceiling || sat_add(start, share) >= d->ceiling) {
                guint64 hi = MAX(d->ceiling, dom_lo(d));
                fixed[i] = TRUE;
                results[i].ideal = d->ceiling < start ? MIN(start, hi) : d->ceiling;
                results[i].ideal = MIN(results[i].ideal, d->ceiling);
                results[i].ideal = MAX(results[i].ideal, dom_lo(d));
                results[i].reason = MS_ALLOC_REASON_AT_CEILING;
                guint64 used = d->ceiling > start ? d->ceiling - start : 0;
                pool = pool > used ? pool - used : 0;
                changed = TRUE;
                break; /* recompute shares with the smaller set */
            }
        }
        if (changed)
            continue;
        for (gsize k = 0; k < n; k++) {
            gsize i = order[k];
            const MsAllocDomain *d = &domains[i];
            if (fixed[i])
                continue;
            guint64 start = MAX(d->base, dom_lo(d));
            guint64 share = (guint64)((unsigned __int128)pool * dom_key(d, mode) / sumk);
            results[i].ideal = start + share;
            results[i].reason = share == 0 && dom_lo(d) > d->base
                ? MS_ALLOC_REASON_AT_FLOOR : MS_ALLOC_REASON_SHARE;
        }
        break;
    }
    for (gsize i = 0; i < n; i++) {
        if (!fixed[i] && dom_key(&domains[i], mode) == 0) {
            /* zero weight: gets no share */
            const MsAllocDomain *d = &domains[i];
            results[i].ideal = MIN(MAX(d->base, dom_lo(d)), MAX(d->ceiling, dom_lo(d)));
            results[i].reason = dom_lo(d) > d->base ? MS_ALLOC_REASON_AT_FLOOR
                                                    : MS_ALLOC_REASON_SHARE;
        }
    }

    /* Smoothing and safety, per domain. */
    for (gsize i = 0; i < n; i++) {
        const MsAllocDomain *d = &domains[i];
        MsAllocResult *r = &results[i];
        if (d->stuck)
            continue;
        guint64 lo = dom_lo(d), cur = d->current_target, t = r->ideal;
        if (shortage && t > cur) {
            /* Grow nobody while the host is short, except up to the floor. */
            t = MAX(cur, lo);
            t = MIN(t, r->ideal);
            r->reason = MS_ALLOC_REASON_SHORTAGE;
        }
        gboolean cur_in_bounds = cur >= lo && cur <= d->ceiling;
        guint64 diff = t > cur ? t - cur : cur - t;
        if (cur_in_bounds && diff != 0 && diff < params->hysteresis) {
            t = cur;
            r->reason = MS_ALLOC_REASON_HYSTERESIS;
        } else if (cur_in_bounds && params->max_step != 0 && diff > params->max_step) {
            t = t > cur ? cur + params->max_step : cur - params->max_step;
            r->reason = MS_ALLOC_REASON_STEP_LIMITED;
        }
        /* Floors and ceilings win over smoothing. */
        t = MAX(t, lo);
        t = MIN(t, MAX(d->ceiling, lo));
        r->target = t;
    }
}

void
ms_alloc_compute(const MsAllocHost *host, const MsAllocParams *params,
                 const MsAllocDomain *domains, gsize n, MsAllocResult *results)
{
    compute_with_pool(host->mem_available_bytes < host->reserve_bytes,
                      ms_alloc_distributable(host, domains, n), params, domains, n, results);
}

/* ---- sharing groups ---- */

const char *
ms_alloc_domain_group(const MsAllocDomain *d, char buf[MS_SHARING_GROUP_MAX + 1])
{
    if (d->group[0] != '\0')
        return d->group;
    g_autofree char *lower = g_ascii_strdown(d->uuid, -1);
    g_snprintf(buf, MS_SHARING_GROUP_MAX + 1, "domain:%s", lower);
    return buf;
}

static int
cmp_group(gconstpointer a, gconstpointer b)
{
    return strcmp(((const MsAllocGroup *)a)->group, ((const MsAllocGroup *)b)->group);
}

static gint
find_group(const GArray *groups, const char *name)
{
    for (guint i = 0; i < groups->len; i++)
        if (strcmp(g_array_index(groups, MsAllocGroup, i).group, name) == 0)
            return (gint)i;
    return -1;
}

GArray *
ms_alloc_groups(const MsAllocHost *host, const MsAllocDomain *d, gsize n)
{
    GArray *groups = g_array_new(FALSE, TRUE, sizeof(MsAllocGroup));
    guint64 total = 0;
    for (gsize i = 0; i < n; i++) {
        char buf[MS_SHARING_GROUP_MAX + 1];
        const char *name = ms_alloc_domain_group(&d[i], buf);
        gint gi = find_group(groups, name);
        if (gi < 0) {
            MsAllocGroup g = { 0 };
            g_strlcpy(g.group, name, sizeof g.group);
            g_array_append_val(groups, g);
            gi = (gint)groups->len - 1;
        }
        MsAllocGroup *g = &g_array_index(groups, MsAllocGroup, gi);
        g->members++;
        g->contribution_bytes = sat_add(g->contribution_bytes, d[i].contribution_bytes);
        total = sat_add(total, d[i].contribution_bytes);
    }
    g_array_sort(groups, cmp_group);
    if (groups->len == 1) {
        /* One group is the whole host: nothing to attribute. */
        MsAllocGroup *g = &g_array_index(groups, MsAllocGroup, 0);
        g->saved_bytes = host->saved_bytes;
        g->pool_bytes = ms_alloc_distributable(host, d, n);
        return groups;
    }
    /* The host's room, as ms_alloc_distributable computes it before the
     * min with the saving. */
    MsAllocHost unlimited = *host;
    unlimited.saved_bytes = G_MAXUINT64;
    guint64 room = ms_alloc_distributable(&unlimited, d, n);
    unsigned __int128 sum_saved = 0;
    for (guint i = 0; i < groups->len; i++) {
        MsAllocGroup *g = &g_array_index(groups, MsAllocGroup, i);
        /* No member merges anything measurable: nothing is attributable
         * to anybody, so nobody gets a share (rather than a guess). */
        if (total == 0)
            continue;
        /* KSM merges host-wide: the host saving is attributed by the
         * members' own merging, and a group never gets more than its
         * members merge (others, outside memshare, may merge too). */
        guint64 part = (guint64)((unsigned __int128)host->saved_bytes * g->contribution_bytes / total);
        g->saved_bytes = MIN(part, g->contribution_bytes);
        sum_saved += g->saved_bytes;
    }
    for (guint i = 0; i < groups->len; i++) {
        MsAllocGroup *g = &g_array_index(groups, MsAllocGroup, i);
        g->pool_bytes = sum_saved <= room ? g->saved_bytes
                                          : (guint64)((unsigned __int128)room * g->saved_bytes / sum_saved);
    }
    return groups;
}

void
ms_alloc_compute_grouped(const MsAllocHost *host, const MsAllocParams *params,
                         const MsAllocDomain *domains, gsize n, MsAllocResult *results)
{
    if (n == 0)
        return;
    g_autoptr(GArray) groups = ms_alloc_groups(host, domains, n);
    gboolean shortage = host->mem_available_bytes < host->reserve_bytes;
    g_autofree MsAllocDomain *sub = g_new(MsAllocDomain, n);
    g_autofree MsAllocResult *subr = g_new0(MsAllocResult, n);
    g_autofree gsize *idx = g_new(gsize, n);
    for (guint gi = 0; gi < groups->len; gi++) {
        const MsAllocGroup *g = &g_array_index(groups, MsAllocGroup, gi);
        gsize m = 0;
        for (gsize i = 0; i < n; i++) {
            char buf[MS_SHARING_GROUP_MAX + 1];
            if (strcmp(ms_alloc_domain_group(&domains[i], buf), g->group) == 0) {
                idx[m] = i;
                sub[m++] = domains[i];
            }
        }
        compute_with_pool(shortage, g->pool_bytes, params, sub, m, subr);
        for (gsize k = 0; k < m; k++)
            results[idx[k]] = subr[k];
    }
}

/* ---- publication of inputs ---- */

/* ---- stuck detection ------------------------------------------------------ */

void
ms_alloc_stuck_init(MsAllocStuck *s, guint64 actual)
{
    *s = (MsAllocStuck){ .last_actual = actual };
}

MsAllocStuckChange
ms_alloc_stuck_update(MsAllocStuck *s, guint64 target, guint64 actual, gint64 now_us)
{
    MsAllocStuckChange change = MS_ALLOC_STUCK_SAME;
    gboolean off = actual > target + MS_ALLOC_STUCK_SLACK || actual + MS_ALLOC_STUCK_SLACK < target;
    if (off && actual == s->last_actual) {
        if (s->still_ticks++ == 0)
            s->still_since = now_us;
    } else {
        s->still_ticks = 0;
    }
    if (actual != s->last_actual && s->stuck) {
        s->stuck = FALSE;
        change = MS_ALLOC_STUCK_MOVING;
    }
    if (!s->stuck && s->still_ticks >= MS_ALLOC_STUCK_TICKS &&
        now_us - s->still_since >= MS_ALLOC_STUCK_US) {
        s->stuck = TRUE;
        change = MS_ALLOC_STUCK_BECAME;
    }
    s->last_actual = actual;
    return change;
}

#include "ms-error.h"
#include "ms-util.h"

char *
ms_alloc_input_to_keyfile(const MsAllocDomain *d, MsAllocMode mode)
{
    char buf[MS_SHARING_GROUP_MAX + 1];
    return g_strdup_printf("uuid=%s\nmode=%s\nweight=%" G_GUINT64_FORMAT
                           "\nbase=%" G_GUINT64_FORMAT "\nfloor=%" G_GUINT64_FORMAT
                           "\nceiling=%" G_GUINT64_FORMAT "\ncontribution=%" G_GUINT64_FORMAT
                           "\ncurrent=%" G_GUINT64_FORMAT "\nws_floor=%" G_GUINT64_FORMAT
                           "\nstuck=%d\ngroup=%s\n",
                           d->uuid, ms_alloc_mode_name(mode), d->weight, d->base,
                           d->floor, d->ceiling, d->contribution_bytes,
                           d->current_target, d->working_set_floor, d->stuck ? 1 : 0,
                           ms_alloc_domain_group(d, buf));
}

gboolean
ms_alloc_input_from_keyfile(const char *buf, gsize len, const char *what,
                            MsAllocDomain *out, MsAllocMode *mode_out,
                            GError **error)
{
    static const char *const keys[] = {
        "uuid", "mode", "weight", "base", "floor", "ceiling", "contribution",
        "current", "ws_floor", "stuck", "group",
    };
    /* keys[10] (group) may be missing; all the others are required */
    const guint n_required = 10;
    if (len > MS_ALLOC_INPUT_MAX) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                    "'%s': larger than %d bytes", what, MS_ALLOC_INPUT_MAX);
        return FALSE;
    }
    if (memchr(buf, '\0', len) != NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "'%s': contains a NUL byte", what);
        return FALSE;
    }
    g_autofree char *copy = g_strndup(buf, len);
    g_auto(GStrv) lines = g_strsplit(copy, "\n", -1);
    char *vals[G_N_ELEMENTS(keys)] = { 0 };
    for (guint i = 0; lines[i] != NULL; i++) {
        char *l = g_strstrip(lines[i]);
        if (*l == '\0')
            continue;
        char *eq = strchr(l, '=');
        if (eq == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "'%s': line '%s' is not key=value", what, l);
            return FALSE;
        }
        *eq = '\0';
        for (guint k = 0; k < G_N_ELEMENTS(keys); k++) {
            if (strcmp(l, keys[k]) != 0)
                continue;
            if (vals[k] != NULL) {
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "'%s': key '%s' appears twice", what, l);
                return FALSE;
            }
            vals[k] = eq + 1;
        }
    }
    for (guint k = 0; k < n_required; k++) {
        if (vals[k] == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "'%s': key '%s' is missing", what, keys[k]);
            return FALSE;
        }
    }
    MsAllocDomain d = { 0 };
    MsAllocMode mode;
    if (!ms_uuid_is_valid(vals[0])) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': '%s' is not a UUID", what, vals[0]);
        return FALSE;
    }
    g_strlcpy(d.uuid, vals[0], sizeof d.uuid);
    if (!ms_alloc_mode_from_string(vals[1], &mode)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': unknown division mode '%s'", what, vals[1]);
        return FALSE;
    }
    guint64 *nums[] = { &d.weight, &d.base, &d.floor, &d.ceiling,
                        &d.contribution_bytes, &d.current_target,
                        &d.working_set_floor };
    for (guint k = 0; k < G_N_ELEMENTS(nums); k++) {
        g_autofree char *w = g_strdup_printf("%s: %s", what, keys[k + 2]);
        if (!ms_parse_u64(vals[k + 2], w, nums[k], error))
            return FALSE;
    }
    if (strcmp(vals[9], "0") != 0 && strcmp(vals[9], "1") != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s': stuck '%s' is not 0 or 1", what, vals[9]);
        return FALSE;
    }
    d.stuck = vals[9][0] == '1';
    if (vals[10] != NULL) {
        if (!ms_sharing_group_is_valid(vals[10]) || strlen(vals[10]) > MS_SHARING_GROUP_MAX) {
            GString *pv = g_string_new(NULL);
            for (const char *q = vals[10]; *q && pv->len < 64; q++)
                g_string_append_c(pv, g_ascii_isprint(*q) ? *q : '?');
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "'%s': group '%s' is not a sharing group", what, pv->str);
            g_string_free(pv, TRUE);
            return FALSE;
        }
        g_strlcpy(d.group, vals[10], sizeof d.group);
    }
    *out = d;
    *mode_out = mode;
    return TRUE;
}
