/* qmp-plugin/ms-balloon.c: the KSM balloon rebalancing module (see
 * ms-balloon.h and docs/balloon.md for the rules). Why QMP `balloon` and not
 * virDomainSetMemory: the agent already talks QMP to bare QEMU and to
 * libvirt's domains alike, and libvirt follows the balloon itself from
 * QEMU's BALLOON_CHANGE events (its live <currentMemory> and `virsh
 * dominfo` show what the guest really gave, not what was asked). */
#include "ms-balloon.h"
#include "ms-alloc.h"
#include "ms-error.h"
#include "ms-ksm.h"
#include "ms-peers.h"
#include "ms-util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A balloon that has not moved for this many periods while its target is
 * elsewhere is stuck (no driver in the guest, or a guest that refuses). */
#define MS_BALLOON_STUCK_TICKS 3
/* ...and for at least this long: a guest that is still booting loads its
 * balloon driver late (tens of seconds under TCG). */
#define MS_BALLOON_STUCK_US (30 * G_USEC_PER_SEC)
/* Within this of the target counts as there (the guest balloons in pages,
 * QEMU reports what it has). */
#define MS_BALLOON_SLACK (2ULL << 20)
#define MS_BALLOON_MIN_RESERVE (256ULL << 20)

typedef struct {
    guint64 page_size;
    guint64 target;          /* what we last asked for (bytes) */
    guint64 last_actual;
    guint still_ticks;       /* periods actual did not move while off target */
    gint64 still_since;      /* monotonic time of the first such period */
    gboolean stuck;
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
    g_autofree char *v = conf ? g_key_file_get_string(conf, "balloon", "host-reserve", NULL) : NULL;
    if (v) {
        guint64 kib;
        g_autoptr(GError) local = NULL;
        if (!ms_policy_parse_size_kib(v, "MiB", &kib, &local)) {
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
    g_autofree char *v = conf ? g_key_file_get_string(conf, "balloon", "host-reserve", NULL) : NULL;
    if (v) {
        b->reserve_cfg = ms_balloon_host_reserve(conf, 0, error);
        if (b->reserve_cfg == 0)
            return NULL;
    }
    return g_steal_pointer(&b);
}

/* MemTotal and MemAvailable, bytes. */
static gboolean
ms_balloon_meminfo(const char *proc_root, guint64 *total, guint64 *avail, GError **error)
{
    g_autofree char *path = g_build_filename(proc_root, "meminfo", NULL);
    g_autofree char *text = NULL;
    if (!ms_file_read_bounded(path, 64 * 1024, &text, NULL, error))
        return FALSE;
    gboolean t = FALSE, a = FALSE;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        guint64 v;
        if (!t && sscanf(line, "MemTotal: %" G_GUINT64_FORMAT " kB", &v) == 1)
            *total = v * 1024, t = TRUE;
        else if (!a && sscanf(line, "MemAvailable: %" G_GUINT64_FORMAT " kB", &v) == 1)
            *avail = v * 1024, a = TRUE;
        line = nl ? nl + 1 : NULL;
    }
    if (!t || !a) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: no MemTotal or MemAvailable", path);
        return FALSE;
    }
    return TRUE;
}

/* query-balloon's "actual", bytes. */
static gboolean
ms_balloon_query(const MsAgentEnv *env, guint64 *actual, GError **error)
{
    g_autoptr(JsonNode) r = ms_qmp_client_execute(env->qmp, "query-balloon", NULL, error);
    if (r == NULL)
        return FALSE;
    JsonObject *o = JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
    JsonNode *a = o ? json_object_get_member(o, "actual") : NULL;
    if (a == NULL || !JSON_NODE_HOLDS_VALUE(a) || json_node_get_value_type(a) != G_TYPE_INT64 ||
        json_node_get_int(a) <= 0) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL, "query-balloon: no positive 'actual'");
        return FALSE;
    }
    *actual = (guint64)json_node_get_int(a);
    return TRUE;
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

static gboolean
ms_balloon_tick(gpointer self, const MsAgentEnv *env, GKeyFile *status, GError **error)
{
    MsBalloon *b = self;
    const MsPolicy *p = env->policy;
    guint64 memory = p->domain.memory_kib * 1024;
    guint64 base = p->balloon.base_kib * 1024;
    guint64 floor_ = p->balloon.floor_kib * 1024;
    guint64 ceiling = MIN(p->balloon.ceiling_kib, p->domain.memory_kib) * 1024;

    guint64 actual = 0;
    if (!ms_balloon_query(env, &actual, error))
        return FALSE;
    if (!b->have_target) {
        /* start from where the balloon is: an agent that restarts (or a
         * second agent after a crash) must not jerk the guest around */
        b->target = actual;
        b->have_target = TRUE;
        b->last_actual = actual;
    }

    /* Stuck: off target by more than the slack and not moving. */
    gboolean off = actual > b->target + MS_BALLOON_SLACK || actual + MS_BALLOON_SLACK < b->target;
    gint64 now = g_get_monotonic_time();
    if (off && actual == b->last_actual) {
        if (b->still_ticks++ == 0)
            b->still_since = now;
    } else {
        b->still_ticks = 0;
    }
    if (actual != b->last_actual && b->stuck) {
        g_message("balloon: moving again (actual %" G_GUINT64_FORMAT " MiB)", mib(actual));
        b->stuck = FALSE;
    }
    if (!b->stuck && b->still_ticks >= MS_BALLOON_STUCK_TICKS && now - b->still_since >= MS_BALLOON_STUCK_US) {
        b->stuck = TRUE;
        g_warning("balloon stuck: asked for %" G_GUINT64_FORMAT " MiB, the guest stays at %" G_GUINT64_FORMAT
                  " MiB for %" G_GINT64_FORMAT " s (no balloon driver in the guest?); leaving it alone",
                  mib(b->target), mib(actual), (now - b->still_since) / G_USEC_PER_SEC);
    }
    b->last_actual = actual;

    /* Host and own KSM figures. A kernel without KSM saves nothing. */
    MsKsmHost host = { 0 };
    g_autoptr(GError) kerr = NULL;
    gint64 saved = 0;
    if (ms_ksm_read_host(env->sys_root, &host, &kerr))
        saved = MAX(0, ms_ksm_host_saved_bytes(&host, b->page_size));
    else if (!g_error_matches(kerr, MS_ERROR, MS_ERROR_NOT_SUPPORTED))
        g_debug("KSM: %s", kerr->message);
    MsKsmStat st = { 0 };
    gint64 contribution = 0;
    if (env->qemu_pid > 0 && ms_ksm_read_process(env->proc_root, env->qemu_pid, &st, NULL))
        contribution = ms_ksm_process_contribution(&st, b->page_size);
    guint64 total = 0, avail = 0;
    if (!ms_balloon_meminfo(env->proc_root, &total, &avail, error))
        return FALSE;
    guint64 reserve = b->reserve_cfg ? b->reserve_cfg : ms_balloon_host_reserve(NULL, total, NULL);

    /* Working-set floor from used-page tracking, when it runs. */
    guint64 ws = 0;
    if (g_key_file_has_key(status, "tracking", "working-set", NULL))
        ws = g_key_file_get_uint64(status, "tracking", "working-set", NULL);

    MsAllocMode mode = p->balloon.division == MS_DIVIDE_WEIGHTED ? MS_ALLOC_WEIGHTED
                       : p->balloon.division == MS_DIVIDE_CONTRIBUTION ? MS_ALLOC_CONTRIBUTION
                                                                        : MS_ALLOC_EQUAL;
    MsAllocDomain me = { 0 };
    g_strlcpy(me.uuid, env->uuid, sizeof(me.uuid));
    me.weight = p->balloon.division == MS_DIVIDE_WEIGHTED ? p->balloon.weight : 1;
    me.base = base;
    me.floor = floor_;
    me.ceiling = ceiling;
    me.contribution_bytes = (guint64)MAX(0, contribution);
    me.current_target = b->stuck ? actual : b->target;
    me.working_set_floor = ws;
    me.stuck = b->stuck;
    /* The sharing group the agent resolved ([sharing] group); without
     * one (unresolvable metadata) the domain is alone: "" means
     * domain:UUID to every reader. */
    g_autofree char *group = g_key_file_get_string(status, "sharing", "group", NULL);
    if (group && ms_sharing_group_is_valid(group) && strlen(group) <= MS_SHARING_GROUP_MAX)
        g_strlcpy(me.group, group, sizeof me.group);

    /* Publish, then read everybody (ourselves included) from the same
     * directory: every agent computes on the same snapshot. */
    g_autofree char *inputs = ms_alloc_input_to_keyfile(&me, mode);
    g_autofree char *ipath = g_build_filename(env->runtime_dir, "inputs", NULL);
    if (!ms_file_write_atomic(ipath, inputs, -1, 0644, error))
        return FALSE;
    g_autofree char *root = g_path_get_dirname(env->runtime_dir);   /* .../domains */
    g_autofree char *rtroot = g_path_get_dirname(root);               /* .../memshare */
    MsAllocMode peer_mode = mode;
    g_autoptr(GError) perr = NULL;
    g_autoptr(GArray) peers = ms_peers_read_inputs(rtroot, &peer_mode, &perr);
    if (peers == NULL) {
        g_debug("peers: %s", perr->message);
        peers = g_array_new(FALSE, TRUE, sizeof(MsAllocDomain));
    }
    gint self_idx = -1;
    for (guint i = 0; i < peers->len; i++)
        if (g_ascii_strcasecmp(g_array_index(peers, MsAllocDomain, i).uuid, me.uuid) == 0)
            self_idx = (gint)i;
    if (self_idx < 0) {
        g_array_append_val(peers, me);
        self_idx = (gint)peers->len - 1;
    } else {
        g_array_index(peers, MsAllocDomain, self_idx) = me;
    }

    MsAllocHost h = { (guint64)saved, avail, reserve };
    MsAllocParams params = { peer_mode, p->balloon.max_step_kib * 1024, p->balloon.hysteresis_kib * 1024 };
    g_autofree MsAllocResult *res = g_new0(MsAllocResult, peers->len);
    /* A group's KSM saving goes only to its members (docs/balloon.md,
     * "Sharing groups"); with one group this is ms_alloc_compute. */
    const MsAllocDomain *all = (const MsAllocDomain *)(void *)peers->data;
    ms_alloc_compute_grouped(&h, &params, all, peers->len, res);
    MsAllocResult mine = res[self_idx];
    guint64 pool = ms_alloc_distributable(&h, all, peers->len);
    g_autoptr(GArray) groups = ms_alloc_groups(&h, all, peers->len);
    char gbuf[MS_SHARING_GROUP_MAX + 1];
    const char *my_group = ms_alloc_domain_group(&me, gbuf);
    MsAllocGroup mg = { 0 };
    for (guint i = 0; i < groups->len; i++)
        if (strcmp(g_array_index(groups, MsAllocGroup, i).group, my_group) == 0)
            mg = g_array_index(groups, MsAllocGroup, i);

    if (!b->stuck && mine.target != b->target) {
        if (!ms_balloon_request(env, mine.target, error))
            return FALSE;
        g_message("balloon: target %" G_GUINT64_FORMAT " MiB (was %" G_GUINT64_FORMAT " MiB; %s, ideal %"
                  G_GUINT64_FORMAT " MiB; KSM saves %" G_GUINT64_FORMAT " MiB, pool %" G_GUINT64_FORMAT
                  " MiB, %u domain(s), mode %s; group %s: %u member(s), saves %" G_GUINT64_FORMAT
                  " MiB, pool %" G_GUINT64_FORMAT " MiB)", mib(mine.target), mib(b->target),
                  ms_alloc_reason_name(mine.reason), mib(mine.ideal), mib((guint64)saved), mib(pool),
                  peers->len, ms_alloc_mode_name(peer_mode), my_group, mg.members, mib(mg.saved_bytes),
                  mib(mg.pool_bytes));
        b->target = mine.target;
    }

    const char *divisions[] = { "equal", "weighted", "contribution" };
    g_key_file_set_string(status, "balloon", "mode", "ksm-share");
    g_key_file_set_string(status, "balloon", "division", divisions[p->balloon.division]);
    g_key_file_set_uint64(status, "balloon", "weight", me.weight);
    g_key_file_set_uint64(status, "balloon", "base", base);
    g_key_file_set_uint64(status, "balloon", "floor", floor_);
    g_key_file_set_uint64(status, "balloon", "ceiling", ceiling);
    g_key_file_set_uint64(status, "balloon", "memory", memory);
    g_key_file_set_uint64(status, "balloon", "target", b->target);
    g_key_file_set_uint64(status, "balloon", "actual", actual);
    g_key_file_set_uint64(status, "balloon", "ideal", mine.ideal);
    g_key_file_set_uint64(status, "balloon", "host-saved", (guint64)saved);
    g_key_file_set_uint64(status, "balloon", "host-available", avail);
    g_key_file_set_uint64(status, "balloon", "host-reserve", reserve);
    g_key_file_set_uint64(status, "balloon", "pool", pool);
    g_key_file_set_int64(status, "balloon", "contribution", contribution);
    g_key_file_set_uint64(status, "balloon", "share", b->target > base ? b->target - base : 0);
    g_key_file_set_boolean(status, "balloon", "stuck", b->stuck);
    g_key_file_set_uint64(status, "balloon", "peers", peers->len);
    g_key_file_set_string(status, "balloon", "reason", ms_alloc_reason_name(mine.reason));
    g_key_file_set_string(status, "balloon", "group", my_group);
    g_key_file_set_uint64(status, "balloon", "group-saved", mg.saved_bytes);
    g_key_file_set_uint64(status, "balloon", "group-pool", mg.pool_bytes);
    g_key_file_set_uint64(status, "balloon", "group-peers", mg.members);
    g_key_file_set_uint64(status, "balloon", "groups", groups->len);
    if (st.present & MS_KSM_STAT_PROCESS_PROFIT)
        g_key_file_set_int64(status, "ksm", "profit", st.process_profit);
    if (st.present & MS_KSM_STAT_MERGING_PAGES)
        g_key_file_set_uint64(status, "ksm", "merging-pages", st.merging_pages);
    return TRUE;
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
    if (env->policy == NULL || b->stuck || !b->have_target)
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
