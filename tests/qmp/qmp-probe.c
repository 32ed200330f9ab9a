/* tests/qmp/qmp-probe.c: drives the QMP client against a live monitor for
 * the 'qemu' and 'libvirt' suites (test-qmp-qemu.sh, test-qmp-libvirt.sh):
 *   qmp-probe socket PATH
 *   qmp-probe libvirt URI DOMAIN
 * Checks the version, query-balloon, an error reply, and that the STOP and
 * RESUME events caused by cont/stop reach the handler in this thread; with
 * a socket, "quit" must end in the closed handler. Prints what it saw and
 * exits non-zero on the first mismatch. Output lines are TAP comments. */
#include "ms-qmp.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    GThread *main_thread;
    GString *events;
    gboolean wrong_thread;
    gboolean closed;
} Probe;

static void
on_event(MsQmpClient *client, const char *event, JsonObject *data, gint64 seconds,
         gint64 micros, gpointer user_data)
{
    Probe *p = user_data;
    printf("# event %s at %" G_GINT64_FORMAT ".%06" G_GINT64_FORMAT "\n", event, seconds, micros);
    if (g_thread_self() != p->main_thread)
        p->wrong_thread = TRUE;
    /* Only the events our commands cause; a guest may add others. */
    if (g_str_equal(event, "STOP") || g_str_equal(event, "RESUME"))
        g_string_append_printf(p->events, "%s%s", p->events->len ? "," : "", event);
}

static void
on_closed(MsQmpClient *client, const GError *reason, gpointer user_data)
{
    Probe *p = user_data;
    printf("# closed: %s\n", reason ? reason->message : "(no reason)");
    p->closed = TRUE;
}

static gboolean
on_guard(gpointer user_data)
{
    *(gboolean *)user_data = TRUE;
    return G_SOURCE_REMOVE;
}

#define FAIL(...) do { fprintf(stderr, "qmp-probe: " __VA_ARGS__); fputc('\n', stderr); return 1; } while (0)

int
main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MsQmpClient) client = NULL;
    gboolean is_socket = argc == 3 && g_str_equal(argv[1], "socket");

    if (is_socket) {
        client = ms_qmp_client_new_socket(argv[2]);
    } else if (argc == 4 && g_str_equal(argv[1], "libvirt")) {
        if (!ms_qmp_libvirt_event_loop_start(g_main_context_default(), &error))
            FAIL("%s", error->message);
        virConnectPtr conn = virConnectOpen(argv[2]);
        if (conn == NULL)
            FAIL("cannot open %s: %s", argv[2], virGetLastErrorMessage());
        virDomainPtr dom = virDomainLookupByName(conn, argv[3]);
        if (dom == NULL)
            FAIL("no domain %s: %s", argv[3], virGetLastErrorMessage());
        client = ms_qmp_client_new_libvirt(conn, dom);
        /* The client holds its own references. */
        virDomainFree(dom);
        virConnectClose(conn);
    } else {
        FAIL("usage: qmp-probe socket PATH | qmp-probe libvirt URI DOMAIN");
    }

    Probe p = { .main_thread = g_thread_self(), .events = g_string_new(NULL) };
    ms_qmp_client_set_event_handler(client, on_event, &p);
    ms_qmp_client_set_closed_handler(client, on_closed, &p);
    if (!ms_qmp_client_connect(client, &error))
        FAIL("connect: %s", error->message);
    const char *version = ms_qmp_client_get_qemu_version(client);
    printf("# version %s\n", version);
    if (version == NULL || !g_str_has_prefix(version, "7.2."))
        FAIL("expected QEMU 7.2.x, got %s", version ? version : "(null)");

    g_autoptr(JsonNode) balloon = ms_qmp_client_execute(client, "query-balloon", NULL, &error);
    if (balloon == NULL)
        FAIL("query-balloon: %s", error->message);
    if (!JSON_NODE_HOLDS_OBJECT(balloon) ||
        json_object_get_int_member_with_default(json_node_get_object(balloon), "actual", 0) <= 0)
        FAIL("query-balloon: no positive 'actual'");
    printf("# query-balloon: actual %" G_GINT64_FORMAT "\n",
           json_object_get_int_member(json_node_get_object(balloon), "actual"));

    g_autoptr(JsonNode) bad = ms_qmp_client_execute(client, "no-such-command", NULL, &error);
    if (bad != NULL || !g_error_matches(error, MS_QMP_ERROR, MS_QMP_ERROR_COMMAND) ||
        !g_str_has_prefix(error->message, "CommandNotFound: "))
        FAIL("no-such-command: expected a CommandNotFound error, got %s",
             error ? error->message : "success");
    printf("# no-such-command: %s\n", error->message);
    g_clear_error(&error);

    /* stop/cont cause STOP/RESUME only when they change the run state:
     * resume a paused (-S) guest first, then stop and resume it. */
    g_autoptr(JsonNode) status = ms_qmp_client_execute(client, "query-status", NULL, &error);
    if (status == NULL || !JSON_NODE_HOLDS_OBJECT(status))
        FAIL("query-status: %s", error ? error->message : "reply is not an object");
    gboolean running = json_object_get_boolean_member_with_default(json_node_get_object(status),
                                                                   "running", FALSE);
    const char *want = running ? "STOP,RESUME" : "RESUME,STOP,RESUME";
    const char *cmds[] = { "cont", "stop", "cont" };
    for (gsize i = running ? 1 : 0; i < G_N_ELEMENTS(cmds); i++) {
        g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, cmds[i], NULL, &error);
        if (ret == NULL)
            FAIL("%s: %s", cmds[i], error->message);
    }
    /* A safety net against hanging the suite, not a timing assertion. */
    gboolean expired = FALSE;
    guint guard = g_timeout_add_seconds(20, on_guard, &expired);
    while (!expired && !g_str_equal(p.events->str, want))
        g_main_context_iteration(NULL, TRUE);
    if (!g_str_equal(p.events->str, want))
        FAIL("expected events %s, got '%s'", want, p.events->str);
    if (p.wrong_thread)
        FAIL("an event handler ran outside the main thread");

    if (is_socket) {
        g_autoptr(JsonNode) ret = ms_qmp_client_execute(client, "quit", NULL, &error);
        if (ret == NULL)
            FAIL("quit: %s", error->message);
        while (!expired && !p.closed)
            g_main_context_iteration(NULL, TRUE);
        if (!p.closed)
            FAIL("QEMU quit but the closed handler was not called");
    }
    if (!expired)
        g_source_remove(guard);
    g_string_free(p.events, TRUE);
    printf("# all good\n");
    return 0;
}
