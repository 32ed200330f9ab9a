/* tools/ctl-domstats.c: `memsharectl domstats [--list-active] [DOMAIN...]`
 * and `memsharectl usedmap DOMAIN FILE`. Both read what the agents publish
 * in RUNSTATEDIR/memshare/domains/UUID/ and need no libvirt connection, so
 * they work while libvirtd restarts. domstats prints the layout of
 * `virsh domstats`: "Domain: 'name'" then "  memshare.GROUP.KEY=value";
 * sizes are bytes (docs/domstats.md). */
#include "ctl.h"
#include "ms-util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *uuid;
    char *name;
    char *dir;
    GKeyFile *status;
} MsCtlAgent;

static void
ms_ctl_agent_free(MsCtlAgent *a)
{
    g_free(a->uuid);
    g_free(a->name);
    g_free(a->dir);
    if (a->status)
        g_key_file_unref(a->status);
    g_free(a);
}

/* Every running agent, sorted by domain name (as virsh lists domains). */
static GPtrArray *
ms_ctl_list_agents(void)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)ms_ctl_agent_free);
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GDir) d = g_dir_open(root, 0, NULL);
    const char *e;
    while (d && (e = g_dir_read_name(d)) != NULL) {
        if (!ms_uuid_is_valid(e))
            continue;
        g_autofree char *dir = g_build_filename(root, e, NULL);
        g_autofree char *pidf = g_build_filename(dir, "agent.pid", NULL);
        g_autofree char *stf = g_build_filename(dir, "status", NULL);
        if (ms_pidfile_read_live(pidf) == 0)
            continue;
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *buf = NULL;
        gsize len = 0;
        if (!ms_file_read_bounded(stf, MS_SMALL_FILE_MAX, &buf, &len, NULL) ||
            !g_key_file_load_from_data(kf, buf, len, G_KEY_FILE_NONE, NULL))
            continue;
        MsCtlAgent *a = g_new0(MsCtlAgent, 1);
        a->uuid = g_strdup(e);
        a->name = g_key_file_get_string(kf, "agent", "domain", NULL);
        if (a->name == NULL)
            a->name = g_strdup(e);
        a->dir = g_steal_pointer(&dir);
        a->status = g_steal_pointer(&kf);
        g_ptr_array_add(out, a);
    }
    return out;
}

static gint
ms_ctl_agent_cmp(gconstpointer a, gconstpointer b)
{
    const MsCtlAgent *x = *(MsCtlAgent *const *)a, *y = *(MsCtlAgent *const *)b;
    return g_strcmp0(x->name, y->name);
}

static MsCtlAgent *
ms_ctl_find(GPtrArray *agents, const char *which)
{
    for (guint i = 0; i < agents->len; i++) {
        MsCtlAgent *a = g_ptr_array_index(agents, i);
        if (g_strcmp0(a->name, which) == 0 || g_ascii_strcasecmp(a->uuid, which) == 0)
            return a;
    }
    return NULL;
}

static void
ms_ctl_print_stats(MsCtlAgent *a)
{
    printf("Domain: '%s'\n", a->name);
    gsize ng = 0;
    g_auto(GStrv) groups = g_key_file_get_groups(a->status, &ng);
    for (gsize g = 0; g < ng; g++) {
        g_auto(GStrv) keys = g_key_file_get_keys(a->status, groups[g], NULL, NULL);
        for (gsize k = 0; keys && keys[k]; k++) {
            g_autofree char *v = g_key_file_get_value(a->status, groups[g], keys[k], NULL);
            printf("  memshare.%s.%s=%s\n", groups[g], keys[k], v ? v : "");
        }
    }
    printf("\n");
}

static int
ms_ctl_domstats(int argc, char **argv)
{
    g_autoptr(GPtrArray) agents = ms_ctl_list_agents();
    g_ptr_array_sort(agents, ms_ctl_agent_cmp);
    int rc = MS_CTL_EXIT_OK;
    gboolean any = FALSE;
    for (int i = 1; i < argc; i++) {
        if (g_str_equal(argv[i], "--list-active"))
            continue;
        if (argv[i][0] == '-') {
            fprintf(stderr, "memsharectl: domstats: unknown option '%s'\n", argv[i]);
            return MS_CTL_EXIT_USAGE;
        }
        any = TRUE;
        MsCtlAgent *a = ms_ctl_find(agents, argv[i]);
        if (a == NULL) {
            fprintf(stderr, "memsharectl: domstats: no memshare agent runs for domain '%s'\n", argv[i]);
            rc = MS_CTL_EXIT_NOT_FOUND;
            continue;
        }
        ms_ctl_print_stats(a);
    }
    if (!any)
        for (guint i = 0; i < agents->len; i++)
            ms_ctl_print_stats(g_ptr_array_index(agents, i));
    return rc;
}

static int
ms_ctl_usedmap(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: memsharectl usedmap DOMAIN FILE\n");
        return MS_CTL_EXIT_USAGE;
    }
    g_autoptr(GPtrArray) agents = ms_ctl_list_agents();
    MsCtlAgent *a = ms_ctl_find(agents, argv[1]);
    if (a == NULL) {
        fprintf(stderr, "memsharectl: usedmap: no memshare agent runs for domain '%s'\n", argv[1]);
        return MS_CTL_EXIT_NOT_FOUND;
    }
    g_autofree char *pidf = g_build_filename(a->dir, "agent.pid", NULL);
    g_autofree char *map = g_build_filename(a->dir, "usedmap", NULL);
    g_autofree char *err = g_build_filename(a->dir, "usedmap.error", NULL);
    pid_t pid = ms_pidfile_read_live(pidf);
    struct stat before = { 0 };
    gboolean had = stat(map, &before) == 0;
    unlink(err);
    if (pid <= 0 || kill(pid, SIGUSR1) < 0) {
        fprintf(stderr, "memsharectl: usedmap: cannot signal the agent of '%s': %s\n", a->name,
                g_strerror(errno));
        return MS_CTL_EXIT_FAILURE;
    }
    /* The agent replaces the file atomically: a new inode means a new map. */
    for (int i = 0; i < 300; i++) {
        struct stat now;
        if (g_file_test(err, G_FILE_TEST_EXISTS)) {
            g_autofree char *why = NULL;
            ms_file_read_bounded(err, 4096, &why, NULL, NULL);
            fprintf(stderr, "memsharectl: usedmap: domain '%s': %s", a->name, why ? why : "failed\n");
            return MS_CTL_EXIT_FAILURE;
        }
        if (stat(map, &now) == 0 && (!had || now.st_ino != before.st_ino)) {
            g_autofree char *data = NULL;
            gsize len = 0;
            g_autoptr(GError) error = NULL;
            if (!g_file_get_contents(map, &data, &len, &error) ||
                !ms_file_write_atomic(argv[2], data, len, 0644, &error)) {
                fprintf(stderr, "memsharectl: usedmap: %s\n", error->message);
                return MS_CTL_EXIT_FAILURE;
            }
            printf("used-page bitmap of '%s' written to %s (%" G_GSIZE_FORMAT " bytes)\n", a->name,
                   argv[2], len);
            return MS_CTL_EXIT_OK;
        }
        g_usleep(50 * 1000);
    }
    fprintf(stderr, "memsharectl: usedmap: the agent of '%s' did not answer in 15 s\n", a->name);
    return MS_CTL_EXIT_FAILURE;
}

int
ms_ctl_stats(int argc, char **argv)
{
    if (g_str_equal(argv[0], "usedmap"))
        return ms_ctl_usedmap(argc, argv);
    return ms_ctl_domstats(argc, argv);
}
