/* qmp-plugin/ms-balloon.c: the KSM balloon rebalancing module (see
 * ms-balloon.h and docs/balloon.md for the rules). A tick is three steps:
 * gather (QMP, /proc, /sys, the peers' published inputs: all the I/O in),
 * decide (pure: stuck detection and the allocation, policies/ms-alloc.c),
 * act (the one QMP `balloon`, the status figures). Why QMP `balloon` and not
 * virDomainSetMemory: the agent already talks QMP to bare QEMU and to
 * libvirt's domains alike, and libvirt follows the balloon itself from
 * QEMU's BALLOON_CHANGE events (its live <currentMemory> and `virsh
 * dominfo` show what the guest really gave, not what was asked). */
#include "ms-balloon.h"
#include "ms-alloc.h"
#include "ms-error.h"
#include "ms-balloon-size.h"
#include "ms-status-keys.h"
#include "ms-ksm.h"
#include "ms-meminfo.h"
#include "ms-peers.h"
#include "ms-units.h"
#include "ms-util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MS_BALLOON_MIN_RESERVE (256ULL << 20)

typedef struct {
    guint64 page_size;
    guint64 target;          /* what we last asked for (bytes) */
    MsAllocStuck motion;     /* stuck detection (policies/ms-alloc.h) */
    gboolean have_target;
    guint64 reserve_cfg;     /* 0: derive from MemTotal */
    char *last_decision;
} MsBalloon;

static void
ms_balloon_free(gpointer p)
{
    MsBalloon *b = p;
    if (b == NULL)
        return;
    g_free(b->last_decision);
    g_free(b);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsBalloon, ms_balloon_free)

static guint64
ms_balloon_period(const MsAgentEnv *env)
{
    if (env->policy == NULL || env->policy->balloon.mode != MS_BALLOON_KSM_SHARE)
        return 0;
    return env->policy->balloon.period_ms ? env->policy->balloon.period_ms : 5000;
}

guint64
ms_balloon_host_reserve(GKeyFile *conf, guint64 mem_total_bytes, GError **error)
{
    g_autofree char *v = conf ? g_key_file_get_string(conf, MS_STATUS_BALLOON, MS_STATUS_BALLOON_HOST_RESERVE, NULL) : NULL;
    if (v) {
        guint64 kib;
        g_autoptr(GError) local = NULL;
        if (!ms_units_parse_size_kib(v, "MiB", &kib, &local)) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: [balloon] host-reserve=%s: %s",
                        ms_config_path(), v, local->message);
            return 0;
        }
        return kib * 1024;
    }
    return MAX(MS_BALLOON_MIN_RESERVE, mem_total_bytes / 20);
}

static gpointer
ms_balloon_create(const MsAgentEnv *env, GError **error)
{
    if (!env->policy->domain.has_balloon) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_SUPPORTED, "the domain has no virtio balloon");
        return NULL;
    }
    g_autoptr(MsBalloon) b = g_new0(MsBalloon, 1);
    long ps = sysconf(_SC_PAGESIZE);
    b->page_size = ps > 0 ? (guint64)ps : 4096;
    g_autoptr(GKeyFile) conf = ms_config_load(NULL);
    g_autofree char *v = conf ? g_key_file_get_string(conf, MS_STATUS_BALLOON, MS_STATUS_BALLOON_HOST_RESERVE, NULL) : NULL;
    if (v) {
        b->reserve_cfg = ms_balloon_host_reserve(conf, 0, error);
        if (b->reserve_cfg == 0)
            return NULL;
    }
    return g_steal_pointer(&b);
}

static gboolean
ms_balloon_request(const MsAgentEnv *env, guint64 bytes, GError **error)
{
    g_autoptr(JsonBuilder) jb = json_builder_new();
    json_builder_begin_object(jb);
    json_builder_set_member_name(jb, "value");
    json_builder_add_int_value(jb, (gint64)bytes);
    json_builder_end_object(jb);
    g_autoptr(JsonNode) args = json_builder_get_root(jb);
    g_autoptr(JsonNode) r = ms_qmp_client_execute(env->qmp, "balloon", json_node_get_object(args), error);
    return r != NULL;
}

static guint64
mib(guint64 bytes)
{
    return bytes >> 20;
}

/* ---- gather ------------------------------------------------------------------ */

/* Everything a period reads, before any decision. */
typedef struct {
    guint64 actual;          /* the balloon, bytes (ms-balloon-size.c) */
    gint64 saved;            /* host KSM saving, >= 0 */
    MsKsmStat st;            /* this QEMU's ksm_stat */
    gint64 contribution;
    guint64 avail;           /* host MemAvailable, bytes */
    guint64 reserve;
    guint64 working_set;     /* [tracking] working-set, 0 = unknown */
    char group[MS_SHARING_GROUP_MAX + 1];
} MsBalloonGather;

static gboolean
ms_balloon_gather(MsBalloon *b, const MsAgentEnv *env, GKeyFile *status, MsBalloonGather *g,
                  GError **error)
{
    MsBalloonSize local = { 0 };
    MsBalloonSize *size = env->balloon ? env->balloon : &local;
    if (!ms_balloon_size_query(size, env->qmp, error))
        return FALSE;
    g->actual = size->actual;

    /* Host and own KSM figures. A kernel without KSM saves nothing. */
    MsKsmHost host = { 0 };
    g_autoptr(GError) kerr = NULL;
    if (ms_ksm_read_host(env->sys_root, &host, &kerr))
        g->saved = MAX(0, ms_ksm_host_saved_bytes(&host, b->page_size));
    else if (!g_error_matches(kerr, MS_ERROR, MS_ERROR_NOT_SUPPORTED))
        g_debug("KSM: %s", kerr->message);
    if (env->qemu_pid > 0 && ms_ksm_read_process(env->proc_root, env->qemu_pid, &g->st, NULL))
        g->contribution = ms_ksm_process_contribution(&g->st, b->page_size);
    MsMeminfo mi;
    if (!ms_meminfo_read(env->proc_root, &mi, error))
        return FALSE;
    g->avail = mi.available_kib * 1024;
    g->reserve = b->reserve_cfg ? b->reserve_cfg : ms_balloon_host_reserve(NULL, mi.total_kib * 1024, NULL);

    /* Working-set floor from used-page tracking, when it runs. */
    if (g_key_file_has_key(status, "tracking", "working-set", NULL))
        g->working_set = g_key_file_get_uint64(status, "tracking", "working-set", NULL);
    /* The sharing group the agent resolved ([sharing] group); without
     * one (unresolvable metadata) the domain is alone: "" means
     * domain:UUID to every reader. */
    g_autofree char *group = g_key_file_get_string(status, "sharing", "group", NULL);
    if (group && ms_sharing_group_is_valid(group) && strlen(group) <= MS_SHARING_GROUP_MAX)
        g_strlcpy(g->group, group, sizeof g->group);
    return TRUE;
}

/* Our inputs as the peers will read them. */
static MsAllocDomain
ms_balloon_self(const MsBalloon *b, const MsAgentEnv *env, const MsBalloonGather *g)
{
    const MsPolicy *p = env->policy;
    MsAllocDomain me = { 0 };
    g_strlcpy(me.uuid, env->uuid, sizeof(me.uuid));
    me.weight = p->balloon.division == MS_DIVIDE_WEIGHTED ? p->balloon.weight : 1;
    me.base = p->balloon.base_kib * 1024;
    me.floor = p->balloon.floor_kib * 1024;
    me.ceiling = MIN(p->balloon.ceiling_kib, p->domain.memory_kib) * 1024;
    me.contribution_bytes = (guint64)MAX(0, g->contribution);
    me.current_target = b->motion.stuck ? g->actual : b->target;
    me.working_set_floor = g->working_set;
    me.stuck = b->motion.stuck;
    g_strlcpy(me.group, g->group, sizeof me.group);
    return me;
}

static MsAllocMode
ms_balloon_mode(const MsPolicy *p)
{
    return p->balloon.division == MS_DIVIDE_WEIGHTED       ? MS_ALLOC_WEIGHTED
           : p->balloon.division == MS_DIVIDE_CONTRIBUTION ? MS_ALLOC_CONTRIBUTION
                                                           : MS_ALLOC_EQUAL;
}

/* Publish, then read everybody (ourselves included) from the same
 * directory: every agent computes on the same snapshot. Returns the
 * peers with me in them at *self_idx; the mode the peers agree on. */
static GArray *
ms_balloon_exchange(const MsAgentEnv *env, const MsAllocDomain *me, MsAllocMode *mode,
                    guint *self_idx, GError **error)
{
    g_autofree char *inputs = ms_alloc_input_to_keyfile(me, *mode);
    g_autofree char *ipath = g_build_filename(env->runtime_dir, "inputs", NULL);
    if (!ms_file_write_atomic(ipath, inputs, -1, 0644, error))
        return NULL;
    g_autofree char *root = g_path_get_dirname(env->runtime_dir);   /* .../domains */
    g_autofree char *rtroot = g_path_get_dirname(root);               /* .../memshare */
    g_autoptr(GError) perr = NULL;
    GArray *peers = ms_peers_read_inputs(rtroot, mode, &perr);
    if (peers == NULL) {
        g_debug("peers: %s", perr->message);
        peers = g_array_new(FALSE, TRUE, sizeof(MsAllocDomain));
    }
    gint found = -1;
    for (guint i = 0; i < peers->len; i++)
        if (g_ascii_strcasecmp(g_array_index(peers, MsAllocDomain, i).uuid, me->uuid) == 0)
            found = (gint)i;
    if (found < 0) {
        g_array_append_val(peers, *me);
        found = (gint)peers->len - 1;
    } else {
        g_array_index(peers, MsAllocDomain, found) = *me;
    }
    *self_idx = (guint)found;
    return peers;
}

/* ---- decide -------------------------------------------------------------------- */

typedef struct {
    MsAllocResult mine;
    guint64 pool;
    guint groups;
    MsAllocGroup group;      /* my group's figures */
    char group_name[MS_SHARING_GROUP_MAX + 1];
} MsBalloonDecision;

/* Pure: the allocation on one snapshot of the peers (me at self_idx). */
static void
ms_balloon_decide(const MsAllocHost *h, const MsAllocParams *params, const GArray *peers,
                  guint self_idx, MsBalloonDecision *d)
{
    const MsAllocDomain *all = (const MsAllocDomain *)(void *)peers->data;
    g_autofree MsAllocResult *res = g_new0(MsAllocResult, peers->len);
    /* A group's KSM saving goes only to its members (docs/balloon.md,
     * "Sharing groups"); with one group this is ms_alloc_compute. */
    ms_alloc_compute_grouped(h, params, all, peers->len, res);
    d->mine = res[self_idx];
    d->pool = ms_alloc_distributable(h, all, peers->len);
    g_autoptr(GArray) groups = ms_alloc_groups(h, all, peers->len);
    char gbuf[MS_SHARING_GROUP_MAX + 1];
    g_strlcpy(d->group_name, ms_alloc_domain_group(&all[self_idx], gbuf), sizeof d->group_name);
    d->groups = groups->len;
    d->group = (MsAllocGroup){ 0 };
    for (guint i = 0; i < groups->len; i++)
        if (strcmp(g_array_index(groups, MsAllocGroup, i).group, d->group_name) == 0)
            d->group = g_array_index(groups, MsAllocGroup, i);
}

/* ---- act ------------------------------------------------------------------------- */

static void
ms_balloon_publish(const MsBalloon *b, const MsAgentEnv *env, const MsBalloonGather *g,
                   const MsAllocDomain *me, const MsBalloonDecision *d, guint peers,
                   GKeyFile *status)
{
    const MsPolicy *p = env->policy;
    const char *divisions[] = { "equal", "weighted", "contribution" };
    g_key_file_set_string(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_MODE, "ksm-share");
    g_key_file_set_string(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_DIVISION, divisions[p->balloon.division]);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_WEIGHT, me->weight);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_BASE, me->base);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_FLOOR, me->floor);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_CEILING, me->ceiling);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_MEMORY, p->domain.memory_kib * 1024);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_TARGET, b->target);
    if (env->balloon)
        ms_balloon_size_publish(env->balloon, status);
    else
        g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_ACTUAL, g->actual);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_IDEAL, d->mine.ideal);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_HOST_SAVED, (guint64)g->saved);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_HOST_AVAILABLE, g->avail);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_HOST_RESERVE, g->reserve);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_POOL, d->pool);
    g_key_file_set_int64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_CONTRIBUTION, g->contribution);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_SHARE, b->target > me->base ? b->target - me->base : 0);
    g_key_file_set_boolean(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_STUCK, b->motion.stuck);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_PEERS, peers);
    g_key_file_set_string(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_REASON, ms_alloc_reason_name(d->mine.reason));
    g_key_file_set_string(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_GROUP, d->group_name);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_GROUP_SAVED, d->group.saved_bytes);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_GROUP_POOL, d->group.pool_bytes);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_GROUP_PEERS, d->group.members);
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_GROUPS, d->groups);
    if (g->st.present & MS_KSM_STAT_PROCESS_PROFIT)
        g_key_file_set_int64(status, "ksm", "profit", g->st.process_profit);
    if (g->st.present & MS_KSM_STAT_MERGING_PAGES)
        g_key_file_set_uint64(status, "ksm", "merging-pages", g->st.merging_pages);
}

gboolean
ms_balloon_tick_at(gpointer self, const MsAgentEnv *env, GKeyFile *status, gint64 now_us,
                   GError **error)
{
    MsBalloon *b = self;
    const MsPolicy *p = env->policy;

    MsBalloonGather g = { 0 };
    if (!ms_balloon_gather(b, env, status, &g, error))
        return FALSE;
    if (!b->have_target) {
        /* start from where the balloon is: an agent that restarts (or a
         * second agent after a crash) must not jerk the guest around */
        b->target = g.actual;
        b->have_target = TRUE;
        ms_alloc_stuck_init(&b->motion, g.actual);
    }

    switch (ms_alloc_stuck_update(&b->motion, b->target, g.actual, now_us)) {
    case MS_ALLOC_STUCK_MOVING:
        g_message("balloon: moving again (actual %" G_GUINT64_FORMAT " MiB)", mib(g.actual));
        break;
    case MS_ALLOC_STUCK_BECAME:
        g_warning("balloon stuck: asked for %" G_GUINT64_FORMAT " MiB, the guest stays at %" G_GUINT64_FORMAT
                  " MiB for %" G_GINT64_FORMAT " s (no balloon driver in the guest?); leaving it alone",
                  mib(b->target), mib(g.actual), (now_us - b->motion.still_since) / G_USEC_PER_SEC);
        break;
    case MS_ALLOC_STUCK_SAME:
        break;
    }

    MsAllocDomain me = ms_balloon_self(b, env, &g);
    MsAllocMode mode = ms_balloon_mode(p);
    guint self_idx = 0;
    g_autoptr(GArray) peers = ms_balloon_exchange(env, &me, &mode, &self_idx, error);
    if (peers == NULL)
        return FALSE;

    MsAllocHost h = { (guint64)g.saved, g.avail, g.reserve };
    MsAllocParams params = { mode, p->balloon.max_step_kib * 1024, p->balloon.hysteresis_kib * 1024 };
    MsBalloonDecision d;
    ms_balloon_decide(&h, &params, peers, self_idx, &d);

    if (!b->motion.stuck && d.mine.target != b->target) {
        if (!ms_balloon_request(env, d.mine.target, error))
            return FALSE;
        g_message("balloon: target %" G_GUINT64_FORMAT " MiB (was %" G_GUINT64_FORMAT " MiB; %s, ideal %"
                  G_GUINT64_FORMAT " MiB; KSM saves %" G_GUINT64_FORMAT " MiB, pool %" G_GUINT64_FORMAT
                  " MiB, %u domain(s), mode %s; group %s: %u member(s), saves %" G_GUINT64_FORMAT
                  " MiB, pool %" G_GUINT64_FORMAT " MiB)", mib(d.mine.target), mib(b->target),
                  ms_alloc_reason_name(d.mine.reason), mib(d.mine.ideal), mib((guint64)g.saved), mib(d.pool),
                  peers->len, ms_alloc_mode_name(mode), d.group_name, d.group.members,
                  mib(d.group.saved_bytes), mib(d.group.pool_bytes));
        b->target = d.mine.target;
    }
    ms_balloon_publish(b, env, &g, &me, &d, peers->len, status);
    return TRUE;
}

static gboolean
ms_balloon_tick(gpointer self, const MsAgentEnv *env, GKeyFile *status, GError **error)
{
    return ms_balloon_tick_at(self, env, status, g_get_monotonic_time(), error);
}

/* A clean stop (domain stopping, policy turned off, agent told to stop):
 * the balloon goes back to its base, and our inputs leave the shared
 * snapshot so the others re-divide at once. */
static void
ms_balloon_stop(gpointer self, const MsAgentEnv *env)
{
    MsBalloon *b = self;
    g_autofree char *ipath = g_build_filename(env->runtime_dir, "inputs", NULL);
    unlink(ipath);
    if (env->policy == NULL || b->motion.stuck || !b->have_target)
        return;
    guint64 base = env->policy->balloon.base_kib * 1024;
    if (b->target == base)
        return;
    g_autoptr(GError) error = NULL;
    if (ms_balloon_request(env, base, &error))
        g_message("balloon: back to its base, %" G_GUINT64_FORMAT " MiB", mib(base));
    else
        g_debug("balloon: cannot return to base: %s", error->message);
}

const MsAgentModule ms_balloon_module = {
    .name = "balloon",
    .create = ms_balloon_create,
    .period_ms = ms_balloon_period,
    .tick = ms_balloon_tick,
    .stop = ms_balloon_stop,
    .free = ms_balloon_free,
};
