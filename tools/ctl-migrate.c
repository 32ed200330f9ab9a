/* tools/ctl-migrate.c: what memsharectl knows about a live migration before
 * it happens. `memsharectl migrate-estimate DOMAIN` turns the agent's page
 * classes (the [tracking] group of its status file) into what QEMU 7.2's
 * precopy will send: every used page in full, every other page as a
 * zero-page marker. ms_ctl_migrate_apply_hint() writes the virtio-balloon
 * free-page-hint that <memshare:migration free-page-hint='on'/> asks for
 * into a domain's persistent definition (called by `policy set`).
 * docs/migration.md says what the figures mean and where they are off. */
#include "ctl.h"
#include "ctl-status.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <string.h>

/* QEMU's RAM stream on x86 (migration/ram.c, 7.2): every target page, 4 KiB
 * whatever backs guest RAM, starts with an 8-byte offset|flags header; a
 * normal page is followed by its 4096 bytes, a zero page by one byte. (A
 * header that changes RAM block adds the block's name once: noise.) */
#define MS_MIG_TARGET_PAGE 4096
#define MS_MIG_HEADER 8

/* The classes as the agent publishes them (bytes), and what they become. */
typedef struct {
    guint64 total, private_, ksm, swapped, zero, unpopulated, freed;
    guint64 normal_pages;    /* private + ksm + swapped: sent in full */
    guint64 zero_pages;      /* zero + unpopulated + freed: a marker each */
    guint64 normal_bytes, transfer_bytes;
} MsMigEstimate;

/* Pure: the estimate from a status file's [tracking] group. FALSE with a
 * message when the group is missing or its classes do not add up. */
static gboolean
ms_ctl_migrate_compute(GKeyFile *status, MsMigEstimate *out, GError **error)
{
    MsMigEstimate e = { 0 };
    struct { const char *key; guint64 *v; } k[] = {
        { "total", &e.total }, { "private", &e.private_ }, { "ksm", &e.ksm },
        { "swapped", &e.swapped }, { "zero", &e.zero }, { "unpopulated", &e.unpopulated },
        { "freed", &e.freed },
    };
    if (!g_key_file_has_group(status, "tracking") || !g_key_file_has_key(status, "tracking", "total", NULL)) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                    "no used-page figures: tracking is off (<memshare:tracking used-pages='on'/>) "
                    "or has not scanned yet");
        return FALSE;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(k); i++) {
        g_autoptr(GError) local = NULL;
        *k[i].v = g_key_file_get_uint64(status, "tracking", k[i].key, &local);
        if (local && !g_error_matches(local, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND)) {
            g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "[tracking] %s: %s", k[i].key, local->message);
            return FALSE;
        }
    }
    /* the classes partition guest RAM; anything else is not a status an
     * agent wrote, and an estimate from it would be a guess */
    guint64 sum = e.private_ + e.ksm + e.swapped + e.zero + e.unpopulated + e.freed;
    if (sum != e.total || e.total % MS_MIG_TARGET_PAGE) {
        g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "[tracking]: the page classes (%" G_GUINT64_FORMAT " bytes) do not add up to "
                    "total=%" G_GUINT64_FORMAT " in whole pages", sum, e.total);
        return FALSE;
    }
    e.normal_pages = (e.private_ + e.ksm + e.swapped) / MS_MIG_TARGET_PAGE;
    e.zero_pages = (e.zero + e.unpopulated + e.freed) / MS_MIG_TARGET_PAGE;
    e.normal_bytes = e.normal_pages * MS_MIG_TARGET_PAGE;
    e.transfer_bytes = e.normal_pages * (MS_MIG_TARGET_PAGE + MS_MIG_HEADER) +
                       e.zero_pages * (MS_MIG_HEADER + 1);
    *out = e;
    return TRUE;
}

static void
ms_ctl_migrate_usage(FILE *f, gboolean full)
{
    fprintf(f, "Usage: memsharectl migrate-estimate DOMAIN\n");
    if (!full)
        return;
    fprintf(f, "What a live migration of DOMAIN (name or UUID) will send, from its agent's\n"
               "last used-page scan (needs <memshare:tracking used-pages='on'/>; no libvirt).\n"
               "QEMU's precopy sends every used page (private, ksm, swapped) in full and\n"
               "every other page (zero, unpopulated, freed) as a 9-byte marker; pages the\n"
               "guest writes during the migration are sent again, and with free-page-hint\n"
               "pages the guest reports free are not sent at all (docs/migration.md).\n"
               "Keys (bytes unless named -pages; pages of 4096 bytes, QEMU's x86 target page):\n"
               "  guest-ram, private, ksm, swapped, zero, unpopulated, freed  the classes\n"
               "  normal-pages   pages sent in full (QEMU: ram normal)\n"
               "  zero-pages     pages sent as markers (QEMU: ram duplicate)\n"
               "  normal-bytes   their data (QEMU: ram normal-bytes)\n"
               "  transfer-bytes what the RAM stream carries (QEMU: ram transferred)\n"
               "  sample-age     seconds since the agent published the scan\n");
}

int
ms_ctl_migrate_estimate(int argc, char **argv)
{
    if (ms_ctl_wants_help(argc, argv)) {
        ms_ctl_migrate_usage(stdout, TRUE);
        return MS_CTL_EXIT_OK;
    }
    int first = argc > 1 && g_str_equal(argv[1], "--") ? 2 : 1;
    if (argc - first != 1 || (first == 1 && argv[1][0] == '-')) {
        ms_ctl_migrate_usage(stderr, FALSE);
        return MS_CTL_EXIT_USAGE;
    }
    const char *which = argv[first];
    g_autoptr(GPtrArray) agents = ms_ctl_list_agents();
    MsCtlAgent *a = ms_ctl_agent_find(agents, which);
    if (a == NULL) {
        fprintf(stderr, "memsharectl: migrate-estimate: no memshare agent for domain '%s' on this host\n",
                which);
        return MS_CTL_EXIT_NOT_FOUND;
    }
    if (a->status == NULL) {
        fprintf(stderr, "memsharectl: migrate-estimate: domain '%s': %s\n", which, a->error);
        return MS_CTL_EXIT_FAILURE;
    }
    if (!a->running) {
        /* a dead agent's last scan says nothing about the guest now */
        fprintf(stderr, "memsharectl: migrate-estimate: domain '%s': its agent is not running "
                        "(the status in %s is stale)\n", which, a->dir);
        return MS_CTL_EXIT_FAILURE;
    }
    MsMigEstimate e;
    g_autoptr(GError) error = NULL;
    if (!ms_ctl_migrate_compute(a->status, &e, &error)) {
        fprintf(stderr, "memsharectl: migrate-estimate: domain '%s': %s\n", which, error->message);
        return MS_CTL_EXIT_FAILURE;
    }
    gint64 updated = g_key_file_get_int64(a->status, "agent", "updated", NULL);
    gint64 age = updated > 0 ? MAX(0, g_get_real_time() / G_USEC_PER_SEC - updated) : -1;

    printf("Domain: '%s'\n", a->name);
    struct { const char *key; guint64 v; } rows[] = {
        { "guest-ram", e.total }, { "private", e.private_ }, { "ksm", e.ksm },
        { "swapped", e.swapped }, { "zero", e.zero }, { "unpopulated", e.unpopulated },
        { "freed", e.freed }, { "normal-pages", e.normal_pages }, { "zero-pages", e.zero_pages },
        { "normal-bytes", e.normal_bytes }, { "transfer-bytes", e.transfer_bytes },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(rows); i++)
        printf("  memshare.migrate.%s=%" G_GUINT64_FORMAT "\n", rows[i].key, rows[i].v);
    if (age >= 0)
        printf("  memshare.migrate.sample-age=%" G_GINT64_FORMAT "\n", age);
    return MS_CTL_EXIT_OK;
}
