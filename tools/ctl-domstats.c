/* tools/ctl-domstats.c: `memsharectl domstats` and `memsharectl usedmap
 * DOMAIN FILE`. Both read what the agents publish in
 * RUNSTATEDIR/memshare/domains/UUID/ and need no libvirt connection, so they
 * work while libvirtd restarts. domstats prints the layout of `virsh
 * domstats`: "Domain: 'name'" then "  memshare.GROUP.KEY=value"; which keys
 * exist and their units come from formats/ms-export.c's table, shared
 * with the Prometheus textfile and the live-metadata element
 * (docs/domstats.md). */
#include "ctl.h"
#include "ms-status-keys.h"
#include "ctl-status.h"
#include "ms-export.h"
#include "ms-util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A status file is a few KiB; anything far larger is not the agent's. */
#define MS_CTL_STATUS_MAX (256 * 1024)

void
ms_ctl_agent_free(MsCtlAgent *a)
{
    g_free(a->uuid);
    g_free(a->name);
    g_free(a->dir);
    g_free(a->error);
    if (a->status)
        g_key_file_unref(a->status);
    g_free(a);
}

static void
ms_ctl_agent_load(MsCtlAgent *a)
{
    g_autofree char *path = g_build_filename(a->dir, "status", NULL);
    g_autofree char *buf = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;
    if (!ms_file_read_bounded(path, MS_CTL_STATUS_MAX, &buf, &len, &error)) {
        a->error = g_strdup(error->message);
        return;
    }
    g_autoptr(GKeyFile) kf = g_key_file_new();
    if (!g_key_file_load_from_data(kf, buf, len, G_KEY_FILE_NONE, &error) ||
        !ms_export_validate(kf, &error)) {
        a->error = g_strdup_printf("'%s': %s", path, error->message);
        return;
    }
    g_autofree char *name = g_key_file_get_string(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_DOMAIN, NULL);
    if (name && *name) {
        g_free(a->name);
        a->name = g_steal_pointer(&name);
    }
    a->status = g_steal_pointer(&kf);
}

static gint
ms_ctl_agent_cmp(gconstpointer a, gconstpointer b)
{
    const MsCtlAgent *x = *(MsCtlAgent *const *)a, *y = *(MsCtlAgent *const *)b;
    int c = g_strcmp0(x->name, y->name);
    return c ? c : g_strcmp0(x->uuid, y->uuid);
}

/* Every domain with a runtime directory: live agents and the leftovers of
 * agents that died without cleaning up (state=stale). */
GPtrArray *
ms_ctl_list_agents(void)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)ms_ctl_agent_free);
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GDir) d = g_dir_open(root, 0, NULL);
    const char *e;
    while (d && (e = g_dir_read_name(d)) != NULL) {
        if (!ms_uuid_is_valid(e))
            continue;
        MsCtlAgent *a = g_new0(MsCtlAgent, 1);
        a->uuid = g_strdup(e);
        a->name = g_strdup(e);
        a->dir = g_build_filename(root, e, NULL);
        g_autofree char *pidf = g_build_filename(a->dir, "agent.pid", NULL);
        a->running = ms_pidfile_read_live(pidf) != 0;
        ms_ctl_agent_load(a);
        g_ptr_array_add(out, a);
    }
    g_ptr_array_sort(out, ms_ctl_agent_cmp);
    return out;
}

MsCtlAgent *
ms_ctl_agent_find(GPtrArray *agents, const char *which)
{
    for (guint i = 0; i < agents->len; i++) {
        MsCtlAgent *a = g_ptr_array_index(agents, i);
        if (g_ascii_strcasecmp(a->uuid, which) == 0)
            return a;
    }
    /* a name can be left behind by a dead agent and taken by a new domain:
     * the running one wins */
    MsCtlAgent *found = NULL;
    for (guint i = 0; i < agents->len; i++) {
        MsCtlAgent *a = g_ptr_array_index(agents, i);
        if (a->status && g_strcmp0(a->name, which) == 0 && (found == NULL || (a->running && !found->running)))
            found = a;
    }
    return found;
}

enum {
    MS_CTL_G_STATE = 1 << 0,
    MS_CTL_G_AGENT = 1 << 1,
    MS_CTL_G_USED = 1 << 2,
    MS_CTL_G_KSM = 1 << 3,
    MS_CTL_G_BALLOON = 1 << 4,
    MS_CTL_G_IMAGES = 1 << 5,
    MS_CTL_G_SHARING = 1 << 6,
    MS_CTL_G_ALL = (1 << 7) - 1,
};

static const struct {
    const char *option;
    guint bit;
    const char *group;       /* ms-export group */
    const char *raw[3];      /* status-file groups for --raw */
} ms_ctl_groups[] = {
    { "--state", MS_CTL_G_STATE, "state", { NULL } },
    { "--agent", MS_CTL_G_AGENT, "agent", { MS_STATUS_AGENT, MS_STATUS_QEMU, NULL } },
    { "--used", MS_CTL_G_USED, "tracking", { MS_STATUS_TRACKING, NULL } },
    { "--ksm", MS_CTL_G_KSM, "ksm", { MS_STATUS_KSM, MS_STATUS_KSMTUNE, NULL } },
    { "--balloon", MS_CTL_G_BALLOON, "balloon", { MS_STATUS_BALLOON, MS_STATUS_DOMAIN, NULL } },
    { "--images", MS_CTL_G_IMAGES, "images", { MS_STATUS_IMAGES, NULL } },
    { "--sharing", MS_CTL_G_SHARING, "sharing", { MS_STATUS_SHARING, NULL } },
};

static gboolean
ms_ctl_group_selected(guint groups, const char *name, gboolean raw)
{
    for (gsize i = 0; i < G_N_ELEMENTS(ms_ctl_groups); i++) {
        if (!(groups & ms_ctl_groups[i].bit))
            continue;
        if (!raw && g_str_equal(ms_ctl_groups[i].group, name))
            return TRUE;
        for (gsize r = 0; raw && ms_ctl_groups[i].raw[r]; r++)
            if (g_str_equal(ms_ctl_groups[i].raw[r], name))
                return TRUE;
    }
    /* --raw shows groups domstats does not know (newer agents) with all */
    return raw && groups == MS_CTL_G_ALL;
}

/* One line per key: a control character (an error message from QEMU with
 * a newline) would break the key=value layout, so it is escaped. */
static void
ms_ctl_print_kv(const char *key, const char *value)
{
    printf("  memshare.%s=", key);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", stdout);
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
    putchar('\n');
}

static void
ms_ctl_print_stats(MsCtlAgent *a, guint groups, gboolean raw)
{
    printf("Domain: '%s'\n", a->name);
    if (groups & MS_CTL_G_STATE) {
        ms_ctl_print_kv("state", a->running ? "running" : "stale");
        /* an agent whose policy was removed live idles: say so, as no
         * module figures follow (older agents write no [policy] group) */
        g_autofree char *policy = g_key_file_get_string(a->status, MS_STATUS_POLICY, MS_STATUS_POLICY_STATE, NULL);
        if (policy && !raw)
            ms_ctl_print_kv("policy", policy);
    }
    if (raw) {
        /* the status file as the agent wrote it: every key, its order */
        gsize ng = 0;
        g_auto(GStrv) names = g_key_file_get_groups(a->status, &ng);
        for (gsize g = 0; g < ng; g++) {
            if (!ms_ctl_group_selected(groups, names[g], TRUE))
                continue;
            g_auto(GStrv) keys = g_key_file_get_keys(a->status, names[g], NULL, NULL);
            for (gsize k = 0; keys && keys[k]; k++) {
                g_autofree char *v = g_key_file_get_value(a->status, names[g], keys[k], NULL);
                g_autofree char *full = g_strdup_printf("%s.%s", names[g], keys[k]);
                ms_ctl_print_kv(full, v ? v : "");
            }
        }
    } else {
        for (gsize i = 0; i < ms_export_n_fields; i++) {
            const MsExportField *f = &ms_export_fields[i];
            if (!ms_ctl_group_selected(groups, f->group, FALSE))
                continue;
            g_autofree char *v = NULL;
            /* validated when loaded */
            if (!ms_export_field_value(a->status, f, &v, NULL) || v == NULL)
                continue;
            g_autofree char *full = g_strdup_printf("%s.%s", f->group, f->key);
            ms_ctl_print_kv(full, v);
        }
    }
    printf("\n");
}

static void
ms_ctl_print_xml(MsCtlAgent *a)
{
    MsExportDomain d = { a->name, a->uuid, a->running, a->status };
    /* the agent's own publication time, so the output is reproducible */
    gint64 t = g_key_file_get_int64(a->status, MS_STATUS_AGENT, MS_STATUS_AGENT_UPDATED, NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *xml = ms_export_stats_xml(&d, t, &error);
    if (xml)
        printf("%s\n", xml);
}

/* full: --help's text; else the synopsis a usage error ends with */
static void
ms_ctl_domstats_usage(FILE *f, gboolean full)
{
    fprintf(f, "Usage: memsharectl domstats [--list-active] [--raw] [--state] [--agent] [--used]\n"
               "                            [--ksm] [--balloon] [--images] [--sharing]\n"
               "                            [--prometheus | --xml]\n"
               "                            [DOMAIN...]\n");
    if (!full)
        return;
    fprintf(f, "memshare figures of running domains (name or UUID; default all), in the\n"
               "layout of `virsh domstats`. Reads the agents' status files: needs no libvirt.\n"
               "  --state --agent --used --ksm --balloon --images --sharing  only these groups\n"
               "  --list-active  only domains whose agent runs\n"
               "  --raw          bytes and counts as the agent wrote them, no units\n"
               "  --prometheus   node_exporter text format\n"
               "  --xml          the stats element the agent puts in the live metadata\n"
               "Keys and units: docs/domstats.md.\n");
}

static int
ms_ctl_domstats(int argc, char **argv)
{
    guint groups = 0;
    gboolean list_active = FALSE, raw = FALSE, prometheus = FALSE, xml = FALSE;
    g_autoptr(GPtrArray) wanted = g_ptr_array_new();
    if (ms_ctl_wants_help(argc, argv)) {
        ms_ctl_domstats_usage(stdout, TRUE);
        return MS_CTL_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        gboolean known = FALSE;
        for (gsize g = 0; g < G_N_ELEMENTS(ms_ctl_groups); g++) {
            if (g_str_equal(o, ms_ctl_groups[g].option)) {
                groups |= ms_ctl_groups[g].bit;
                known = TRUE;
            }
        }
        if (known)
            continue;
        if (g_str_equal(o, "--list-active"))
            list_active = TRUE;
        else if (g_str_equal(o, "--raw"))
            raw = TRUE;
        else if (g_str_equal(o, "--prometheus"))
            prometheus = TRUE;
        else if (g_str_equal(o, "--xml"))
            xml = TRUE;
        else if (g_str_equal(o, "--"))
            for (i++; i < argc; i++)
                g_ptr_array_add(wanted, argv[i]);
        else if (o[0] == '-') {
            fprintf(stderr, "memsharectl: domstats: unknown option '%s'\n", o);
            ms_ctl_domstats_usage(stderr, FALSE);
            return MS_CTL_EXIT_USAGE;
        } else
            g_ptr_array_add(wanted, argv[i]);
    }
    if (prometheus && (xml || raw)) {
        fprintf(stderr, "memsharectl: domstats: --prometheus excludes --xml and --raw\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (xml && raw) {
        fprintf(stderr, "memsharectl: domstats: --xml excludes --raw\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (groups == 0)
        groups = MS_CTL_G_ALL;

    g_autoptr(GPtrArray) agents = ms_ctl_list_agents();

    int rc = MS_CTL_EXIT_OK;
    g_autoptr(GPtrArray) show = g_ptr_array_new();
    if (wanted->len) {
        for (guint i = 0; i < wanted->len; i++) {
            const char *w = g_ptr_array_index(wanted, i);
            MsCtlAgent *a = ms_ctl_agent_find(agents, w);
            if (a == NULL) {
                fprintf(stderr, "memsharectl: domstats: no memshare status for domain '%s'\n", w);
                if (rc == MS_CTL_EXIT_OK)
                    rc = MS_CTL_EXIT_NOT_FOUND;
                continue;
            }
            g_ptr_array_add(show, a);
        }
    } else {
        for (guint i = 0; i < agents->len; i++)
            g_ptr_array_add(show, g_ptr_array_index(agents, i));
    }

    g_autoptr(GArray) doms = g_array_new(FALSE, FALSE, sizeof(MsExportDomain));
    for (guint i = 0; i < show->len; i++) {
        MsCtlAgent *a = g_ptr_array_index(show, i);
        if (list_active && !a->running)
            continue;
        if (a->error) {
            /* one bad file costs its domain, never the others */
            fprintf(stderr, "memsharectl: domstats: domain %s: %s\n", a->uuid, a->error);
            rc = MS_CTL_EXIT_FAILURE;
            continue;
        }
        if (prometheus) {
            MsExportDomain d = { a->name, a->uuid, a->running, a->status };
            g_array_append_val(doms, d);
        } else if (xml) {
            ms_ctl_print_xml(a);
        } else {
            ms_ctl_print_stats(a, groups, raw);
        }
    }
    if (prometheus) {
        g_autoptr(GError) error = NULL;
        g_autofree char *text = ms_export_prometheus((MsExportDomain *)(void *)doms->data, doms->len, &error);
        if (text == NULL) {
            fprintf(stderr, "memsharectl: domstats: %s\n", error->message);
            return MS_CTL_EXIT_FAILURE;
        }
        fputs(text, stdout);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "memsharectl: domstats: cannot write the output: %s\n", g_strerror(errno));
        return MS_CTL_EXIT_FAILURE;
    }
    return rc;
}

static void
ms_ctl_usedmap_usage(FILE *f)
{
    fprintf(f, "Usage: memsharectl usedmap DOMAIN FILE\n"
               "Asks DOMAIN's agent (name or UUID) for a fresh used-page bitmap and writes\n"
               "it to FILE: one bit per guest page, set when the page is used (populated,\n"
               "not the zero page, not freed by the guest). Needs used-page tracking on in\n"
               "the domain's policy. The format is in docs/usedmap.md.\n");
}

static int
ms_ctl_usedmap(int argc, char **argv)
{
    if (ms_ctl_wants_help(argc, argv)) {
        ms_ctl_usedmap_usage(stdout);
        return MS_CTL_EXIT_OK;
    }
    /* DOMAIN FILE; "--" before them when a name starts with '-' */
    const char *args[2] = { NULL, NULL };
    int n = 0;
    gboolean operands = FALSE;
    for (int i = 1; i < argc; i++) {
        if (!operands && g_str_equal(argv[i], "--")) {
            operands = TRUE;
        } else if (!operands && argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "memsharectl: usedmap: unknown option '%s'\n", argv[i]);
            ms_ctl_usedmap_usage(stderr);
            return MS_CTL_EXIT_USAGE;
        } else if (n == 2) {
            fprintf(stderr, "memsharectl: usedmap: unexpected argument '%s'\n", argv[i]);
            ms_ctl_usedmap_usage(stderr);
            return MS_CTL_EXIT_USAGE;
        } else {
            args[n++] = argv[i];
        }
    }
    if (n != 2) {
        ms_ctl_usedmap_usage(stderr);
        return MS_CTL_EXIT_USAGE;
    }
    const char *domain = args[0], *file = args[1];
    g_autoptr(GPtrArray) agents = ms_ctl_list_agents();
    MsCtlAgent *a = ms_ctl_agent_find(agents, domain);
    if (a == NULL || !a->running) {
        fprintf(stderr, "memsharectl: usedmap: no memshare agent runs for domain '%s'\n", domain);
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
                !ms_file_write_atomic(file, data, len, 0644, &error)) {
                fprintf(stderr, "memsharectl: usedmap: %s\n", error->message);
                return MS_CTL_EXIT_FAILURE;
            }
            printf("used-page bitmap of '%s' written to %s (%" G_GSIZE_FORMAT " bytes)\n", a->name,
                   file, len);
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
