/* tests/lib/fake-qmp.c: the fake QEMU monitor of the unit tests (see
 * fake-qmp.h for the transcript format). */
#include "fake-qmp.h"
#include "ms-qmp-stream.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct _MsFakeQmp {
    char *dir;
    char *path;
    int listen_fd;
    GPtrArray *script;
    gboolean bytewise;
    GThread *thread;
    gint commands_left; /* atomic */
    char *failure;      /* what went wrong on the monitor's side */
};

GPtrArray *
ms_fake_qmp_load(const char *name)
{
    g_autofree char *path = g_path_is_absolute(name)
                                ? g_strdup(name)
                                : g_test_build_filename(G_TEST_DIST, "data", name, NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    if (!g_file_get_contents(path, &text, NULL, &error))
        g_error("transcript %s: %s", path, error->message);
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) all = g_strsplit(text, "\n", -1);
    for (guint i = 0; all[i]; i++)
        if (all[i][0] != '\0' && all[i][0] != '#')
            g_ptr_array_add(lines, g_strdup(all[i]));
    return lines;
}

void
ms_fake_qmp_substitute(GPtrArray *script, const char *placeholder, const char *value)
{
    g_autoptr(JsonNode) str = json_node_init_string(json_node_alloc(), value);
    g_autofree char *quoted = json_to_string(str, FALSE);
    g_autofree char *escaped = g_strndup(quoted + 1, strlen(quoted) - 2);
    for (guint i = 0; i < script->len; i++) {
        char *line = script->pdata[i];
        if (strstr(line, placeholder) == NULL)
            continue;
        g_auto(GStrv) parts = g_strsplit(line, placeholder, -1);
        script->pdata[i] = g_strjoinv(escaped, parts);
        g_free(line);
    }
}

JsonObject *
ms_fake_qmp_parse_object(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) error = NULL;
    if (!json_parser_load_from_data(p, text, -1, &error))
        g_error("transcript line '%s': %s", text, error->message);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)));
    return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

static gboolean
fake_send(MsFakeQmp *fake, int fd, const char *data, gsize len)
{
    gsize step = fake->bytewise ? 1 : len;
    for (gsize off = 0; off < len;) {
        ssize_t n = send(fd, data + off, MIN(step, len - off), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return FALSE;
        off += (gsize)n;
        if (fake->bytewise)
            g_usleep(20); /* let the client see the message in pieces */
    }
    return TRUE;
}

static gboolean
fake_send_object(MsFakeQmp *fake, int fd, JsonObject *msg)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), msg);
    g_autofree char *text = json_to_string(node, FALSE);
    g_autofree char *wire = g_strconcat(text, "\r\n", NULL);
    return fake_send(fake, fd, wire, strlen(wire));
}

/* The client's next command; NULL on EOF. */
static JsonObject *
fake_read_command(int fd, MsQmpStream *stream)
{
    for (;;) {
        g_autoptr(GError) error = NULL;
        JsonObject *obj = ms_qmp_stream_pop(stream, &error);
        if (obj != NULL || error != NULL)
            return obj;
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        ms_qmp_stream_feed(stream, buf, (gsize)n);
    }
}

static char *
object_text(JsonObject *o)
{
    g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), o);
    return json_to_string(n, FALSE);
}

static void
fake_fail(MsFakeQmp *fake, char *what)
{
    if (fake->failure == NULL)
        fake->failure = what;
    else
        g_free(what);
}

/* Answers a command the transcript does not have with a GenericError, so
 * that the client fails now instead of waiting for its timeout. */
static void
fake_refuse(MsFakeQmp *fake, int fd, JsonObject *got)
{
    g_autoptr(JsonObject) err = json_object_new();
    JsonObject *e = json_object_new();
    json_object_set_string_member(e, "class", "GenericError");
    json_object_set_string_member(e, "desc", "fake-qmp: not in the transcript");
    json_object_set_object_member(err, "error", e);
    if (json_object_has_member(got, "id"))
        json_object_set_member(err, "id", json_object_dup_member(got, "id"));
    fake_send_object(fake, fd, err);
}

static gpointer
fake_thread(gpointer data)
{
    MsFakeQmp *fake = data;
    int fd = accept(fake->listen_fd, NULL, NULL);
    if (fd < 0) {
        fake->failure = g_strdup_printf("accept: %s", g_strerror(errno));
        return NULL;
    }
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
    /* recorded id -> the id the client chose for that command */
    g_autoptr(GHashTable) ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    gboolean hang = FALSE;

    for (guint i = 0; i < fake->script->len && fake->failure == NULL; i++) {
        const char *line = fake->script->pdata[i];
        if (g_str_has_prefix(line, "S: ")) {
            g_autoptr(JsonObject) msg = ms_fake_qmp_parse_object(line + 3);
            const char *id = json_object_get_string_member_with_default(msg, "id", NULL);
            const char *client_id = id ? g_hash_table_lookup(ids, id) : NULL;
            if (client_id != NULL)
                json_object_set_string_member(msg, "id", client_id);
            fake_send_object(fake, fd, msg);
        } else if (g_str_has_prefix(line, "R: ")) {
            g_autofree char *raw = g_strcompress(line + 3);
            fake_send(fake, fd, raw, strlen(raw));
        } else if (g_str_has_prefix(line, "BIG: ")) {
            gsize n = g_ascii_strtoull(line + 5, NULL, 10);
            g_autofree char *big = g_malloc(n);
            memset(big, 'x', n);
            memcpy(big, "{\"return\": \"", 12);
            fake_send(fake, fd, big, n);
        } else if (g_str_has_prefix(line, "C: ")) {
            g_autoptr(JsonObject) want = ms_fake_qmp_parse_object(line + 3);
            g_autoptr(JsonObject) got = fake_read_command(fd, stream);
            if (got == NULL) {
                fake_fail(fake, g_strdup_printf("client sent no command for '%s'", line));
                break;
            }
            g_autoptr(JsonNode) want_args = json_object_dup_member(want, "arguments");
            g_autoptr(JsonNode) got_args = json_object_dup_member(got, "arguments");
            if (g_strcmp0(json_object_get_string_member_with_default(got, "execute", NULL),
                          json_object_get_string_member(want, "execute")) != 0 ||
                (want_args == NULL) != (got_args == NULL) ||
                (want_args && !json_node_equal(want_args, got_args)) ||
                !json_object_has_member(got, "id")) {
                g_autofree char *t = object_text(got);
                fake_fail(fake, g_strdup_printf("expected '%s', client sent %s", line, t));
                fake_refuse(fake, fd, got);
                break;
            }
            g_hash_table_insert(ids, g_strdup(json_object_get_string_member(want, "id")),
                                g_strdup(json_object_get_string_member(got, "id")));
            g_atomic_int_add(&fake->commands_left, -1);
        } else if (g_str_equal(line, "CLOSE")) {
            close(fd);
            return NULL;
        } else if (g_str_equal(line, "HANG")) {
            hang = TRUE;
            break;
        } else {
            fake_fail(fake, g_strdup_printf("bad transcript line '%s'", line));
        }
    }
    /* Stay until the client hangs up. After a hang whatever it sends is
     * ignored; otherwise a command past the transcript (or after a
     * mismatch) is a failure, and answered so that the client does not
     * wait for its timeout. */
    for (;;) {
        g_autoptr(JsonObject) got = fake_read_command(fd, stream);
        if (got == NULL)
            break;
        if (hang)
            continue;
        /* after a failure too: the first failure is the one reported */
        g_autofree char *t = object_text(got);
        fake_fail(fake, g_strdup_printf("command past the end of the transcript: %s", t));
        fake_refuse(fake, fd, got);
    }
    close(fd);
    return NULL;
}

MsFakeQmp *
ms_fake_qmp_start(GPtrArray *script, gboolean bytewise)
{
    MsFakeQmp *fake = g_new0(MsFakeQmp, 1);
    g_autoptr(GError) error = NULL;
    fake->dir = g_dir_make_tmp("ms-fake-qmp-XXXXXX", &error);
    g_assert_no_error(error);
    fake->path = g_build_filename(fake->dir, "qmp.sock", NULL);
    fake->script = g_ptr_array_ref(script);
    fake->bytewise = bytewise;
    for (guint i = 0; i < script->len; i++)
        if (g_str_has_prefix(script->pdata[i], "C: "))
            fake->commands_left++;
    fake->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(fake->listen_fd, >=, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_assert_cmpuint(strlen(fake->path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, fake->path);
    g_assert_cmpint(bind(fake->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    g_assert_cmpint(listen(fake->listen_fd, 1), ==, 0);
    fake->thread = g_thread_new("fake-qmp", fake_thread, fake);
    return fake;
}

const char *
ms_fake_qmp_socket(MsFakeQmp *fake)
{
    return fake->path;
}

MsQmpClient *
ms_fake_qmp_connect(MsFakeQmp *fake)
{
    MsQmpClient *client = ms_qmp_client_new_socket(fake->path);
    g_autoptr(GError) error = NULL;
    if (!ms_qmp_client_connect(client, &error))
        g_error("fake QMP monitor %s: %s", fake->path, error->message);
    return client;
}

guint
ms_fake_qmp_commands_left(MsFakeQmp *fake)
{
    return (guint)g_atomic_int_get(&fake->commands_left);
}

char *
ms_fake_qmp_finish_failure(MsFakeQmp *fake)
{
    g_thread_join(fake->thread);
    char *failure = g_steal_pointer(&fake->failure);
    close(fake->listen_fd);
    unlink(fake->path);
    g_rmdir(fake->dir);
    g_ptr_array_unref(fake->script);
    g_free(fake->path);
    g_free(fake->dir);
    g_free(fake);
    return failure;
}

void
ms_fake_qmp_finish(MsFakeQmp *fake)
{
    g_autofree char *failure = ms_fake_qmp_finish_failure(fake);
    g_assert_cmpstr(failure, ==, NULL);
}
