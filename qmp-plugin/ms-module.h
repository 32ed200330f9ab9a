/* qmp-plugin/ms-module.h: the contract between the agent (ms-agent.c) and
 * its feature modules (used-page tracking, KSM rebalancing, shared images).
 * The agent owns the lifecycle, the QMP client and the main loop; a module
 * owns one concern, is driven by the agent's ticks, and reports its figures
 * into the domain's status file (one GKeyFile group per module). Modules
 * never quit the agent: a failing module reports and the domain runs on. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "ms-balloon-size.h"
#include "ms-policy.h"
#include "ms-qmp.h"

G_BEGIN_DECLS

/* What a module may use. Valid for the module's whole life, except policy,
 * which the agent replaces on a metadata change (modules get
 * policy_changed() then). */
typedef struct {
    const char *uuid;        /* lowercase, validated */
    const char *name;        /* domain name, for messages */
    pid_t qemu_pid;          /* 0 if unknown */
    MsQmpClient *qmp;        /* may be replaced after a libvirtd restart */
    /* virDomainPtr when the agent talks through libvirt, NULL for a bare
     * QEMU. Modules use it where libvirt must know about a change (a disk
     * attached through libvirt stays in its live XML). */
    void *libvirt_domain;
    const MsPolicy *policy;
    const char *runtime_dir; /* RUNSTATEDIR/memshare/domains/UUID */
    const char *proc_root;   /* "/proc" (tests may point elsewhere) */
    const char *sys_root;    /* "/sys" */
    /* The balloon's actual size, owned by ms-balloon-size.c: the agent
     * feeds it BALLOON_CHANGE, whoever queries writes it there. */
    MsBalloonSize *balloon;
} MsAgentEnv;

typedef struct {
    const char *name;                                   /* "tracking", "balloon" */
    gpointer (*create)(const MsAgentEnv *env, GError **error);
    /* How often tick() wants to run, from the policy; 0 = module disabled. */
    guint64 (*period_ms)(const MsAgentEnv *env);
    /* Periodic work. Writes its figures into status (its own group). */
    gboolean (*tick)(gpointer self, const MsAgentEnv *env, GKeyFile *status, GError **error);
    /* Called at a clean stop: undo what must be undone (e.g. the balloon
     * returns to its base). */
    void (*stop)(gpointer self, const MsAgentEnv *env);
    void (*free)(gpointer self);
} MsAgentModule;

G_END_DECLS
