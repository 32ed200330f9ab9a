/* tests/balloon/alloc-check.c: recomputes, outside the agents, what the
 * allocation function gives from the inputs the agents published and the
 * host figures one of them recorded, so the qemu test can compare every
 * agent's target with the prediction.
 *   usage: alloc-check RUNTIME_DIR SAVED AVAILABLE RESERVE MAX_STEP HYSTERESIS
 *   prints: UUID IDEAL TARGET REASON   (bytes)
 * It runs the per-group allocation the agents run (ms_alloc_compute_grouped,
 * the same as ms_alloc_compute when every agent is in one group). */
#include "ms-alloc.h"
#include "ms-peers.h"

#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s RUNTIME_DIR SAVED AVAILABLE RESERVE MAX_STEP HYSTERESIS\n", argv[0]);
        return 2;
    }
    MsAllocMode mode;
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) d = ms_peers_read_inputs(argv[1], &mode, &error);
    if (d == NULL) {
        fprintf(stderr, "%s\n", error->message);
        return 1;
    }
    MsAllocHost host = { g_ascii_strtoull(argv[2], NULL, 10), g_ascii_strtoull(argv[3], NULL, 10),
                         g_ascii_strtoull(argv[4], NULL, 10) };
    MsAllocParams params = { mode, g_ascii_strtoull(argv[5], NULL, 10), g_ascii_strtoull(argv[6], NULL, 10) };
    g_autofree MsAllocResult *r = g_new0(MsAllocResult, d->len);
    ms_alloc_compute_grouped(&host, &params, (MsAllocDomain *)(void *)d->data, d->len, r);
    for (guint i = 0; i < d->len; i++)
        printf("%s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %s\n", g_array_index(d, MsAllocDomain, i).uuid,
               r[i].ideal, r[i].target, ms_alloc_reason_name(r[i].reason));
    return 0;
}
