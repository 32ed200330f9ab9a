/* tools/ctl.h: the command groups of memsharectl. Each group lives in its
 * own ctl-GROUP.c and gets argv starting at the group name (argv[0] ==
 * "policy"). Exit codes follow virsh/systemctl habits so scripts can rely on
 * them: */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

enum {
    MS_CTL_EXIT_OK = 0,
    MS_CTL_EXIT_FAILURE = 1,  /* the operation failed (runtime error) */
    MS_CTL_EXIT_USAGE = 2,    /* bad command line */
    MS_CTL_EXIT_INVALID = 3,  /* input is invalid (policy, image tree) */
    MS_CTL_EXIT_NOT_FOUND = 4,/* no such domain / image */
};

/* libvirt URI from -c/--connect, else $LIBVIRT_DEFAULT_URI, else NULL
 * (libvirt's default). */
const char *ms_ctl_connect_uri(void);

/* TRUE when -h or --help is among argv[1..argc-1] before a "--" (argv[0] is
 * the command's own name). Every command answers it, wherever it stands on
 * the line, with its own help on stdout and MS_CTL_EXIT_OK, before it looks
 * at anything else: `memsharectl policy set web1 --help` must not need
 * libvirt, a domain or a file. */
gboolean ms_ctl_wants_help(int argc, char **argv);

int ms_ctl_policy(int argc, char **argv);
int ms_ctl_image(int argc, char **argv);
/* image advise (tools/ctl-advise.c), dispatched by ms_ctl_image; argv[0] == "advise" */
int ms_ctl_image_advise(int argc, char **argv);
/* image prepare-guest (tools/ctl-prepare-guest.c); argv[0] == "prepare-guest" */
int ms_ctl_image_prepare_guest(int argc, char **argv);
/* domstats and usedmap (argv[0] says which) */
int ms_ctl_stats(int argc, char **argv);
int ms_ctl_plot(int argc, char **argv);
int ms_ctl_top(int argc, char **argv);
/* migrate-estimate (tools/ctl-migrate.c); argv[0] == "migrate-estimate" */
int ms_ctl_migrate_estimate(int argc, char **argv);

G_END_DECLS
