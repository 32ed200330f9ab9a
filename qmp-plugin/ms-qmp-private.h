/* qmp-plugin/ms-qmp-private.h: what the QMP client core (ms-qmp.c) shares
 * with its transports (ms-qmp-socket.c, ms-qmp-libvirt.c): the transport
 * vtable, the client struct, and the event queue that carries events (and
 * the "closed" notice) from wherever a transport sees them to the client's
 * main context. Not for use outside qmp-plugin/ and tests/qmp/. */
#pragma once

#include "ms-qmp.h"

G_BEGIN_DECLS

typedef struct {
    const char *name;
    /* Opens the connection; may set client->version (from a greeting).
     * Then the core sends qmp_capabilities if negotiate is set, and
     * query-version if no version is known yet, and calls start(). */
    gboolean (*connect)(MsQmpClient *client, GError **error);
    gboolean negotiate;
    /* Begins event delivery; may be NULL. */
    gboolean (*start)(MsQmpClient *client, GError **error);
    /* Sends one command (id: the core's id for it, which the transport may
     * or may not put on the wire) and returns the whole reply object:
     * {"return": ...} or {"error": ...}. Events seen meanwhile go to
     * ms_qmp_event_queue_push(). */
    JsonObject *(*call)(MsQmpClient *client, const char *command, JsonObject *arguments,
                        const char *id, guint timeout_ms, GError **error);
    /* Drops the connection; no closed notice. Safe to call twice. */
    void (*close)(MsQmpClient *client);
    void (*free)(gpointer priv);
} MsQmpTransport;

typedef struct _MsQmpEventQueue MsQmpEventQueue;

struct _MsQmpClient {
    const MsQmpTransport *transport;
    gpointer priv;
    GMainContext *context;
    MsQmpEventQueue *events;
    char *version;
    gboolean connected; /* commands may be sent */
    gboolean ready;     /* connect() succeeded and nothing was lost since */
    gboolean closed_notified;
    guint64 next_id;
    MsQmpEventFunc event_func;
    gpointer event_data;
    MsQmpClosedFunc closed_func;
    gpointer closed_data;
};

MsQmpClient *ms_qmp_client_new_with_transport(const MsQmpTransport *transport, gpointer priv,
                                              GMainContext *context);

/* The queue lives as long as its last reference: a libvirt callback may
 * still hold one after the client is freed; it then drops what it gets. */
MsQmpEventQueue *ms_qmp_event_queue_ref(MsQmpEventQueue *queue);
void ms_qmp_event_queue_unref(MsQmpEventQueue *queue);
/* Thread-safe. Takes an event message as QMP sends it ({"event", "data",
 * "timestamp"}); dispatched from an idle source on the client's context. */
void ms_qmp_event_queue_push(MsQmpEventQueue *queue, const char *event, JsonObject *data,
                             gint64 seconds, gint64 micros);
/* Parses {"event": ..., "data": ..., "timestamp": ...} and queues it. */
gboolean ms_qmp_event_queue_push_message(MsQmpEventQueue *queue, JsonObject *msg,
                                         GError **error);

/* Marks the client disconnected and queues the closed notice (once). */
void ms_qmp_client_lost(MsQmpClient *client, const GError *reason);

/* {"execute": command, "arguments": arguments, "id": id} as JSON text;
 * arguments and id may be NULL (then the member is left out). */
char *ms_qmp_build_command(const char *command, JsonObject *arguments, const char *id);

/* "7.2.22" from {"major": 7, "minor": 2, "micro": 22}. */
char *ms_qmp_version_from_object(JsonObject *qemu, GError **error);

G_END_DECLS
