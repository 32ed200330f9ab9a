/* qmp-plugin/ms-qmp.h: the agent's QMP client. One module owns framing,
 * greeting and qmp_capabilities, command ids, the split between replies and
 * events, and QMP error replies. Two transports sit behind one interface:
 *   - a direct QMP unix socket (bare QEMU, tests, a second monitor);
 *   - libvirt's monitor pass-through (virDomainQemuMonitorCommand and
 *     virConnectDomainQemuMonitorEventRegister): needs no change to the
 *     domain XML and coexists with libvirt's own monitor.
 * Calls are synchronous with a timeout: one agent serves one domain, and QMP
 * replies to the queries we send arrive in milliseconds. Events that arrive
 * while a command waits are queued and dispatched from the main loop. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define MS_QMP_ERROR (ms_qmp_error_quark())
GQuark ms_qmp_error_quark(void);

typedef enum {
    MS_QMP_ERROR_PROTOCOL,   /* malformed or unexpected data from QEMU */
    MS_QMP_ERROR_COMMAND,    /* QEMU answered {"error": ...}; message has class + desc */
    MS_QMP_ERROR_CLOSED,     /* the monitor went away */
    MS_QMP_ERROR_TIMEOUT,
    MS_QMP_ERROR_IO,
    MS_QMP_ERROR_TOO_BIG,    /* a message exceeded MS_QMP_MAX_MESSAGE */
} MsQmpErrorCode;

/* No legitimate reply to what we send is near this; QEMU is not trusted. */
#define MS_QMP_MAX_MESSAGE (4 * 1024 * 1024)
#define MS_QMP_DEFAULT_TIMEOUT_MS 10000

typedef struct _MsQmpClient MsQmpClient;

/* event: the event name ("BALLOON_CHANGE"); data: the "data" member or NULL;
 * seconds/micros: the QEMU timestamp. Called from the main context. */
typedef void (*MsQmpEventFunc)(MsQmpClient *client, const char *event,
                               JsonObject *data, gint64 seconds,
                               gint64 micros, gpointer user_data);
/* The monitor closed (QEMU exited, libvirt connection lost for good). */
typedef void (*MsQmpClosedFunc)(MsQmpClient *client, const GError *reason,
                                gpointer user_data);

/* Direct socket transport: connects to a QMP unix socket, reads the
 * greeting, negotiates capabilities. */
MsQmpClient *ms_qmp_client_new_socket(const char *socket_path);

/* libvirt transport: conn and dom are virConnectPtr / virDomainPtr (void*
 * here so this header needs no libvirt include); the client takes a
 * reference on both. The caller must have registered a libvirt event loop
 * (ms_qmp_libvirt_event_loop_start()) for events to arrive. */
MsQmpClient *ms_qmp_client_new_libvirt(void *conn, void *dom);
/* Starts libvirt's default event implementation in a helper thread; events
 * are marshalled to the GLib main context given. Idempotent. */
gboolean ms_qmp_libvirt_event_loop_start(GMainContext *context, GError **error);

gboolean ms_qmp_client_connect(MsQmpClient *client, GError **error);

/* Returns the "return" member of the reply (a new reference), or NULL with
 * error. arguments may be NULL; it is not consumed. */
JsonNode *ms_qmp_client_execute(MsQmpClient *client, const char *command,
                                JsonObject *arguments, GError **error);
JsonNode *ms_qmp_client_execute_timeout(MsQmpClient *client, const char *command,
                                        JsonObject *arguments, guint timeout_ms,
                                        GError **error);

/* The QEMU version from the greeting (socket) or query-version (libvirt),
 * e.g. "7.2.22"; NULL before connect. */
const char *ms_qmp_client_get_qemu_version(MsQmpClient *client);

void ms_qmp_client_set_event_handler(MsQmpClient *client, MsQmpEventFunc func,
                                     gpointer user_data);
void ms_qmp_client_set_closed_handler(MsQmpClient *client, MsQmpClosedFunc func,
                                      gpointer user_data);
void ms_qmp_client_close(MsQmpClient *client);
void ms_qmp_client_free(MsQmpClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsQmpClient, ms_qmp_client_free)

G_END_DECLS
