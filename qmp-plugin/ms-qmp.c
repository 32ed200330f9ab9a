/* qmp-plugin/ms-qmp.c: the QMP client core, common to both transports:
 * command ids and JSON building, the reply -> return/error mapping, the
 * connect sequence, and the event queue that delivers events and the
 * "closed" notice on the client's main context. Transports (ms-qmp-socket.c,
 * ms-qmp-libvirt.c) only move a command's text to QEMU and a reply back. */
#include "ms-qmp-private.h"

G_DEFINE_QUARK(ms-qmp-error-quark, ms_qmp_error)

/* ---- event queue ---------------------------------------------------------- */

typedef struct {
    char *event;      /* NULL: the closed notice */
    JsonObject *data; /* may be NULL */
    gint64 seconds;
    gint64 micros;
    GError *reason;   /* closed notice only */
} MsQmpQueuedEvent;

struct _MsQmpEventQueue {
    gint ref;
    GMutex lock;
    GQueue items;
    GMainContext *context;
    GSource *idle;       /* pending dispatch, under lock */
    MsQmpClient *client; /* NULL once the client is freed; written on its context */
};

static void
ms_qmp_queued_event_free(gpointer p)
{
    MsQmpQueuedEvent *ev = p;
    g_free(ev->event);
    g_clear_pointer(&ev->data, json_object_unref);
    g_clear_error(&ev->reason);
    g_free(ev);
}

static MsQmpEventQueue *
ms_qmp_event_queue_new(MsQmpClient *client, GMainContext *context)
{
    MsQmpEventQueue *queue = g_new0(MsQmpEventQueue, 1);
    queue->ref = 1;
    g_mutex_init(&queue->lock);
    g_queue_init(&queue->items);
    queue->context = g_main_context_ref(context);
    queue->client = client;
    return queue;
}

MsQmpEventQueue *
ms_qmp_event_queue_ref(MsQmpEventQueue *queue)
{
    g_atomic_int_inc(&queue->ref);
    return queue;
}

void
ms_qmp_event_queue_unref(MsQmpEventQueue *queue)
{
    if (queue == NULL || !g_atomic_int_dec_and_test(&queue->ref))
        return;
    g_queue_clear_full(&queue->items, ms_qmp_queued_event_free);
    if (queue->idle != NULL) {
        g_source_destroy(queue->idle);
        g_source_unref(queue->idle);
    }
    g_main_context_unref(queue->context);
    g_mutex_clear(&queue->lock);
    g_free(queue);
}

static gboolean
ms_qmp_event_queue_dispatch(gpointer user_data)
{
    MsQmpEventQueue *queue = user_data;

    g_mutex_lock(&queue->lock);
    g_clear_pointer(&queue->idle, g_source_unref);
    g_mutex_unlock(&queue->lock);

    /* One item at a time: a handler may free the client, which clears
     * queue->client and drops what is left. */
    for (;;) {
        g_mutex_lock(&queue->lock);
        MsQmpClient *client = queue->client;
        MsQmpQueuedEvent *ev = client ? g_queue_pop_head(&queue->items) : NULL;
        g_mutex_unlock(&queue->lock);
        if (ev == NULL)
            break;
        if (ev->event != NULL) {
            if (client->event_func != NULL)
                client->event_func(client, ev->event, ev->data, ev->seconds, ev->micros,
                                   client->event_data);
        } else if (client->closed_func != NULL) {
            client->closed_func(client, ev->reason, client->closed_data);
        }
        ms_qmp_queued_event_free(ev);
    }
    return G_SOURCE_REMOVE;
}

static void
ms_qmp_event_queue_add(MsQmpEventQueue *queue, MsQmpQueuedEvent *ev)
{
    g_mutex_lock(&queue->lock);
    if (queue->client == NULL) {
        g_mutex_unlock(&queue->lock);
        ms_qmp_queued_event_free(ev);
        return;
    }
    g_queue_push_tail(&queue->items, ev);
    if (queue->idle == NULL) {
        queue->idle = g_idle_source_new();
        g_source_set_priority(queue->idle, G_PRIORITY_DEFAULT);
        g_source_set_static_name(queue->idle, "ms-qmp-events");
        g_source_set_callback(queue->idle, ms_qmp_event_queue_dispatch,
                              ms_qmp_event_queue_ref(queue),
                              (GDestroyNotify)ms_qmp_event_queue_unref);
        g_source_attach(queue->idle, queue->context);
    }
    g_mutex_unlock(&queue->lock);
}

void
ms_qmp_event_queue_push(MsQmpEventQueue *queue, const char *event, JsonObject *data,
                        gint64 seconds, gint64 micros)
{
    MsQmpQueuedEvent *ev = g_new0(MsQmpQueuedEvent, 1);
    ev->event = g_strdup(event);
    ev->data = data ? json_object_ref(data) : NULL;
    ev->seconds = seconds;
    ev->micros = micros;
    ms_qmp_event_queue_add(queue, ev);
}

static gboolean
ms_qmp_get_int(JsonObject *obj, const char *member, gint64 *value)
{
    JsonNode *node = obj ? json_object_get_member(obj, member) : NULL;
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_INT64)
        return FALSE;
    *value = json_node_get_int(node);
    return TRUE;
}

static const char *
ms_qmp_get_string(JsonObject *obj, const char *member)
{
    JsonNode *node = obj ? json_object_get_member(obj, member) : NULL;
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(node);
}

static JsonObject *
ms_qmp_get_object(JsonObject *obj, const char *member)
{
    JsonNode *node = obj ? json_object_get_member(obj, member) : NULL;
    return node && JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
}

gboolean
ms_qmp_event_queue_push_message(MsQmpEventQueue *queue, JsonObject *msg, GError **error)
{
    const char *event = ms_qmp_get_string(msg, "event");
    if (event == NULL) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "QMP event has no string member 'event'");
        return FALSE;
    }
    /* A missing or odd timestamp is QEMU's problem, not a reason to drop
     * the event: report 0. */
    JsonObject *ts = ms_qmp_get_object(msg, "timestamp");
    gint64 seconds = 0, micros = 0;
    if (!ms_qmp_get_int(ts, "seconds", &seconds) || !ms_qmp_get_int(ts, "microseconds", &micros))
        seconds = micros = 0;
    ms_qmp_event_queue_push(queue, event, ms_qmp_get_object(msg, "data"), seconds, micros);
    return TRUE;
}

/* ---- client ---------------------------------------------------------------- */

MsQmpClient *
ms_qmp_client_new_with_transport(const MsQmpTransport *transport, gpointer priv,
                                 GMainContext *context)
{
    MsQmpClient *client = g_new0(MsQmpClient, 1);
    client->transport = transport;
    client->priv = priv;
    client->context = context ? g_main_context_ref(context) : g_main_context_ref_thread_default();
    client->events = ms_qmp_event_queue_new(client, client->context);
    return client;
}

void
ms_qmp_client_lost(MsQmpClient *client, const GError *reason)
{
    /* Failures while connecting are reported by connect() itself. */
    gboolean notify = client->ready && !client->closed_notified;
    client->connected = FALSE;
    client->ready = FALSE;
    if (!notify)
        return;
    client->closed_notified = TRUE;
    MsQmpQueuedEvent *ev = g_new0(MsQmpQueuedEvent, 1);
    ev->reason = reason ? g_error_copy(reason)
                        : g_error_new_literal(MS_QMP_ERROR, MS_QMP_ERROR_CLOSED,
                                              "QMP monitor closed");
    ms_qmp_event_queue_add(client->events, ev);
}

char *
ms_qmp_version_from_object(JsonObject *qemu, GError **error)
{
    gint64 major, minor, micro;
    if (!ms_qmp_get_int(qemu, "major", &major) || !ms_qmp_get_int(qemu, "minor", &minor) ||
        !ms_qmp_get_int(qemu, "micro", &micro) || major < 0 || minor < 0 || micro < 0) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "QEMU version lacks non-negative integers 'major', 'minor', 'micro'");
        return NULL;
    }
    return g_strdup_printf("%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT,
                           major, minor, micro);
}

static gboolean
ms_qmp_client_setup(MsQmpClient *client, GError **error)
{
    g_autoptr(GError) local = NULL;
    if (client->transport->negotiate) {
        g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, "qmp_capabilities", NULL, &local);
        if (ret == NULL) {
            g_propagate_prefixed_error(error, g_steal_pointer(&local), "qmp_capabilities: ");
            return FALSE;
        }
    }
    if (client->version == NULL) {
        /* A transport that sees no greeting asks QEMU. */
        g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, "query-version", NULL, &local);
        if (ret != NULL && JSON_NODE_HOLDS_OBJECT(ret)) {
            JsonObject *qemu = ms_qmp_get_object(json_node_get_object(ret), "qemu");
            client->version = ms_qmp_version_from_object(qemu, &local);
        } else if (ret != NULL) {
            g_set_error(&local, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL, "reply is not an object");
        }
        if (client->version == NULL) {
            g_propagate_prefixed_error(error, g_steal_pointer(&local), "query-version: ");
            return FALSE;
        }
    }
    if (client->transport->start != NULL && !client->transport->start(client, error))
        return FALSE;
    return TRUE;
}

gboolean
ms_qmp_client_connect(MsQmpClient *client, GError **error)
{
    g_return_val_if_fail(client != NULL, FALSE);
    if (client->ready)
        return TRUE;
    ms_qmp_client_close(client);
    g_clear_pointer(&client->version, g_free);
    client->closed_notified = FALSE;
    if (!client->transport->connect(client, error)) {
        client->transport->close(client);
        return FALSE;
    }
    client->connected = TRUE;
    if (!ms_qmp_client_setup(client, error)) {
        ms_qmp_client_close(client);
        g_clear_pointer(&client->version, g_free);
        return FALSE;
    }
    client->ready = TRUE;
    return TRUE;
}

char *
ms_qmp_build_command(const char *command, JsonObject *arguments, const char *id)
{
    g_autoptr(JsonBuilder) b = json_builder_new_immutable();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "execute");
    json_builder_add_string_value(b, command);
    if (arguments != NULL) {
        /* The node shares (refs) the caller's object, which stays theirs. */
        JsonNode *args = json_node_init_object(json_node_alloc(), arguments);
        json_builder_set_member_name(b, "arguments");
        json_builder_add_value(b, args);
    }
    if (id != NULL) {
        json_builder_set_member_name(b, "id");
        json_builder_add_string_value(b, id);
    }
    json_builder_end_object(b);
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

static JsonNode *
ms_qmp_reply_return(const char *command, JsonObject *reply, GError **error)
{
    JsonNode *err = json_object_get_member(reply, "error");
    if (err != NULL) {
        JsonObject *e = JSON_NODE_HOLDS_OBJECT(err) ? json_node_get_object(err) : NULL;
        const char *klass = ms_qmp_get_string(e, "class");
        const char *desc = ms_qmp_get_string(e, "desc");
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_COMMAND, "%s: %s",
                    klass ? klass : "GenericError", desc ? desc : "(no description)");
        return NULL;
    }
    JsonNode *ret = json_object_get_member(reply, "return");
    if (ret == NULL) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "reply to '%s' has neither 'return' nor 'error'", command);
        return NULL;
    }
    return json_node_copy(ret);
}

JsonNode *
ms_qmp_client_execute_timeout(MsQmpClient *client, const char *command, JsonObject *arguments,
                              guint timeout_ms, GError **error)
{
    g_return_val_if_fail(client != NULL, NULL);
    g_return_val_if_fail(command != NULL, NULL);
    if (!client->connected) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED,
                    "cannot run '%s': QMP monitor is not connected", command);
        return NULL;
    }
    g_autofree char *id = g_strdup_printf("ms-%" G_GUINT64_FORMAT, ++client->next_id);
    g_autoptr(JsonObject) reply = client->transport->call(client, command, arguments, id,
                                                          timeout_ms, error);
    if (reply == NULL)
        return NULL;
    return ms_qmp_reply_return(command, reply, error);
}

JsonNode *
ms_qmp_client_execute(MsQmpClient *client, const char *command, JsonObject *arguments,
                      GError **error)
{
    return ms_qmp_client_execute_timeout(client, command, arguments, MS_QMP_DEFAULT_TIMEOUT_MS,
                                         error);
}

const char *
ms_qmp_client_get_qemu_version(MsQmpClient *client)
{
    g_return_val_if_fail(client != NULL, NULL);
    return client->version;
}

void
ms_qmp_client_set_event_handler(MsQmpClient *client, MsQmpEventFunc func, gpointer user_data)
{
    g_return_if_fail(client != NULL);
    client->event_func = func;
    client->event_data = user_data;
}

void
ms_qmp_client_set_closed_handler(MsQmpClient *client, MsQmpClosedFunc func, gpointer user_data)
{
    g_return_if_fail(client != NULL);
    client->closed_func = func;
    client->closed_data = user_data;
}

void
ms_qmp_client_close(MsQmpClient *client)
{
    if (client == NULL)
        return;
    client->connected = FALSE;
    client->ready = FALSE;
    client->transport->close(client);
}

void
ms_qmp_client_free(MsQmpClient *client)
{
    if (client == NULL)
        return;
    ms_qmp_client_close(client);
    client->transport->free(client->priv);

    MsQmpEventQueue *queue = client->events;
    g_mutex_lock(&queue->lock);
    queue->client = NULL;
    g_queue_clear_full(&queue->items, ms_qmp_queued_event_free);
    if (queue->idle != NULL) {
        g_source_destroy(queue->idle);
        g_clear_pointer(&queue->idle, g_source_unref);
    }
    g_mutex_unlock(&queue->lock);
    ms_qmp_event_queue_unref(queue);

    g_main_context_unref(client->context);
    g_free(client->version);
    g_free(client);
}
