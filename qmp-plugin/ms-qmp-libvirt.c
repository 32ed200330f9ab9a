/* qmp-plugin/ms-qmp-libvirt.c: the QMP transport through libvirt's monitor
 * pass-through: commands via virDomainQemuMonitorCommand(), events via
 * virConnectDomainQemuMonitorEventRegister(). Needs no change to the domain
 * XML and coexists with libvirt's own monitor. Also owns the helper thread
 * that runs libvirt's default event loop for the whole agent. */
#include "ms-qmp-private.h"
#include "ms-qmp-stream.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>

typedef struct {
    virConnectPtr conn;
    virDomainPtr dom;
    int callback_id; /* -1: not registered */
} MsQmpLibvirt;

static GMutex ms_qmp_libvirt_lock;
static gboolean ms_qmp_libvirt_loop_running;
static GMainContext *ms_qmp_libvirt_context; /* where libvirt clients dispatch */

/* libvirt 9.0's default event implementation is GLib's: its sources live on
 * the global default GMainContext, and virEventRunDefaultImpl() is one
 * g_main_context_iteration() of that context. So when the agent's main loop
 * runs the default context, that loop already runs libvirt's events, in the
 * agent's thread; a helper thread would only compete for the context and
 * dispatch the agent's own sources in the wrong thread whenever the main
 * loop is not running (e.g. during start-up). The helper thread is for a
 * caller whose main loop runs another context. */
static gpointer
ms_qmp_libvirt_event_thread(gpointer data)
{
    for (;;) {
        if (virEventRunDefaultImpl() < 0) {
            const char *msg = virGetLastErrorMessage();
            g_warning("libvirt event loop: %s", msg ? msg : "unknown error");
            /* Do not spin if the loop keeps failing. */
            g_usleep(G_USEC_PER_SEC);
        }
    }
    return NULL;
}

gboolean
ms_qmp_libvirt_event_loop_start(GMainContext *context, GError **error)
{
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&ms_qmp_libvirt_lock);
    if (ms_qmp_libvirt_loop_running)
        return TRUE;
    if (virEventRegisterDefaultImpl() < 0) {
        const char *msg = virGetLastErrorMessage();
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO,
                    "cannot register libvirt's event loop: %s", msg ? msg : "unknown error");
        return FALSE;
    }
    if (context == NULL)
        context = g_main_context_default();
    if (context != g_main_context_default()) {
        GThread *thread = g_thread_try_new("ms-libvirt-ev", ms_qmp_libvirt_event_thread, NULL,
                                           error);
        if (thread == NULL) {
            g_prefix_error(error, "cannot start libvirt's event thread: ");
            return FALSE;
        }
        /* Runs for the life of the process. */
        g_thread_unref(thread);
    }
    ms_qmp_libvirt_context = g_main_context_ref(context);
    ms_qmp_libvirt_loop_running = TRUE;
    return TRUE;
}

static void
ms_qmp_libvirt_set_error(MsQmpClient *client, const char *command, GError **error)
{
    virErrorPtr err = virGetLastError();
    const char *msg = err && err->message ? err->message : "unknown libvirt error";
    int code = MS_QMP_ERROR_IO;
    if (err != NULL) {
        switch (err->code) {
        case VIR_ERR_OPERATION_INVALID: /* domain is not running */
        case VIR_ERR_NO_DOMAIN:
        case VIR_ERR_INVALID_DOMAIN:
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_INVALID_CONN:
            code = MS_QMP_ERROR_CLOSED;
            break;
        case VIR_ERR_OPERATION_TIMEOUT:
            code = MS_QMP_ERROR_TIMEOUT;
            break;
        default:
            break;
        }
    }
    GError *local = g_error_new(MS_QMP_ERROR, code, "libvirt monitor pass-through for '%s': %s",
                                command, msg);
    if (code == MS_QMP_ERROR_CLOSED)
        ms_qmp_client_lost(client, local);
    g_propagate_error(error, local);
}

static JsonObject *
ms_qmp_libvirt_call(MsQmpClient *client, const char *command, JsonObject *arguments,
                    const char *id, guint timeout_ms, GError **error)
{
    MsQmpLibvirt *lv = client->priv;
    /* No "id": libvirt adds its own and rejects a command that has one.
     * No timeout of ours either: libvirt serialises monitor access and
     * returns when QEMU answers or goes away. */
    g_autofree char *text = ms_qmp_build_command(command, arguments, NULL);
    char *result = NULL;
    if (virDomainQemuMonitorCommand(lv->dom, text, &result, 0) < 0) {
        ms_qmp_libvirt_set_error(client, command, error);
        return NULL;
    }
    g_autofree char *reply_text = result;
    if (reply_text == NULL) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "libvirt returned no reply to '%s'", command);
        return NULL;
    }
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
    ms_qmp_stream_feed(stream, reply_text, strlen(reply_text));
    g_autoptr(GError) local = NULL;
    JsonObject *reply = ms_qmp_stream_pop(stream, &local);
    if (reply == NULL && local == NULL)
        g_set_error(&local, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL, "reply is not a complete object");
    if (reply == NULL) {
        g_propagate_prefixed_error(error, g_steal_pointer(&local),
                                   "reply to '%s' via libvirt: ", command);
        return NULL;
    }
    return reply;
}

static void
ms_qmp_libvirt_on_event(virConnectPtr conn, virDomainPtr dom, const char *event,
                        long long seconds, unsigned int micros, const char *details,
                        void *opaque)
{
    /* libvirt's event thread: only thread-safe queue calls here. */
    MsQmpEventQueue *queue = opaque;
    g_autoptr(JsonObject) data = NULL;
    if (event == NULL)
        return;
    if (details != NULL) {
        g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
        g_autoptr(GError) local = NULL;
        ms_qmp_stream_feed(stream, details, strlen(details));
        data = ms_qmp_stream_pop(stream, &local);
        if (data == NULL)
            g_debug("QMP event %s: ignoring its details: %s", event,
                    local ? local->message : "incomplete JSON");
    }
    ms_qmp_event_queue_push(queue, event, data, seconds, micros);
}

static void
ms_qmp_libvirt_queue_unref(void *opaque)
{
    ms_qmp_event_queue_unref(opaque);
}

static gboolean
ms_qmp_libvirt_connect(MsQmpClient *client, GError **error)
{
    MsQmpLibvirt *lv = client->priv;
    if (lv->conn == NULL || lv->dom == NULL) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED, "no libvirt connection or domain");
        return FALSE;
    }
    if (!virDomainIsActive(lv->dom)) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED, "domain '%s' is not running",
                    virDomainGetName(lv->dom));
        return FALSE;
    }
    return TRUE;
}

static gboolean
ms_qmp_libvirt_start(MsQmpClient *client, GError **error)
{
    MsQmpLibvirt *lv = client->priv;
    int id = virConnectDomainQemuMonitorEventRegister(lv->conn, lv->dom, NULL,
                                                      ms_qmp_libvirt_on_event,
                                                      ms_qmp_event_queue_ref(client->events),
                                                      ms_qmp_libvirt_queue_unref, 0);
    if (id < 0) {
        /* libvirt did not take the reference. */
        ms_qmp_event_queue_unref(client->events);
        const char *msg = virGetLastErrorMessage();
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO,
                    "cannot subscribe to QEMU monitor events of domain '%s': %s",
                    virDomainGetName(lv->dom), msg ? msg : "unknown error");
        return FALSE;
    }
    lv->callback_id = id;
    return TRUE;
}

static void
ms_qmp_libvirt_close(MsQmpClient *client)
{
    MsQmpLibvirt *lv = client->priv;
    if (lv->callback_id >= 0) {
        /* Fails harmlessly when the connection is already gone. */
        if (virConnectDomainQemuMonitorEventDeregister(lv->conn, lv->callback_id) < 0)
            g_debug("deregistering QEMU monitor events: %s", virGetLastErrorMessage());
        lv->callback_id = -1;
    }
}

static void
ms_qmp_libvirt_free(gpointer priv)
{
    MsQmpLibvirt *lv = priv;
    if (lv->dom != NULL)
        virDomainFree(lv->dom);
    if (lv->conn != NULL)
        virConnectClose(lv->conn);
    g_free(lv);
}

static const MsQmpTransport ms_qmp_libvirt_transport = {
    .name = "libvirt",
    .connect = ms_qmp_libvirt_connect,
    .negotiate = FALSE, /* libvirt negotiated when it started QEMU */
    .start = ms_qmp_libvirt_start,
    .call = ms_qmp_libvirt_call,
    .close = ms_qmp_libvirt_close,
    .free = ms_qmp_libvirt_free,
};

MsQmpClient *
ms_qmp_client_new_libvirt(void *conn, void *dom)
{
    MsQmpLibvirt *lv = g_new0(MsQmpLibvirt, 1);
    lv->callback_id = -1;
    if (conn != NULL && virConnectRef(conn) == 0)
        lv->conn = conn;
    if (dom != NULL && virDomainRef(dom) == 0)
        lv->dom = dom;
    GMainContext *context = NULL;
    g_mutex_lock(&ms_qmp_libvirt_lock);
    context = ms_qmp_libvirt_context;
    g_mutex_unlock(&ms_qmp_libvirt_lock);
    return ms_qmp_client_new_with_transport(&ms_qmp_libvirt_transport, lv, context);
}
