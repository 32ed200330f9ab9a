/* tests/qmp/test-qmp-client.c: the QMP client (qmp-plugin/ms-qmp.c with the
 * socket transport) against the fake monitor of tests/lib/fake-qmp.c
 * replaying transcripts from tests/qmp/data/ on a real unix socket. The
 * recorded transcripts are their own expectations: each command's result must equal the recorded
 * reply, and each event must reach the handler, in order. */
#include "fake-qmp.h"
#include "ms-qmp.h"
#include "ms-qmp-stream.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- what the client's handlers saw ----------------------------------------- */

typedef struct {
    GPtrArray *events; /* "NAME seconds.micros data-json" */
    guint closed;
    GError *reason;
} Seen;

static char *
event_string(const char *event, JsonObject *data, gint64 seconds, gint64 micros)
{
    g_autofree char *d = NULL;
    if (data != NULL) {
        g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), data);
        d = json_to_string(n, FALSE);
    }
    return g_strdup_printf("%s %" G_GINT64_FORMAT ".%06" G_GINT64_FORMAT " %s", event, seconds,
                           micros, d ? d : "null");
}

static void
on_event(MsQmpClient *client, const char *event, JsonObject *data, gint64 seconds, gint64 micros,
         gpointer user_data)
{
    Seen *seen = user_data;
    g_ptr_array_add(seen->events, event_string(event, data, seconds, micros));
}

static void
on_closed(MsQmpClient *client, const GError *reason, gpointer user_data)
{
    Seen *seen = user_data;
    seen->closed++;
    g_clear_error(&seen->reason);
    seen->reason = reason ? g_error_copy(reason) : NULL;
}

static void
seen_init(Seen *seen)
{
    seen->events = g_ptr_array_new_with_free_func(g_free);
    seen->closed = 0;
    seen->reason = NULL;
}

static void
seen_clear(Seen *seen)
{
    g_ptr_array_unref(seen->events);
    g_clear_error(&seen->reason);
}

static MsQmpClient *
client_new(MsFakeQmp *peer, Seen *seen)
{
    MsQmpClient *client = ms_qmp_client_new_socket(ms_fake_qmp_socket(peer));
    ms_qmp_client_set_event_handler(client, on_event, seen);
    ms_qmp_client_set_closed_handler(client, on_closed, seen);
    return client;
}

/* Runs the main context until nothing is pending (events are dispatched
 * from idle sources, so a non-blocking pass is enough). */
static void
drain_main_context(void)
{
    while (g_main_context_iteration(NULL, FALSE))
        ;
}

/* ---- replay: recorded transcripts are their own expectations --------------- */

typedef struct {
    const char *name;
    gboolean bytewise;
} ReplayCase;

static void
test_replay(gconstpointer data)
{
    const ReplayCase *rc = data;
    g_autoptr(GPtrArray) script = ms_fake_qmp_load(rc->name);
    MsFakeQmp *peer = ms_fake_qmp_start(script, rc->bytewise);
    Seen seen;
    seen_init(&seen);
    g_autoptr(GPtrArray) want_events = g_ptr_array_new_with_free_func(g_free);

    MsQmpClient *client = client_new(peer, &seen);
    g_assert_null(ms_qmp_client_get_qemu_version(client));
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_qmp_client_connect(client, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(ms_qmp_client_get_qemu_version(client), ==, "7.2.22");

    for (guint i = 0; i < script->len; i++) {
        const char *line = script->pdata[i];
        if (!g_str_has_prefix(line, "S: "))
            continue;
        g_autoptr(JsonObject) msg = ms_fake_qmp_parse_object(line + 3);
        if (!json_object_has_member(msg, "event"))
            continue;
        JsonObject *ts = json_object_get_object_member(msg, "timestamp");
        g_ptr_array_add(want_events,
                        event_string(json_object_get_string_member(msg, "event"),
                                     json_object_has_member(msg, "data")
                                         ? json_object_get_object_member(msg, "data")
                                         : NULL,
                                     json_object_get_int_member(ts, "seconds"),
                                     json_object_get_int_member(ts, "microseconds")));
    }

    gboolean first = TRUE; /* qmp_capabilities: connect() sent it */
    for (guint i = 0; i < script->len; i++) {
        const char *line = script->pdata[i];
        if (!g_str_has_prefix(line, "C: "))
            continue;
        if (first) {
            first = FALSE;
            continue;
        }
        g_autoptr(JsonObject) cmd = ms_fake_qmp_parse_object(line + 3);
        const char *id = json_object_get_string_member(cmd, "id");
        /* The recorded reply: the next S: line with this id. */
        g_autoptr(JsonObject) reply = NULL;
        for (guint j = i + 1; j < script->len && reply == NULL; j++) {
            const char *l = script->pdata[j];
            if (!g_str_has_prefix(l, "S: "))
                continue;
            g_autoptr(JsonObject) m = ms_fake_qmp_parse_object(l + 3);
            if (g_strcmp0(json_object_get_string_member_with_default(m, "id", NULL), id) == 0)
                reply = g_steal_pointer(&m);
        }
        g_assert_nonnull(reply);
        JsonObject *args = json_object_has_member(cmd, "arguments")
                               ? json_object_get_object_member(cmd, "arguments")
                               : NULL;
        const char *execute = json_object_get_string_member(cmd, "execute");
        g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, execute, args, &error);
        if (json_object_has_member(reply, "error")) {
            JsonObject *e = json_object_get_object_member(reply, "error");
            g_autofree char *msg = g_strdup_printf("%s: %s",
                                                   json_object_get_string_member(e, "class"),
                                                   json_object_get_string_member(e, "desc"));
            g_assert_null(ret);
            g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_COMMAND);
            g_assert_cmpstr(error->message, ==, msg);
            g_clear_error(&error);
        } else {
            g_assert_no_error(error);
            g_assert_nonnull(ret);
            g_assert_true(json_node_equal(ret, json_object_get_member(reply, "return")));
        }
    }

    /* Events are delivered from the main loop, never inside execute(). */
    g_assert_cmpuint(seen.events->len, ==, 0);
    drain_main_context();
    g_assert_cmpuint(seen.events->len, ==, want_events->len);
    for (guint i = 0; i < want_events->len; i++)
        g_assert_cmpstr(seen.events->pdata[i], ==, want_events->pdata[i]);
    g_assert_cmpuint(seen.closed, ==, 0);

    ms_qmp_client_free(client);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
}

/* ---- failures ---------------------------------------------------------------- */

/* Connects to a peer replaying name, runs query-balloon with timeout_ms,
 * and checks it fails with code and a message holding message. */
static void
check_command_fails(const char *name, GPtrArray *script, guint timeout_ms, int code,
                    const char *message, gboolean expect_closed)
{
    if (script == NULL)
        script = ms_fake_qmp_load(name);
    else
        g_ptr_array_ref(script);
    MsFakeQmp *peer = ms_fake_qmp_start(script, FALSE);
    Seen seen;
    seen_init(&seen);
    MsQmpClient *client = client_new(peer, &seen);
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_qmp_client_connect(client, &error));
    g_assert_no_error(error);

    g_autoptr(JsonNode) ret = ms_qmp_client_execute_timeout(client, "query-balloon", NULL,
                                                            timeout_ms, &error);
    g_assert_null(ret);
    g_assert_error(error, MS_QMP_ERROR, code);
    g_test_message("%s: %s", name, error->message);
    g_assert_nonnull(strstr(error->message, message));
    g_clear_error(&error);

    drain_main_context();
    g_assert_cmpuint(seen.closed, ==, expect_closed ? 1 : 0);
    if (expect_closed) {
        g_assert_nonnull(seen.reason);
        g_assert_true(seen.reason->code == code);
        /* A dead connection fails fast and does not notify again. */
        g_autoptr(JsonNode) again = ms_qmp_client_execute(client, "query-balloon", NULL, &error);
        g_assert_null(again);
        g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED);
        drain_main_context();
        g_assert_cmpuint(seen.closed, ==, 1);
    } else {
        /* Still connected: a second command times out the same way. */
        g_autoptr(JsonNode) again = ms_qmp_client_execute_timeout(client, "query-balloon", NULL,
                                                                  timeout_ms, &error);
        g_assert_null(again);
        g_assert_error(error, MS_QMP_ERROR, code);
    }
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
    g_ptr_array_unref(script);
}

static void
test_malformed_reply(void)
{
    check_command_fails("synthetic-malformed-reply.txt", NULL, MS_QMP_DEFAULT_TIMEOUT_MS,
                        MS_QMP_ERROR_PROTOCOL, "invalid JSON", TRUE);
}

static void
test_garbage(void)
{
    check_command_fails("synthetic-garbage.txt", NULL, MS_QMP_DEFAULT_TIMEOUT_MS,
                        MS_QMP_ERROR_PROTOCOL, "unexpected byte 0x28", TRUE);
}

static void
test_closed_mid_reply(void)
{
    check_command_fails("synthetic-closed-mid-reply.txt", NULL, MS_QMP_DEFAULT_TIMEOUT_MS,
                        MS_QMP_ERROR_CLOSED, "closed the connection", TRUE);
}

static void
test_timeout(void)
{
    check_command_fails("synthetic-no-answer.txt", NULL, 100, MS_QMP_ERROR_TIMEOUT,
                        "sent no reply to 'query-balloon' within 100 ms", FALSE);
}

static void
test_oversize(void)
{
    g_autoptr(GPtrArray) script = ms_fake_qmp_load("query-balloon.txt");
    /* Replace the recorded reply with one past the bound. */
    g_ptr_array_remove_index(script, script->len - 1);
    g_ptr_array_add(script, g_strdup_printf("BIG: %d", MS_QMP_MAX_MESSAGE + 4096));
    check_command_fails("oversize", script, MS_QMP_DEFAULT_TIMEOUT_MS, MS_QMP_ERROR_TOO_BIG,
                        "exceeds", TRUE);
}

static void
test_late_reply_dropped(void)
{
    g_autoptr(GPtrArray) script = ms_fake_qmp_load("synthetic-late-reply.txt");
    MsFakeQmp *peer = ms_fake_qmp_start(script, FALSE);
    Seen seen;
    seen_init(&seen);
    MsQmpClient *client = client_new(peer, &seen);
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_qmp_client_connect(client, &error));
    /* The peer answers query-balloon only once query-version arrived. */
    g_autoptr(JsonNode) balloon = ms_qmp_client_execute_timeout(client, "query-balloon", NULL,
                                                                50, &error);
    g_assert_null(balloon);
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_TIMEOUT);
    g_clear_error(&error);
    g_autoptr(JsonNode) version = ms_qmp_client_execute(client, "query-version", NULL, &error);
    g_assert_no_error(error);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(version));
    g_assert_true(json_object_has_member(json_node_get_object(version), "qemu"));
    g_assert_false(json_object_has_member(json_node_get_object(version), "actual"));
    drain_main_context();
    g_assert_cmpuint(seen.closed, ==, 0);
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
}

static void
check_connect_fails(const char *name, int code, const char *message)
{
    g_autoptr(GPtrArray) script = ms_fake_qmp_load(name);
    MsFakeQmp *peer = ms_fake_qmp_start(script, FALSE);
    Seen seen;
    seen_init(&seen);
    MsQmpClient *client = client_new(peer, &seen);
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_qmp_client_connect(client, &error));
    g_assert_error(error, MS_QMP_ERROR, code);
    g_test_message("%s: %s", name, error->message);
    g_assert_nonnull(strstr(error->message, message));
    g_assert_null(ms_qmp_client_get_qemu_version(client));
    drain_main_context();
    /* connect() reported it; the closed handler is for later losses. */
    g_assert_cmpuint(seen.closed, ==, 0);
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
}

static void
test_greeting_no_version(void)
{
    check_connect_fails("synthetic-greeting-no-version.txt", MS_QMP_ERROR_PROTOCOL,
                        "QMP.version.qemu");
}

static void
test_not_a_greeting(void)
{
    check_connect_fails("synthetic-not-a-greeting.txt", MS_QMP_ERROR_PROTOCOL,
                        "not a QMP greeting");
}

static void
test_closed_before_greeting(void)
{
    check_connect_fails("synthetic-closed-before-greeting.txt", MS_QMP_ERROR_CLOSED,
                        "closed the connection");
}

static void
test_caps_error(void)
{
    /* QEMU refusing qmp_capabilities fails connect with its reason. */
    g_autoptr(GPtrArray) script = ms_fake_qmp_load("error-command-not-found.txt");
    g_autoptr(GPtrArray) edited = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(edited, g_strdup(script->pdata[0]));
    g_ptr_array_add(edited, g_strdup(script->pdata[1]));
    g_ptr_array_add(edited, g_strdup("S: {\"id\": \"rec-1\", \"error\": {\"class\": "
                                     "\"CommandNotFound\", \"desc\": \"Capabilities "
                                     "negotiation is already complete, command ignored\"}}"));
    MsFakeQmp *peer = ms_fake_qmp_start(edited, FALSE);
    Seen seen;
    seen_init(&seen);
    MsQmpClient *client = client_new(peer, &seen);
    g_autoptr(GError) error = NULL;
    g_assert_false(ms_qmp_client_connect(client, &error));
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_COMMAND);
    g_assert_cmpstr(error->message, ==, "qmp_capabilities: CommandNotFound: Capabilities "
                                        "negotiation is already complete, command ignored");
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
}

static void
test_event_then_close(void)
{
    g_autoptr(GPtrArray) script = ms_fake_qmp_load("synthetic-event-then-close.txt");
    MsFakeQmp *peer = ms_fake_qmp_start(script, FALSE);
    Seen seen;
    seen_init(&seen);
    MsQmpClient *client = client_new(peer, &seen);
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_qmp_client_connect(client, &error));
    g_assert_no_error(error);
    /* Idle: the socket watch reads the event, then EOF. */
    while (seen.closed == 0)
        g_main_context_iteration(NULL, TRUE);
    drain_main_context();
    g_assert_cmpuint(seen.events->len, ==, 1);
    g_assert_cmpstr(seen.events->pdata[0], ==,
                    "SHUTDOWN 1795362480.000005 {\"guest\":false,\"reason\":\"host-qmp-quit\"}");
    g_assert_cmpuint(seen.closed, ==, 1);
    g_assert_error(seen.reason, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED);
    g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, "query-balloon", NULL, &error);
    g_assert_null(ret);
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED);
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
}

/* Freeing the client with events still queued drops them quietly. */
static void
test_free_with_pending_events(void)
{
    g_autoptr(GPtrArray) script = ms_fake_qmp_load("events-cont-stop.txt");
    MsFakeQmp *peer = ms_fake_qmp_start(script, FALSE);
    Seen seen;
    seen_init(&seen);
    MsQmpClient *client = client_new(peer, &seen);
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_qmp_client_connect(client, &error));
    g_autoptr(JsonNode) r1 = ms_qmp_client_execute(client, "cont", NULL, &error);
    g_assert_no_error(error);
    g_autoptr(JsonNode) r2 = ms_qmp_client_execute(client, "stop", NULL, &error);
    g_assert_no_error(error);
    ms_qmp_client_free(client);
    drain_main_context();
    g_assert_cmpuint(seen.events->len, ==, 0);
    ms_fake_qmp_finish(peer);
    seen_clear(&seen);
}

static void
test_connect_missing_socket(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MsQmpClient) client = ms_qmp_client_new_socket("/nonexistent/ms-qmp.sock");
    g_assert_false(ms_qmp_client_connect(client, &error));
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_IO);
    g_assert_nonnull(strstr(error->message, "/nonexistent/ms-qmp.sock"));
}

static void
test_execute_unconnected(void)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MsQmpClient) client = ms_qmp_client_new_socket("/nonexistent/ms-qmp.sock");
    g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, "query-balloon", NULL, &error);
    g_assert_null(ret);
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_CLOSED);
    g_assert_nonnull(strstr(error->message, "query-balloon"));
}

static const char *const replay_files[] = {
    "greeting.txt", "query-version.txt", "query-balloon.txt", "query-memdev.txt",
    "balloon.txt", "error-command-not-found.txt", "error-bad-argument.txt",
    "events-cont-stop.txt", "synthetic-event-before-caps.txt",
    "synthetic-events-while-waiting.txt",
};

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    static ReplayCase cases[2 * G_N_ELEMENTS(replay_files)];
    for (gsize i = 0; i < G_N_ELEMENTS(replay_files); i++) {
        for (int b = 0; b <= 1; b++) {
            ReplayCase *rc = &cases[2 * i + b];
            rc->name = replay_files[i];
            rc->bytewise = b;
            g_autofree char *p = g_strdup_printf("/qmp/client/replay/%s/%s",
                                                 b ? "bytewise" : "whole", rc->name);
            g_test_add_data_func(p, rc, test_replay);
        }
    }
    g_test_add_func("/qmp/client/malformed-reply", test_malformed_reply);
    g_test_add_func("/qmp/client/garbage", test_garbage);
    g_test_add_func("/qmp/client/closed-mid-reply", test_closed_mid_reply);
    g_test_add_func("/qmp/client/timeout", test_timeout);
    g_test_add_func("/qmp/client/oversize", test_oversize);
    g_test_add_func("/qmp/client/late-reply-dropped", test_late_reply_dropped);
    g_test_add_func("/qmp/client/greeting-no-version", test_greeting_no_version);
    g_test_add_func("/qmp/client/not-a-greeting", test_not_a_greeting);
    g_test_add_func("/qmp/client/closed-before-greeting", test_closed_before_greeting);
    g_test_add_func("/qmp/client/capabilities-error", test_caps_error);
    g_test_add_func("/qmp/client/event-then-close", test_event_then_close);
    g_test_add_func("/qmp/client/free-with-pending-events", test_free_with_pending_events);
    g_test_add_func("/qmp/client/connect-missing-socket", test_connect_missing_socket);
    g_test_add_func("/qmp/client/execute-unconnected", test_execute_unconnected);
    return g_test_run();
}
