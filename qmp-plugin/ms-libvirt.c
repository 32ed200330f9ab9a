/* qmp-plugin/ms-libvirt.c: the agent's side of libvirt (see ms-libvirt.h):
 * the connection to libvirtd, the domain's events, and riding out a
 * libvirtd restart. libvirt calls back in its own event thread
 * (ms_qmp_libvirt_event_loop_start); everything here hops to the owner's
 * main context first, so the agent stays single-threaded. */
#include "ms-libvirt.h"
#include "ms-error.h"
#include "ms-policy.h"

#include <libvirt/virterror.h>

struct _MsLibvirt {
    GMainContext *context;
    char *uri;
    char *origin;
    char *uuid;
    guint reconnect_timeout_s;
    MsLibvirtCallbacks cb;
    gpointer user_data;

    virConnectPtr conn;
    virDomainPtr dom;
    int lifecycle_cb;
    int metadata_cb;
    guint reconnect_source;
    gint64 disconnected_since;
};

MsLibvirt *
ms_libvirt_new(GMainContext *context, const char *uri, const char *origin, const char *uuid,
               guint reconnect_timeout_s, const MsLibvirtCallbacks *callbacks, gpointer user_data)
{
    MsLibvirt *lv = g_new0(MsLibvirt, 1);
    lv->context = g_main_context_ref(context);
    lv->uri = g_strdup(uri);
    lv->origin = g_strdup(origin);
    lv->uuid = g_strdup(uuid);
    lv->reconnect_timeout_s = reconnect_timeout_s;
    lv->cb = *callbacks;
    lv->user_data = user_data;
    lv->lifecycle_cb = -1;
    lv->metadata_cb = -1;
    return lv;
}

/* Forgets the connection; the event callbacks die with it. */
static void
ms_libvirt_drop(MsLibvirt *lv)
{
    lv->lifecycle_cb = lv->metadata_cb = -1;
    g_clear_pointer(&lv->dom, virDomainFree);
    g_clear_pointer(&lv->conn, virConnectClose);
}

void
ms_libvirt_free(MsLibvirt *lv)
{
    if (lv == NULL)
        return;
    g_clear_handle_id(&lv->reconnect_source, g_source_remove);
    if (lv->conn) {
        if (lv->lifecycle_cb >= 0)
            virConnectDomainEventDeregisterAny(lv->conn, lv->lifecycle_cb);
        if (lv->metadata_cb >= 0)
            virConnectDomainEventDeregisterAny(lv->conn, lv->metadata_cb);
    }
    ms_libvirt_drop(lv);
    g_main_context_unref(lv->context);
    g_free(lv->uri);
    g_free(lv->origin);
    g_free(lv->uuid);
    g_free(lv);
}

virConnectPtr
ms_libvirt_get_connection(MsLibvirt *lv)
{
    return lv->conn;
}

virDomainPtr
ms_libvirt_get_domain(MsLibvirt *lv)
{
    return lv->dom;
}

typedef enum {
    MS_LIBVIRT_EVENT_LIFECYCLE,
    MS_LIBVIRT_EVENT_METADATA,
    MS_LIBVIRT_EVENT_CLOSED,
} MsLibvirtEventKind;

typedef struct {
    MsLibvirt *lv;
    MsLibvirtEventKind kind;
    int event;
} MsLibvirtEvent;

static gboolean ms_libvirt_try_reconnect(gpointer user_data);

static gboolean
ms_libvirt_dispatch_event(gpointer data)
{
    MsLibvirtEvent *ev = data;
    MsLibvirt *lv = ev->lv;
    if (ev->kind == MS_LIBVIRT_EVENT_LIFECYCLE) {
        if (ev->event == VIR_DOMAIN_EVENT_STOPPED)
            lv->cb.stopped(lv->user_data);
        else if (ev->event == VIR_DOMAIN_EVENT_SHUTDOWN)
            g_message("guest is shutting down");
    } else if (ev->kind == MS_LIBVIRT_EVENT_METADATA) {
        lv->cb.policy_changed(lv->user_data);
    } else if (ev->kind == MS_LIBVIRT_EVENT_CLOSED && lv->reconnect_source == 0) {
        g_warning("lost the connection to libvirtd; reconnecting for up to %u s", lv->reconnect_timeout_s);
        lv->disconnected_since = g_get_monotonic_time();
        lv->cb.disconnected(lv->user_data);
        ms_libvirt_drop(lv);
        lv->reconnect_source = g_timeout_add_seconds(1, ms_libvirt_try_reconnect, lv);
    }
    return G_SOURCE_REMOVE;
}

static void
ms_libvirt_post_event(MsLibvirt *lv, MsLibvirtEventKind kind, int event)
{
    MsLibvirtEvent *ev = g_new0(MsLibvirtEvent, 1);
    ev->lv = lv;
    ev->kind = kind;
    ev->event = event;
    g_main_context_invoke_full(lv->context, G_PRIORITY_DEFAULT, ms_libvirt_dispatch_event, ev, g_free);
}

static int
ms_libvirt_lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    ms_libvirt_post_event(opaque, MS_LIBVIRT_EVENT_LIFECYCLE, event);
    return 0;
}

static void
ms_libvirt_metadata_cb(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
    /* our own stats element raises these too: only the policy counts */
    if (type == VIR_DOMAIN_METADATA_ELEMENT && g_strcmp0(nsuri, MS_POLICY_NAMESPACE) == 0)
        ms_libvirt_post_event(opaque, MS_LIBVIRT_EVENT_METADATA, type);
}

static void
ms_libvirt_close_cb(virConnectPtr conn, int reason, void *opaque)
{
    ms_libvirt_post_event(opaque, MS_LIBVIRT_EVENT_CLOSED, reason);
}

gboolean
ms_libvirt_connect(MsLibvirt *lv, GError **error)
{
    lv->conn = virConnectOpen(lv->uri);
    if (lv->conn == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot connect to '%s' (%s): %s", lv->uri, lv->origin,
                    virGetLastErrorMessage());
        return FALSE;
    }
    lv->dom = virDomainLookupByUUIDString(lv->conn, lv->uuid);
    if (lv->dom == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "no domain with UUID %s on '%s': %s", lv->uuid,
                    lv->uri, virGetLastErrorMessage());
        return FALSE;
    }
    if (virConnectRegisterCloseCallback(lv->conn, ms_libvirt_close_cb, lv, NULL) < 0)
        g_warning("cannot watch the libvirt connection: %s", virGetLastErrorMessage());
    lv->lifecycle_cb = virConnectDomainEventRegisterAny(lv->conn, lv->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                        VIR_DOMAIN_EVENT_CALLBACK(ms_libvirt_lifecycle_cb),
                                                        lv, NULL);
    lv->metadata_cb = virConnectDomainEventRegisterAny(lv->conn, lv->dom, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                                       VIR_DOMAIN_EVENT_CALLBACK(ms_libvirt_metadata_cb),
                                                       lv, NULL);
    if (lv->lifecycle_cb < 0 || lv->metadata_cb < 0)
        g_warning("cannot register for domain events: %s", virGetLastErrorMessage());

    int state = 0, reason = 0;
    if (virDomainGetState(lv->dom, &state, &reason, 0) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot read the domain state: %s",
                    virGetLastErrorMessage());
        return FALSE;
    }
    if (state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "the domain is not running");
        return FALSE;
    }
    return TRUE;
}

MsLibvirtIncoming
ms_libvirt_incoming_state(MsLibvirt *lv, GError **error)
{
    int state = 0, reason = 0;
    if (lv->dom == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "not connected to libvirt");
        return MS_LIBVIRT_INCOMING_ERROR;
    }
    if (virDomainGetState(lv->dom, &state, &reason, 0) < 0) {
        /* a failed or cancelled incoming migration removes the domain */
        if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
            return MS_LIBVIRT_INCOMING_GONE;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot read the domain state: %s",
                    virGetLastErrorMessage());
        return MS_LIBVIRT_INCOMING_ERROR;
    }
    if (state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED)
        return MS_LIBVIRT_INCOMING_GONE;
    if ((state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_MIGRATION) ||
        (state == VIR_DOMAIN_RUNNING && reason == VIR_DOMAIN_RUNNING_POSTCOPY))
        return MS_LIBVIRT_INCOMING_RUNNING;
    return MS_LIBVIRT_INCOMING_NONE;
}

static void
ms_libvirt_quiet(void *opaque G_GNUC_UNUSED, virErrorPtr err G_GNUC_UNUSED)
{
}

gboolean
ms_libvirt_migrating_out(MsLibvirt *lv)
{
    int type = VIR_DOMAIN_JOB_NONE, n = 0, op = 0;
    virTypedParameterPtr params = NULL;
    if (lv->dom == NULL)
        return FALSE;
    /* Asked on a destination whose incoming job is finishing, libvirt
     * answers "migration statistics are available only on the source
     * host": expected, so not printed by libvirt's default handler (the
     * agent installs none; NULL restores that default). */
    virSetErrorFunc(NULL, ms_libvirt_quiet);
    int r = virDomainGetJobStats(lv->dom, &type, &params, &n, 0);
    virSetErrorFunc(NULL, NULL);
    if (r < 0)
        return FALSE;
    gboolean out = type != VIR_DOMAIN_JOB_NONE &&
                   virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_OPERATION, &op) == 1 &&
                   op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT;
    virTypedParamsFree(params, n);
    return out;
}

static gboolean
ms_libvirt_try_reconnect(gpointer user_data)
{
    MsLibvirt *lv = user_data;
    g_autoptr(GError) error = NULL;
    if (ms_libvirt_connect(lv, &error) && lv->cb.reconnected(lv->user_data, &error)) {
        g_message("reconnected to libvirtd after %.1f s", (g_get_monotonic_time() - lv->disconnected_since) / 1e6);
        lv->reconnect_source = 0;
        return G_SOURCE_REMOVE;
    }
    if (g_error_matches(error, MS_ERROR, MS_ERROR_NOT_FOUND)) {
        lv->reconnect_source = 0;
        lv->cb.give_up(lv->user_data, 0, error->message);
        return G_SOURCE_REMOVE;
    }
    lv->cb.disconnected(lv->user_data);
    ms_libvirt_drop(lv);
    if (g_get_monotonic_time() - lv->disconnected_since > (gint64)lv->reconnect_timeout_s * G_USEC_PER_SEC) {
        lv->reconnect_source = 0;
        lv->cb.give_up(lv->user_data, 1, "libvirtd did not come back");
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

gboolean
ms_libvirt_set_stats_metadata(virDomainPtr dom, const MsExportDomain *domain, gint64 unix_time,
                              GError **error)
{
    g_autofree char *xml = ms_export_stats_xml(domain, unix_time, error);
    if (xml == NULL)
        return FALSE;
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, MS_EXPORT_STATS_KEY, MS_EXPORT_STATS_NS,
                             VIR_DOMAIN_AFFECT_LIVE) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot set the stats metadata of domain '%s': %s",
                    domain->name, virGetLastErrorMessage());
        return FALSE;
    }
    return TRUE;
}
