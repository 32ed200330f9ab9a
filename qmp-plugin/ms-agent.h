/* qmp-plugin/ms-agent.h: the per-domain agent. Owns the agent's lifecycle
 * (runtime directory and pid lock, libvirt connection and domain events, QMP
 * client, QEMU process watch, the periodic tick) and calls the feature
 * modules (used-page tracking, KSM rebalancing, images, stats) from it.
 * memshare-agent.c only parses the command line. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "ms-policy.h"

G_BEGIN_DECLS

typedef struct {
    char *uuid;          /* required: keys the runtime directory */
    char *name;          /* domain name, for messages (libvirt's wins) */
    char *connect_uri;   /* libvirt transport (default qemu:///system) */
    char *connect_origin;/* where connect_uri came from, for messages:
                          * "--connect", "[agent] connect= in FILE" */
    char *qmp_socket;    /* direct transport instead of libvirt */
    char *domain_xml;    /* direct transport: a domain XML file with the policy */
    pid_t qemu_pid;      /* 0: find it (libvirt pid file) */
    gboolean once;       /* connect, query, publish once, exit (diagnostics) */
    guint reconnect_timeout_s; /* how long libvirtd may be away (default 60) */
} MsAgentOptions;

typedef struct _MsAgent MsAgent;

MsAgent *ms_agent_new(const MsAgentOptions *options);
/* What ms_agent_start found when it returns TRUE. */
typedef enum {
    MS_AGENT_START_ATTACHED,       /* attached: ms_agent_run next */
    MS_AGENT_START_ALREADY_RUNNING, /* another agent holds the lock */
    MS_AGENT_START_NOTHING_TO_SERVE, /* the incoming migration it waited for
                                      * failed (the domain is gone), or a
                                      * signal came while waiting: exit 0 */
} MsAgentStartResult;

/* Takes the pid lock, connects, waits while the domain is still arriving by
 * an incoming migration, reads the policy, issues the first queries.
 * Returns FALSE with error when the agent cannot work at all; otherwise
 * TRUE and *result says what to do. */
gboolean ms_agent_start(MsAgent *agent, MsAgentStartResult *result, GError **error);
/* Runs the main loop until the domain stops, libvirtd is gone for good, or
 * SIGTERM/SIGINT. Returns the process exit status. */
int ms_agent_run(MsAgent *agent);
void ms_agent_free(MsAgent *agent);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsAgent, ms_agent_free)

G_END_DECLS
