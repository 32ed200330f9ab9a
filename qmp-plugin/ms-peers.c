/* qmp-plugin/ms-peers.c: the directory side of agent agreement; parsing
 * lives in policies/ms-alloc.c. */
#include "ms-peers.h"

#include <string.h>

#include "ms-error.h"
#include "ms-util.h"

/* Bounds the work one hostile or runaway runtime directory can cause. */
#define MS_PEERS_MAX 4096

static int
cmp_domain(gconstpointer a, gconstpointer b)
{
    return strcmp(((const MsAllocDomain *)a)->uuid, ((const MsAllocDomain *)b)->uuid);
}

GArray *
ms_peers_read_inputs(const char *runtime_dir, MsAllocMode *mode_out, GError **error)
{
    g_autofree char *dir = g_build_filename(runtime_dir, "domains", NULL);
    g_autoptr(GArray) out = g_array_new(FALSE, TRUE, sizeof(MsAllocDomain));
    guint votes[3] = { 0 };

    g_autoptr(GError) local = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, &local);
    if (d == NULL) {
        if (!g_file_test(dir, G_FILE_TEST_EXISTS)) {
            *mode_out = MS_ALLOC_EQUAL;
            return g_steal_pointer(&out);
        }
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot read '%s': %s",
                    dir, local->message);
        return NULL;
    }
    const char *name;
    guint seen = 0;
    while ((name = g_dir_read_name(d)) != NULL) {
        if (!ms_uuid_is_valid(name))
            continue;
        if (++seen > MS_PEERS_MAX) {
            g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                        "'%s': more than %d domains", dir, MS_PEERS_MAX);
            return NULL;
        }
        g_autofree char *pidfile = g_build_filename(dir, name, "agent.pid", NULL);
        if (ms_pidfile_read_live(pidfile) <= 0) {
            g_debug("peer %s: no live agent, ignored", name);
            continue;
        }
        g_autofree char *path = g_build_filename(dir, name, "inputs", NULL);
        g_autofree char *buf = NULL;
        gsize len = 0;
        g_autoptr(GError) perr = NULL;
        MsAllocDomain dom;
        MsAllocMode mode;
        if (!ms_file_read_bounded(path, MS_ALLOC_INPUT_MAX, &buf, &len, &perr) ||
            !ms_alloc_input_from_keyfile(buf, len, path, &dom, &mode, &perr)) {
            g_debug("peer %s ignored: %s", name, perr->message);
            continue;
        }
        if (g_ascii_strcasecmp(dom.uuid, name) != 0) {
            g_debug("peer %s ignored: '%s' names uuid %s", name, path, dom.uuid);
            continue;
        }
        votes[mode]++;
        g_array_append_val(out, dom);
    }
    g_array_sort(out, cmp_domain);
    MsAllocMode best = MS_ALLOC_EQUAL;
    for (guint m = 1; m < 3; m++)
        if (votes[m] > votes[best])
            best = (MsAllocMode)m;
    *mode_out = best;
    return g_steal_pointer(&out);
}
