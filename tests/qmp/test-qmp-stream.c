/* tests/qmp/test-qmp-stream.c: QMP framing (qmp-plugin/ms-qmp-stream.c) on
 * buffers: the transcripts recorded from QEMU 7.2 fed whole and byte by
 * byte, and a table of hostile inputs. */
#include "ms-qmp-stream.h"
#include "ms-qmp.h"

#include <string.h>

/* The "S:" lines of a transcript, i.e. what QEMU sent, in order. */
static GPtrArray *
load_server_lines(const char *name)
{
    g_autofree char *path = g_test_build_filename(G_TEST_DIST, "data", name, NULL);
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, &error));
    g_assert_no_error(error);
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    g_auto(GStrv) all = g_strsplit(text, "\n", -1);
    for (guint i = 0; all[i]; i++)
        if (g_str_has_prefix(all[i], "S: "))
            g_ptr_array_add(lines, g_strdup(all[i] + 3));
    return lines;
}

static JsonNode *
parse(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(p, text, -1, &error));
    return json_node_copy(json_parser_get_root(p));
}

static void
check_transcript(const char *name, gsize chunk)
{
    g_autoptr(GPtrArray) lines = load_server_lines(name);
    g_assert_cmpuint(lines->len, >, 0);
    g_autoptr(GString) wire = g_string_new(NULL);
    for (guint i = 0; i < lines->len; i++)
        g_string_append_printf(wire, "%s\r\n", (char *)lines->pdata[i]);

    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
    guint n = 0;
    for (gsize off = 0; off < wire->len; off += chunk) {
        ms_qmp_stream_feed(stream, wire->str + off, MIN(chunk, wire->len - off));
        for (;;) {
            g_autoptr(GError) error = NULL;
            g_autoptr(JsonObject) obj = ms_qmp_stream_pop(stream, &error);
            g_assert_no_error(error);
            if (obj == NULL)
                break;
            g_assert_cmpuint(n, <, lines->len);
            g_autoptr(JsonNode) want = parse(lines->pdata[n]);
            g_autoptr(JsonNode) got = json_node_init_object(json_node_alloc(), obj);
            g_assert_true(json_node_equal(want, got));
            n++;
        }
    }
    g_assert_cmpuint(n, ==, lines->len);
    g_assert_cmpuint(ms_qmp_stream_pending(stream), ==, 0);
}

static const char *const transcripts[] = {
    "greeting.txt", "query-version.txt", "query-balloon.txt", "query-memdev.txt",
    "balloon.txt", "error-command-not-found.txt", "error-bad-argument.txt",
    "events-cont-stop.txt", "synthetic-event-before-caps.txt",
    "synthetic-events-while-waiting.txt",
};

static void
test_transcript_whole(gconstpointer data)
{
    check_transcript(data, G_MAXSIZE / 2);
}

static void
test_transcript_bytewise(gconstpointer data)
{
    check_transcript(data, 1);
}

/* Feeds input (all at once, or byte by byte) and pops until an error or
 * the input is used up; returns the messages popped as compact JSON joined
 * by '|', and the first error. */
static char *
run(const char *input, gsize len, gsize max, gboolean bytewise, GError **error)
{
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(max);
    g_autoptr(GString) out = g_string_new(NULL);
    gsize step = bytewise ? 1 : len;
    for (gsize off = 0; off < len; off += step) {
        ms_qmp_stream_feed(stream, input + off, MIN(step, len - off));
        for (;;) {
            GError *local = NULL;
            g_autoptr(JsonObject) obj = ms_qmp_stream_pop(stream, &local);
            if (local != NULL) {
                g_propagate_error(error, local);
                return g_string_free(g_steal_pointer(&out), FALSE);
            }
            if (obj == NULL)
                break;
            g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);
            g_autofree char *text = json_to_string(node, FALSE);
            if (out->len)
                g_string_append_c(out, '|');
            g_string_append(out, text);
        }
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

typedef struct {
    const char *name;
    const char *input;
    const char *output; /* messages popped before the end or the error */
    int error;          /* -1: none */
    const char *message; /* substring of the error message */
} StreamCase;

static const StreamCase stream_cases[] = {
    { "crlf-and-blank", "\r\n {\"a\":1}\r\n\r\n\t{\"b\":2}\n", "{\"a\":1}|{\"b\":2}", -1, NULL },
    { "brace-in-string", "{\"desc\":\"a } and a { and \\\"}\\\\\"}\r\n",
      "{\"desc\":\"a } and a { and \\\"}\\\\\"}", -1, NULL },
    { "incomplete", "{\"return\": {\"actual\": 1", "", -1, NULL },
    { "incomplete-string", "{\"return\": \"}}}}", "", -1, NULL },
    { "nested-arrays", "{\"return\":[[1,[2]],{\"x\":[]}]}", "{\"return\":[[1,[2]],{\"x\":[]}]}",
      -1, NULL },
    { "garbage-before", "(qemu) {\"a\":1}", "", MS_QMP_ERROR_PROTOCOL, "unexpected byte 0x28" },
    { "garbage-between", "{\"a\":1}\r\nx{\"b\":2}", "{\"a\":1}", MS_QMP_ERROR_PROTOCOL,
      "unexpected byte 0x78" },
    { "not-an-object", "[1,2]", "", MS_QMP_ERROR_PROTOCOL, "unexpected byte 0x5b" },
    { "invalid-json", "{\"return\": {\"actual\": }}\r\n{\"b\":2}", "", MS_QMP_ERROR_PROTOCOL,
      "invalid JSON" },
    { "bad-literal", "{\"a\": nope}", "", MS_QMP_ERROR_PROTOCOL, "invalid JSON" },
    { "unbalanced", "{\"a\": 1]]", "", MS_QMP_ERROR_PROTOCOL, "invalid JSON" },
    { "nul-byte", "{\"a\": \"x\0y\"}", "", MS_QMP_ERROR_PROTOCOL, "invalid JSON" },
};

static void
test_stream_case(gconstpointer data)
{
    const StreamCase *c = data;
    /* nul-byte needs its real length */
    gsize len = strlen(c->input);
    if (g_str_equal(c->name, "nul-byte"))
        len = sizeof("{\"a\": \"x\0y\"}") - 1;
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *out = run(c->input, len, MS_QMP_MAX_MESSAGE, bytewise, &error);
        g_assert_cmpstr(out, ==, c->output);
        if (c->error < 0) {
            g_assert_no_error(error);
        } else {
            g_assert_error(error, MS_QMP_ERROR, c->error);
            g_assert_nonnull(strstr(error->message, c->message));
        }
    }
}

/* An object with balanced braces but bad contents does not desynchronise
 * the stream: the next message is still read. */
static void
test_stream_recovers_after_invalid(void)
{
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
    const char *in = "{\"a\": }\r\n{\"b\": 2}\r\n";
    ms_qmp_stream_feed(stream, in, strlen(in));
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonObject) bad = ms_qmp_stream_pop(stream, &error);
    g_assert_null(bad);
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL);
    g_clear_error(&error);
    g_autoptr(JsonObject) good = ms_qmp_stream_pop(stream, &error);
    g_assert_no_error(error);
    g_assert_nonnull(good);
    g_assert_cmpint(json_object_get_int_member(good, "b"), ==, 2);
}

/* Framing errors stick: later good input is not read. */
static void
test_stream_garbage_is_sticky(void)
{
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
    ms_qmp_stream_feed(stream, "x", 1);
    g_autoptr(GError) error = NULL;
    g_assert_null(ms_qmp_stream_pop(stream, &error));
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL);
    g_clear_error(&error);
    ms_qmp_stream_feed(stream, "{\"a\":1}", 7);
    g_assert_null(ms_qmp_stream_pop(stream, &error));
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL);
    g_assert_cmpuint(ms_qmp_stream_pending(stream), ==, 0);
}

static void
test_stream_too_big_incomplete(void)
{
    /* Never completes: the bound applies before the end is seen. */
    gsize len = MS_QMP_MAX_MESSAGE + 100;
    g_autofree char *big = g_malloc(len);
    memset(big, 'x', len);
    memcpy(big, "{\"return\": \"", 12);
    g_autoptr(MsQmpStream) stream = ms_qmp_stream_new(MS_QMP_MAX_MESSAGE);
    g_autoptr(GError) error = NULL;
    gsize off = 0;
    JsonObject *obj = NULL;
    for (; off < len && error == NULL; off += 65536) {
        ms_qmp_stream_feed(stream, big + off, MIN(65536, len - off));
        obj = ms_qmp_stream_pop(stream, &error);
        g_assert_null(obj);
    }
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_TOO_BIG);
    g_assert_nonnull(strstr(error->message, "exceeds"));
}

static void
test_stream_too_big_complete(void)
{
    /* Complete in one feed but over the bound (a small bound here). */
    const char *in = "{\"return\": \"0123456789012345678901234567890123456789\"}";
    g_autoptr(GError) error = NULL;
    g_autofree char *out = run(in, strlen(in), 32, FALSE, &error);
    g_assert_cmpstr(out, ==, "");
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_TOO_BIG);
    /* Exactly at the bound is fine. */
    g_clear_error(&error);
    g_free(out);
    out = run(in, strlen(in), strlen(in), FALSE, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(out, ==, "{\"return\":\"0123456789012345678901234567890123456789\"}");
}

static void
test_stream_too_deep(void)
{
    g_autoptr(GString) s = g_string_new("{\"a\":");
    for (int i = 0; i < 100000; i++)
        g_string_append_c(s, '[');
    g_autoptr(GError) error = NULL;
    g_autofree char *out = run(s->str, s->len, MS_QMP_MAX_MESSAGE, FALSE, &error);
    g_assert_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL);
    g_assert_nonnull(strstr(error->message, "nests deeper"));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(transcripts); i++) {
        g_autofree char *p1 = g_strdup_printf("/qmp/stream/transcript/whole/%s", transcripts[i]);
        g_autofree char *p2 = g_strdup_printf("/qmp/stream/transcript/bytewise/%s", transcripts[i]);
        g_test_add_data_func(p1, transcripts[i], test_transcript_whole);
        g_test_add_data_func(p2, transcripts[i], test_transcript_bytewise);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(stream_cases); i++) {
        g_autofree char *p = g_strdup_printf("/qmp/stream/case/%s", stream_cases[i].name);
        g_test_add_data_func(p, &stream_cases[i], test_stream_case);
    }
    g_test_add_func("/qmp/stream/recovers-after-invalid", test_stream_recovers_after_invalid);
    g_test_add_func("/qmp/stream/garbage-is-sticky", test_stream_garbage_is_sticky);
    g_test_add_func("/qmp/stream/too-big-incomplete", test_stream_too_big_incomplete);
    g_test_add_func("/qmp/stream/too-big-complete", test_stream_too_big_complete);
    g_test_add_func("/qmp/stream/too-deep", test_stream_too_deep);
    return g_test_run();
}
