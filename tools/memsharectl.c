/* tools/memsharectl.c: memsharectl(1), the user's command. Parses the global
 * options, dispatches to one command group (ctl-GROUP.c) and owns the help
 * conventions every command follows (-h, --help, `memsharectl help CMD`). */
#include "ms-config.h"
#include "ctl.h"
#include "ms-log.h"

#include <stdio.h>
#include <string.h>

static const char *ms_ctl_uri;

const char *
ms_ctl_connect_uri(void)
{
    if (ms_ctl_uri)
        return ms_ctl_uri;
    return g_getenv("LIBVIRT_DEFAULT_URI");
}

gboolean
ms_ctl_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (g_str_equal(argv[i], "--"))
            return FALSE; /* what follows are operands, whatever they look like */
        if (g_str_equal(argv[i], "-h") || g_str_equal(argv[i], "--help"))
            return TRUE;
    }
    return FALSE;
}

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} MsCtlGroup;

static const MsCtlGroup ms_ctl_groups[] = {
    { "policy", ms_ctl_policy, "validate, get, set or remove a domain's memshare policy" },
    { "domstats", ms_ctl_stats, "memshare figures of running domains, like virsh domstats" },
    { "usedmap", ms_ctl_stats, "write a domain's used-page bitmap to a file" },
    { "top", ms_ctl_top, "live view of every domain's figures, like virt-top" },
    { "plot", ms_ctl_plot, "draw a PNG/SVG timeline of running domains' figures" },
    { "migrate-estimate", ms_ctl_migrate_estimate, "what a live migration of a domain will send" },
    { "image", ms_ctl_image, "build, list, verify, remove and advise shared read-only images" },
};

static void
ms_ctl_usage(FILE *f)
{
    fprintf(f, "Usage: memsharectl [-c URI] [-v] COMMAND [ARGS...]\n"
               "       memsharectl help [COMMAND [SUBCOMMAND]]\n\nCommands:\n");
    for (gsize i = 0; i < G_N_ELEMENTS(ms_ctl_groups); i++)
        fprintf(f, "  %-16s %s\n", ms_ctl_groups[i].name, ms_ctl_groups[i].summary);
    fprintf(f, "\nEvery command takes -h or --help for its own help.\n"
               "\nOptions:\n  -c, --connect URI  libvirt URI (default: libvirt's)\n"
               "  -v, --verbose      debug messages\n  -h, --help         this help\n"
               "  --version          print the version\n"
               "\nExit status: 0 ok, 1 failure, 2 usage, 3 invalid input, 4 not found.\n");
}

int
main(int argc, char **argv)
{
    gboolean verbose = FALSE;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (g_str_equal(argv[i], "-c") || g_str_equal(argv[i], "--connect")) {
            if (++i >= argc) {
                fprintf(stderr, "memsharectl: %s needs a URI\n", argv[i - 1]);
                return MS_CTL_EXIT_USAGE;
            }
            ms_ctl_uri = argv[i];
        } else if (g_str_has_prefix(argv[i], "--connect=")) {
            ms_ctl_uri = argv[i] + strlen("--connect=");
        } else if (g_str_equal(argv[i], "-v") || g_str_equal(argv[i], "--verbose")) {
            verbose = TRUE;
        } else if (g_str_equal(argv[i], "--version")) {
            printf("memsharectl %s\n", MS_VERSION);
            return MS_CTL_EXIT_OK;
        } else if (g_str_equal(argv[i], "-h") || g_str_equal(argv[i], "--help")) {
            ms_ctl_usage(stdout);
            return MS_CTL_EXIT_OK;
        } else {
            fprintf(stderr, "memsharectl: unknown option '%s'\n", argv[i]);
            ms_ctl_usage(stderr);
            return MS_CTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        ms_ctl_usage(stderr);
        return MS_CTL_EXIT_USAGE;
    }
    ms_log_init("memsharectl", NULL, verbose);
    g_autofree char **help_argv = NULL;
    if (g_str_equal(argv[i], "help")) {
        /* `help CMD [SUB]` is `CMD [SUB] --help`, so each command has one
         * help text, not two that drift apart */
        if (i + 1 >= argc || g_str_equal(argv[i + 1], "help")) {
            ms_ctl_usage(stdout);
            return MS_CTL_EXIT_OK;
        }
        int n = argc - i - 1;
        help_argv = g_new0(char *, n + 2);
        for (int k = 0; k < n; k++)
            help_argv[k] = argv[i + 1 + k];
        help_argv[n] = (char *)"--help";
        argc = n + 1;
        argv = help_argv;
        i = 0;
    }
    for (gsize g = 0; g < G_N_ELEMENTS(ms_ctl_groups); g++) {
        if (g_str_equal(argv[i], ms_ctl_groups[g].name))
            return ms_ctl_groups[g].run(argc - i, argv + i);
    }
    fprintf(stderr, "memsharectl: unknown command '%s'\n", argv[i]);
    ms_ctl_usage(stderr);
    return MS_CTL_EXIT_USAGE;
}
