/* tools/ctl-status.h: the agents' status files as memsharectl reads them
 * (tools/ctl-domstats.c), shared by `domstats`, `usedmap` and `top`
 * (tools/ctl-top.c). No libvirt: only RUNSTATEDIR/memshare/domains/. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    char *uuid;
    char *name;        /* [agent] domain, else the uuid */
    char *dir;
    char *error;       /* why the status cannot be used (names the file), or NULL */
    gboolean running;  /* agent.pid names a live process */
    GKeyFile *status;  /* NULL when error is set; validated against ms_export_fields */
} MsCtlAgent;

void ms_ctl_agent_free(MsCtlAgent *a);

/* Every domain with a runtime directory, sorted by name then uuid; a bad
 * status file gives an entry with error set, never a failure. */
GPtrArray *ms_ctl_list_agents(void);

/* The entry for a UUID, else the one with that domain name (a running
 * agent's before a stale one's); NULL when there is none. */
MsCtlAgent *ms_ctl_agent_find(GPtrArray *agents, const char *which);

/* `memsharectl top` (tools/ctl-top.c); argv[0] == "top" */
int ms_ctl_top(int argc, char **argv);

G_END_DECLS
