/* qmp-plugin/ms-tracking.c: the used-page tracking module of the agent.
 * Finds guest RAM in the QEMU process (ms-guestmem: query-memdev + the
 * process's maps, never a guess), classifies every guest page each period
 * (ms-pagemap: PAGEMAP_SCAN or pagemap reads) and reports the counts in the
 * status file's [tracking] group. On request (SIGUSR1 to the agent) it
 * writes the used-page bitmap to RUNTIME_DIR/usedmap (docs/usedmap.md). */
#include "ms-tracking.h"
#include "ms-status-keys.h"
#include "ms-error.h"
#include "ms-guestmem.h"
#include "ms-kcompat.h"
#include "ms-pagemap.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    MsPagemapScanner *scanner;
    MsGuestMemLayout layout;
    GPtrArray *blocks;
    gboolean window_open;
    gint64 window_started;
    guint64 ws_window_ms;
    MsQmpClient *qmp; /* for the disambiguation callback only */
} MsTracking;

static guint64
ms_tracking_period(const MsAgentEnv *env)
{
    if (env->policy == NULL || !env->policy->tracking.used_pages)
        return 0;
    return env->policy->tracking.period_ms ? env->policy->tracking.period_ms : 5000;
}

/* Two mappings of exactly the memdev's size: read the first 64 bytes of
 * guest RAM at the memdev's guest-physical address through the monitor
 * (HMP `xp`, the only read of guest memory QMP offers without a file) and
 * compare with each candidate's host memory. Pages that are all zero in
 * several candidates prove nothing: we then report that we cannot tell. */
static gint
ms_tracking_disambiguate(const MsGuestMemdev *memdev, guint64 ram_offset, GPtrArray *candidates,
                         gpointer user_data, GError **error)
{
    const MsAgentEnv *env = user_data;
    (void)memdev;
    guint64 gpa = ram_offset;
    /* RAM offset 0 is guest-physical 0 on every layout we support; deeper
     * offsets map 1:1 below 4 GiB, which covers the first page we read. */
    guint8 guest[64] = { 0 };
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "command-line");
    g_autofree char *cmd = g_strdup_printf("xp /8gx 0x%" PRIx64, gpa + 0x1000);
    json_builder_add_string_value(b, cmd);
    json_builder_end_object(b);
    g_autoptr(JsonNode) args = json_builder_get_root(b);
    g_autoptr(JsonNode) ret = ms_qmp_client_execute(env->qmp, "human-monitor-command",
                                                    json_node_get_object(args), error);
    if (ret == NULL || !JSON_NODE_HOLDS_VALUE(ret))
        return -1;
    const char *text = json_node_get_string(ret);
    /* "0000000000001000: 0x0123456789abcdef 0x..." (two words per line) */
    int n = 0;
    for (const char *p = text; p && *p && n < 8;) {
        p = strstr(p, "0x");
        if (p == NULL)
            break;
        guint64 v = g_ascii_strtoull(p + 2, (char **)&p, 16);
        memcpy(guest + 8 * n++, &v, 8);
    }
    if (n != 8) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot parse HMP xp output");
        return -1;
    }
    gboolean all_zero = TRUE;
    for (int i = 0; i < 64; i++)
        all_zero &= guest[i] == 0;
    gint match = -1;
    for (guint i = 0; i < candidates->len; i++) {
        MsGuestMemCandidate *c = g_ptr_array_index(candidates, i);
        guint8 host[64];
        if (!ms_guestmem_read_host(env->qemu_pid, env->proc_root, c->start + gpa + 0x1000, host,
                                   sizeof(host), NULL))
            continue;
        if (memcmp(host, guest, sizeof(host)) == 0) {
            if (match >= 0 || all_zero) {
                g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                            "several mappings hold the same guest bytes");
                return -1;
            }
            match = (gint)i;
        }
    }
    if (match < 0)
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "no mapping holds the guest's bytes");
    return match;
}

static void
ms_tracking_free(gpointer p)
{
    MsTracking *t = p;
    if (t == NULL)
        return;
    g_clear_pointer(&t->scanner, ms_pagemap_scanner_free);
    g_clear_pointer(&t->blocks, g_ptr_array_unref);
    g_free(t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsTracking, ms_tracking_free)

static gpointer
ms_tracking_create(const MsAgentEnv *env, GError **error)
{
    if (env->qemu_pid <= 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "the QEMU pid is unknown");
        return NULL;
    }
    g_autoptr(JsonNode) memdev_ret = ms_qmp_client_execute(env->qmp, "query-memdev", NULL, error);
    if (memdev_ret == NULL)
        return NULL;
    g_autoptr(GPtrArray) memdevs = ms_guestmem_memdevs_from_json(memdev_ret, error);
    if (memdevs == NULL)
        return NULL;
    g_autoptr(GError) local = NULL;
    g_autoptr(JsonNode) devs = ms_qmp_client_execute(env->qmp, "query-memory-devices", NULL, &local);
    if (devs && !ms_guestmem_memdevs_drop_device_backed(memdevs, devs, error))
        return NULL;
    if (memdevs->len == 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_SUPPORTED,
                    "QEMU reports no RAM memdev (guest RAM not backed by a memory-backend object)");
        return NULL;
    }
    guint64 ram = 0;
    for (guint i = 0; i < memdevs->len; i++)
        ram += ((MsGuestMemdev *)g_ptr_array_index(memdevs, i))->size;

    g_autoptr(MsTracking) t = g_new0(MsTracking, 1);
    const char *machine = env->policy ? env->policy->domain.machine : NULL;
    if (!ms_guestmem_layout_init(&t->layout, ms_guestmem_machine_from_type(machine ? machine : "q35"),
                                 ram, 0, error))
        return NULL;
    t->blocks = ms_guestmem_discover(env->qemu_pid, memdevs, env->proc_root,
                                     ms_tracking_disambiguate, (gpointer)env, error);
    if (t->blocks == NULL)
        return NULL;
    /* AUTO even when MEMSHARE_HIDE hides PAGEMAP_SCAN: the scanner's probe
     * then fails as on 6.1 and it falls back to pread the same way. */
    MsPagemapOptions opts = { .method = MS_PAGEMAP_METHOD_AUTO, .proc_root = env->proc_root };
    if (ms_kcompat_required(MS_KCOMPAT_PAGEMAP_SCAN))
        opts.method = MS_PAGEMAP_METHOD_SCAN;
    t->scanner = ms_pagemap_scanner_new(env->qemu_pid, t->blocks, &t->layout, &opts, error);
    if (t->scanner == NULL)
        return NULL;
    for (guint i = 0; i < t->blocks->len; i++) {
        MsGuestMemBlock *bl = g_ptr_array_index(t->blocks, i);
        g_message("tracking: memdev '%s' (%s, %" G_GUINT64_FORMAT " MiB) at host 0x%" PRIx64
                  ", RAM offset 0x%" PRIx64 ", %s%s",
                  bl->memdev_id, ms_guestmem_backend_name(bl->backend), bl->size >> 20,
                  bl->host_start, bl->ram_offset,
                  ms_pagemap_method_name(ms_pagemap_scanner_get_method(t->scanner)),
                  ms_kcompat_hidden(MS_KCOMPAT_PAGEMAP_SCAN) ? " (PAGEMAP_SCAN hidden by MEMSHARE_HIDE)" : "");
    }
    if (env->policy->tracking.working_set) {
        t->ws_window_ms = env->policy->tracking.ws_window_ms ? env->policy->tracking.ws_window_ms : 30000;
        if (!ms_pagemap_soft_dirty_supported())
            g_warning("tracking: working-set estimate unavailable: this kernel has no soft-dirty bits");
    }
    return g_steal_pointer(&t);
}


static gboolean
ms_tracking_tick(gpointer self, const MsAgentEnv *env, GKeyFile *status, GError **error)
{
    MsTracking *t = self;
    MsPageCounts c;
    gint64 t0 = g_get_monotonic_time();
    if (!ms_pagemap_scanner_scan(t->scanner, &c, error))
        return FALSE;
    gint64 took = g_get_monotonic_time() - t0;
    guint64 used = c.pages[MS_PAGE_PRIVATE] + c.pages[MS_PAGE_KSM] + c.pages[MS_PAGE_SWAPPED];
    const char *g = MS_STATUS_TRACKING;
    g_key_file_set_string(status, g, MS_STATUS_TRACKING_METHOD, ms_pagemap_method_name(c.method));
    g_key_file_set_uint64(status, g, MS_STATUS_TRACKING_PAGE_SIZE, c.page_size);
    g_key_file_set_uint64(status, g, MS_STATUS_TRACKING_TOTAL, c.total_pages * c.page_size);
    g_key_file_set_uint64(status, g, MS_STATUS_TRACKING_USED, used * c.page_size);
    for (int k = 0; k < MS_PAGE_N_CLASSES; k++)
        g_key_file_set_uint64(status, g, ms_page_class_name(k), c.pages[k] * c.page_size);
    g_key_file_set_uint64(status, g, MS_STATUS_TRACKING_FREED_SINCE_LAST, c.freed_since_last * c.page_size);
    g_key_file_set_boolean(status, g, MS_STATUS_TRACKING_KPAGEFLAGS, c.kpageflags_known);
    g_key_file_set_uint64(status, g, MS_STATUS_TRACKING_SCAN_US, (guint64)took);

    if (t->ws_window_ms && ms_pagemap_soft_dirty_supported()) {
        gint64 now = g_get_monotonic_time();
        if (t->window_open && c.soft_dirty_valid)
            g_key_file_set_uint64(status, g, MS_STATUS_TRACKING_WORKING_SET, c.soft_dirty_pages * c.page_size);
        if (!t->window_open || now - t->window_started >= (gint64)t->ws_window_ms * 1000) {
            g_autoptr(GError) local = NULL;
            if (ms_pagemap_scanner_start_window(t->scanner, &local)) {
                t->window_open = TRUE;
                t->window_started = now;
            } else {
                g_debug("working set: %s", local->message);
            }
        }
    }
    return TRUE;
}

gboolean
ms_tracking_write_usedmap(gpointer self, const char *path, GError **error)
{
    MsTracking *t = self;
    MsPageCounts c;
    if (!ms_pagemap_scanner_scan(t->scanner, &c, error))
        return FALSE;
    return ms_pagemap_scanner_write_usedmap(t->scanner, path, error);
}

const MsAgentModule ms_tracking_module = {
    .name = MS_STATUS_TRACKING,
    .create = ms_tracking_create,
    .period_ms = ms_tracking_period,
    .tick = ms_tracking_tick,
    .stop = NULL,
    .free = ms_tracking_free,
};
