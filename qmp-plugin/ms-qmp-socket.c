/* qmp-plugin/ms-qmp-socket.c: the direct QMP unix-socket transport (bare
 * QEMU, tests, a second monitor). Owns the socket: connect, the greeting,
 * writing commands, and reading until the reply with our id arrives, with
 * a deadline. Events read meanwhile are queued for the main loop; while no
 * command waits, a GSource on the socket reads events and notices EOF. */
#include "ms-qmp-private.h"
#include "ms-qmp-stream.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MS_QMP_SOCKET_READ_SIZE 65536

typedef struct {
    char *path;
    int fd;
    MsQmpStream *stream;
    GSource *watch;
} MsQmpSocket;

static gint64
ms_qmp_socket_deadline(guint timeout_ms)
{
    return g_get_monotonic_time() + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
}

/* Milliseconds left before deadline, rounded up; 0 once it passed. */
static int
ms_qmp_socket_remaining_ms(gint64 deadline)
{
    gint64 left = deadline - g_get_monotonic_time();
    if (left <= 0)
        return 0;
    return (int)MIN((left + 999) / 1000, G_MAXINT);
}

static void
ms_qmp_socket_close(MsQmpClient *client)
{
    MsQmpSocket *sock = client->priv;
    if (sock->watch != NULL) {
        g_source_destroy(sock->watch);
        g_clear_pointer(&sock->watch, g_source_unref);
    }
    if (sock->fd >= 0) {
        close(sock->fd);
        sock->fd = -1;
    }
    g_clear_pointer(&sock->stream, ms_qmp_stream_free);
}

static void
ms_qmp_socket_free(gpointer priv)
{
    MsQmpSocket *sock = priv;
    g_free(sock->path);
    g_free(sock);
}

/* The connection is unusable (EOF, I/O error, framing error): drop it and
 * tell the owner once. Returns FALSE for the callers' convenience. */
static gboolean
ms_qmp_socket_fail(MsQmpClient *client, GError *error, GError **out)
{
    ms_qmp_socket_close(client);
    ms_qmp_client_lost(client, error);
    g_propagate_error(out, error);
    return FALSE;
}

/* Reads what is available. Returns FALSE with error on EOF or I/O error;
 * TRUE with *got 0 when nothing was there (EAGAIN). */
static gboolean
ms_qmp_socket_read(MsQmpClient *client, gsize *got, GError **error)
{
    MsQmpSocket *sock = client->priv;
    char buf[MS_QMP_SOCKET_READ_SIZE];
    *got = 0;
    for (;;) {
        ssize_t n = read(sock->fd, buf, sizeof(buf));
        if (n > 0) {
            ms_qmp_stream_feed(sock->stream, buf, (gsize)n);
            *got = (gsize)n;
            return TRUE;
        }
        if (n == 0) {
            g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED,
                        "QMP monitor %s closed the connection", sock->path);
            return FALSE;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return TRUE;
        int e = errno;
        /* QEMU's "quit" resets rather than closes the connection. */
        if (e == ECONNRESET) {
            g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED,
                        "QMP monitor %s closed the connection (reset)", sock->path);
            return FALSE;
        }
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO, "cannot read from QMP monitor %s: %s",
                    sock->path, g_strerror(e));
        return FALSE;
    }
}

static gboolean
ms_qmp_socket_write_all(MsQmpClient *client, const char *command, const char *data, gsize len,
                        gint64 deadline, GError **error)
{
    MsQmpSocket *sock = client->priv;
    gsize done = 0;
    while (done < len) {
        ssize_t n = send(sock->fd, data + done, len - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += (gsize)n;
            continue;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            int ms = ms_qmp_socket_remaining_ms(deadline);
            struct pollfd pfd = { .fd = sock->fd, .events = POLLOUT };
            if (ms == 0) {
                g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_TIMEOUT,
                            "timed out sending '%s' to QMP monitor %s", command, sock->path);
                return FALSE;
            }
            if (poll(&pfd, 1, ms) < 0 && errno != EINTR) {
                e = errno;
                return ms_qmp_socket_fail(client,
                                          g_error_new(MS_QMP_ERROR, MS_QMP_ERROR_IO,
                                                      "poll on QMP monitor %s: %s", sock->path,
                                                      g_strerror(e)),
                                          error);
            }
            continue;
        }
        if (e == EPIPE || e == ECONNRESET)
            return ms_qmp_socket_fail(client,
                                      g_error_new(MS_QMP_ERROR, MS_QMP_ERROR_CLOSED,
                                                  "QMP monitor %s closed the connection",
                                                  sock->path),
                                      error);
        return ms_qmp_socket_fail(client,
                                  g_error_new(MS_QMP_ERROR, MS_QMP_ERROR_IO,
                                              "cannot send '%s' to QMP monitor %s: %s", command,
                                              sock->path, g_strerror(e)),
                                  error);
    }
    return TRUE;
}

/* Routes one message read outside of a wait, or not the one waited for. */
static void
ms_qmp_socket_route(MsQmpClient *client, JsonObject *msg)
{
    if (json_object_has_member(msg, "event")) {
        g_autoptr(GError) local = NULL;
        if (!ms_qmp_event_queue_push_message(client->events, msg, &local))
            g_debug("QMP: ignoring an event: %s", local->message);
    } else if (json_object_has_member(msg, "return") || json_object_has_member(msg, "error")) {
        /* The reply to a command that timed out earlier. */
        g_debug("QMP: dropping a reply nobody waits for");
    } else {
        g_debug("QMP: ignoring a message that is neither reply nor event");
    }
}

/* Queues complete messages already buffered behind a reply: the socket
 * watch only wakes up for new bytes. */
static void
ms_qmp_socket_drain(MsQmpClient *client)
{
    MsQmpSocket *sock = client->priv;
    while (sock->stream != NULL) {
        GError *local = NULL;
        g_autoptr(JsonObject) msg = ms_qmp_stream_pop(sock->stream, &local);
        if (local != NULL) {
            g_prefix_error(&local, "%s: ", sock->path);
            ms_qmp_socket_fail(client, local, NULL);
            return;
        }
        if (msg == NULL)
            return;
        ms_qmp_socket_route(client, msg);
    }
}

static gboolean
ms_qmp_socket_id_is(JsonObject *msg, const char *id)
{
    JsonNode *node = json_object_get_member(msg, "id");
    return node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == G_TYPE_STRING &&
           g_strcmp0(json_node_get_string(node), id) == 0;
}

/* Reads until the reply carrying id arrives (or, with id NULL, the
 * greeting, which must be the first message). what names the wait in
 * errors. */
static JsonObject *
ms_qmp_socket_wait(MsQmpClient *client, const char *what, const char *id, gint64 deadline,
                   guint timeout_ms, GError **error)
{
    MsQmpSocket *sock = client->priv;
    for (;;) {
        GError *local = NULL;
        g_autoptr(JsonObject) msg = ms_qmp_stream_pop(sock->stream, &local);
        if (local != NULL) {
            g_prefix_error(&local, "%s: ", sock->path);
            ms_qmp_socket_fail(client, local, error);
            return NULL;
        }
        if (msg != NULL) {
            if (id == NULL) {
                if (!json_object_has_member(msg, "QMP")) {
                    g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                                "%s: the first message is not a QMP greeting", sock->path);
                    return NULL;
                }
                return g_steal_pointer(&msg);
            }
            if (!json_object_has_member(msg, "event") && ms_qmp_socket_id_is(msg, id))
                return g_steal_pointer(&msg);
            ms_qmp_socket_route(client, msg);
            continue;
        }

        int ms = ms_qmp_socket_remaining_ms(deadline);
        if (ms == 0) {
            g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_TIMEOUT,
                        "QMP monitor %s sent no %s within %u ms", sock->path, what, timeout_ms);
            return NULL;
        }
        struct pollfd pfd = { .fd = sock->fd, .events = POLLIN };
        int r = poll(&pfd, 1, ms);
        if (r < 0 && errno != EINTR) {
            int e = errno;
            ms_qmp_socket_fail(client,
                               g_error_new(MS_QMP_ERROR, MS_QMP_ERROR_IO,
                                           "poll on QMP monitor %s: %s", sock->path,
                                           g_strerror(e)),
                               error);
            return NULL;
        }
        if (r <= 0)
            continue;
        gsize got;
        if (!ms_qmp_socket_read(client, &got, &local)) {
            g_prefix_error(&local, "waiting for %s: ", what);
            ms_qmp_socket_fail(client, local, error);
            return NULL;
        }
    }
}

static gboolean
ms_qmp_socket_connect(MsQmpClient *client, GError **error)
{
    MsQmpSocket *sock = client->priv;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(sock->path) >= sizeof(addr.sun_path)) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO,
                    "QMP socket path '%s' is longer than %zu bytes", sock->path,
                    sizeof(addr.sun_path) - 1);
        return FALSE;
    }
    strcpy(addr.sun_path, sock->path);

    sock->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock->fd < 0) {
        int e = errno;
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO, "socket(AF_UNIX): %s", g_strerror(e));
        return FALSE;
    }
    int r;
    do
        r = connect(sock->fd, (struct sockaddr *)&addr, sizeof(addr));
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO, "cannot connect to QMP socket %s: %s",
                    sock->path, g_strerror(e));
        return FALSE;
    }
    /* Reads never block: every wait is a poll() with a deadline. */
    if (!g_unix_set_fd_nonblocking(sock->fd, TRUE, error))
        return FALSE;
    sock->stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);

    gint64 deadline = ms_qmp_socket_deadline(MS_QMP_DEFAULT_TIMEOUT_MS);
    g_autoptr(JsonObject) greeting = ms_qmp_socket_wait(client, "greeting", NULL, deadline,
                                                        MS_QMP_DEFAULT_TIMEOUT_MS, error);
    if (greeting == NULL)
        return FALSE;
    JsonNode *qmp = json_object_get_member(greeting, "QMP");
    JsonObject *q = JSON_NODE_HOLDS_OBJECT(qmp) ? json_node_get_object(qmp) : NULL;
    JsonNode *v = q ? json_object_get_member(q, "version") : NULL;
    JsonObject *vo = v && JSON_NODE_HOLDS_OBJECT(v) ? json_node_get_object(v) : NULL;
    JsonNode *qemu = vo ? json_object_get_member(vo, "qemu") : NULL;
    g_autoptr(GError) local = NULL;
    client->version = ms_qmp_version_from_object(
        qemu && JSON_NODE_HOLDS_OBJECT(qemu) ? json_node_get_object(qemu) : NULL, &local);
    if (client->version == NULL) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "%s: QMP greeting has no usable QMP.version.qemu: %s", sock->path,
                    local->message);
        return FALSE;
    }
    return TRUE;
}

static JsonObject *
ms_qmp_socket_call(MsQmpClient *client, const char *command, JsonObject *arguments,
                   const char *id, guint timeout_ms, GError **error)
{
    MsQmpSocket *sock = client->priv;
    if (sock->fd < 0) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED,
                    "cannot run '%s': QMP monitor %s is not connected", command, sock->path);
        return NULL;
    }
    gint64 deadline = ms_qmp_socket_deadline(timeout_ms);
    g_autofree char *text = ms_qmp_build_command(command, arguments, id);
    g_autofree char *line = g_strconcat(text, "\r\n", NULL);
    if (!ms_qmp_socket_write_all(client, command, line, strlen(line), deadline, error))
        return NULL;
    g_autofree char *what = g_strdup_printf("reply to '%s'", command);
    JsonObject *reply = ms_qmp_socket_wait(client, what, id, deadline, timeout_ms, error);
    if (reply != NULL)
        ms_qmp_socket_drain(client);
    return reply;
}

static gboolean
ms_qmp_socket_readable(gint fd, GIOCondition condition, gpointer user_data)
{
    MsQmpClient *client = user_data;
    MsQmpSocket *sock = client->priv;
    GError *local = NULL;
    gsize got;

    if (!ms_qmp_socket_read(client, &got, &local)) {
        ms_qmp_socket_fail(client, local, NULL);
        return G_SOURCE_REMOVE; /* already destroyed by close */
    }
    ms_qmp_socket_drain(client);
    return sock->fd >= 0 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
ms_qmp_socket_start(MsQmpClient *client, GError **error)
{
    MsQmpSocket *sock = client->priv;
    sock->watch = g_unix_fd_source_new(sock->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
    g_source_set_static_name(sock->watch, "ms-qmp-socket");
    g_source_set_callback(sock->watch, G_SOURCE_FUNC(ms_qmp_socket_readable), client, NULL);
    g_source_attach(sock->watch, client->context);
    /* Events read during connect are already queued. */
    return TRUE;
}

static const MsQmpTransport ms_qmp_socket_transport = {
    .name = "socket",
    .connect = ms_qmp_socket_connect,
    .negotiate = TRUE,
    .start = ms_qmp_socket_start,
    .call = ms_qmp_socket_call,
    .close = ms_qmp_socket_close,
    .free = ms_qmp_socket_free,
};

MsQmpClient *
ms_qmp_client_new_socket(const char *socket_path)
{
    g_return_val_if_fail(socket_path != NULL, NULL);
    MsQmpSocket *sock = g_new0(MsQmpSocket, 1);
    sock->path = g_strdup(socket_path);
    sock->fd = -1;
    return ms_qmp_client_new_with_transport(&ms_qmp_socket_transport, sock, NULL);
}
