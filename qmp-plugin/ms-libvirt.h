/* qmp-plugin/ms-libvirt.h: the agent's side of libvirt, the one place it
 * talks to libvirtd outside the QMP pass-through (ms-qmp-libvirt.c): the
 * live-metadata stats element, and (ms-libvirt.c) the connection, its
 * events and the reconnect when libvirtd restarts. */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "ms-export.h"

G_BEGIN_DECLS

/* ---- the connection ---- */

/* What the connection tells its owner (the agent, ms-agent.c). Every call
 * comes from the owner's main context, never from libvirt's event thread. */
typedef struct {
    /* libvirt reports the domain stopped */
    void (*stopped)(gpointer user_data);
    /* a metadata change in the policy namespace (MS_POLICY_NAMESPACE) */
    void (*policy_changed)(gpointer user_data);
    /* the connection is lost (or a reconnect attempt failed): drop what
     * used it (the QMP client over libvirt) */
    void (*disconnected)(gpointer user_data);
    /* connected again: re-attach what uses the connection; FALSE retries
     * at the next attempt, and MS_ERROR_NOT_FOUND gives up at once */
    gboolean (*reconnected)(gpointer user_data, GError **error);
    /* no way back: the domain is gone (status 0) or libvirtd stayed away
     * longer than the reconnect timeout (status 1); why says which */
    void (*give_up)(gpointer user_data, int status, const char *why);
} MsLibvirtCallbacks;

typedef struct _MsLibvirt MsLibvirt;

/* uri: libvirt URI; origin: where it came from, for messages ("the
 * default", "[agent] connect"); uuid: the domain. Nothing is opened yet. */
MsLibvirt *ms_libvirt_new(GMainContext *context, const char *uri, const char *origin,
                          const char *uuid, guint reconnect_timeout_s,
                          const MsLibvirtCallbacks *callbacks, gpointer user_data);
void ms_libvirt_free(MsLibvirt *lv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsLibvirt, ms_libvirt_free)

/* Opens the connection, looks the domain up by UUID, watches the
 * connection and the domain's lifecycle and metadata events, and checks the
 * domain runs. MS_ERROR_NOT_FOUND: no such domain, or it is not running. A
 * lost connection is then retried every second (callbacks above). */
gboolean ms_libvirt_connect(MsLibvirt *lv, GError **error);

/* Whether the domain is still arriving by an incoming migration, read with
 * virDomainGetState, which takes no job. On the destination libvirt 9.0
 * holds the incoming migration's async job from Prepare to Finish with a
 * mask that admits no other job (qemuMigrationJobStart: VIR_JOB_NONE), so
 * every monitor command through the pass-through waits for it and fails
 * after libvirt's 30 s job timeout; meanwhile the domain is PAUSED with
 * reason MIGRATION (set before the `started` hook runs) or, in postcopy,
 * RUNNING with reason POSTCOPY. A restore from a save file looks the same
 * (PAUSED/MIGRATION until its start job resumes the CPUs). */
typedef enum {
    MS_LIBVIRT_INCOMING_ERROR = -1, /* cannot tell; error set */
    MS_LIBVIRT_INCOMING_NONE,       /* not (or no longer) arriving: attach */
    MS_LIBVIRT_INCOMING_RUNNING,    /* still arriving: libvirt refuses jobs */
    MS_LIBVIRT_INCOMING_GONE,       /* the domain is gone or shut off: the migration failed */
} MsLibvirtIncoming;
MsLibvirtIncoming ms_libvirt_incoming_state(MsLibvirt *lv, GError **error);

/* Whether the domain is migrating out of this host: an outgoing migration
 * is an async job through which the domain stays RUNNING, so the state
 * does not say it; virDomainGetJobStats (a query job, admitted beside it,
 * as `virsh domjobinfo` is) names the job's operation. FALSE when libvirt
 * cannot tell (the state check that follows sees a domain that is gone). */
gboolean ms_libvirt_migrating_out(MsLibvirt *lv);

/* NULL while disconnected. */
virConnectPtr ms_libvirt_get_connection(MsLibvirt *lv);
virDomainPtr ms_libvirt_get_domain(MsLibvirt *lv);

/* ---- the stats element ---- */

/* Sets the stats element (formats/ms-export.h, ms_export_stats_xml) as the
 * domain's live metadata (key MS_EXPORT_STATS_KEY, namespace
 * MS_EXPORT_STATS_NS, VIR_DOMAIN_AFFECT_LIVE: never the persistent
 * config). `virsh metadata DOMAIN MS_EXPORT_STATS_NS` shows it. The
 * METADATA_CHANGE event this raises carries the stats namespace, which the
 * agent's policy reload ignores. */
gboolean ms_libvirt_set_stats_metadata(virDomainPtr dom, const MsExportDomain *domain,
                                       gint64 unix_time, GError **error);

G_END_DECLS
