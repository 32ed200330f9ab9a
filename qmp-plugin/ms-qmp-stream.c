/* qmp-plugin/ms-qmp-stream.c: QMP framing. QMP sends one JSON object per
 * message; QEMU ends each with CRLF, but nothing in the protocol promises
 * that, so messages are delimited by scanning braces (aware of strings and
 * escapes, so a '}' inside a string does not end a message), then parsed
 * with json-glib. The peer is not trusted: sizes and nesting are bounded. */
#include "ms-qmp-stream.h"

#include "ms-qmp.h"

/* json-glib parses recursively; QMP replies nest a handful of levels. */
#define MS_QMP_STREAM_MAX_DEPTH 128

struct _MsQmpStream {
    GByteArray *buf;
    gsize max_message;
    /* Scanner state for the message starting at buf[0]: bytes scanned so
     * far, nesting depth, whether inside a string and after a backslash. */
    gsize scanned;
    guint depth;
    gboolean in_string;
    gboolean escape;
    GError *failed; /* sticky framing error */
};

MsQmpStream *
ms_qmp_stream_new(gsize max_message)
{
    MsQmpStream *stream = g_new0(MsQmpStream, 1);
    stream->buf = g_byte_array_new();
    stream->max_message = max_message;
    return stream;
}

void
ms_qmp_stream_free(MsQmpStream *stream)
{
    if (stream == NULL)
        return;
    g_byte_array_unref(stream->buf);
    g_clear_error(&stream->failed);
    g_free(stream);
}

void
ms_qmp_stream_feed(MsQmpStream *stream, const void *data, gsize len)
{
    /* Once failed, nothing more is read; keep memory bounded. */
    if (stream->failed == NULL && len > 0)
        g_byte_array_append(stream->buf, data, len);
}

gsize
ms_qmp_stream_pending(MsQmpStream *stream)
{
    return stream->buf->len;
}

static gboolean
ms_qmp_stream_is_space(guint8 c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static JsonObject *
ms_qmp_stream_fail(MsQmpStream *stream, GError **error, int code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static JsonObject *
ms_qmp_stream_fail(MsQmpStream *stream, GError **error, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    stream->failed = g_error_new_literal(MS_QMP_ERROR, code, msg);
    g_byte_array_set_size(stream->buf, 0);
    g_propagate_error(error, g_error_copy(stream->failed));
    return NULL;
}

static JsonObject *
ms_qmp_stream_parse(const guint8 *data, gsize len, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) local = NULL;
    if (!json_parser_load_from_data(parser, (const char *)data, (gssize)len, &local)) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "invalid JSON from QMP monitor: %s", local->message);
        return NULL;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "QMP message is not a JSON object");
        return NULL;
    }
    return json_object_ref(json_node_get_object(root));
}

JsonObject *
ms_qmp_stream_pop(MsQmpStream *stream, GError **error)
{
    if (stream->failed != NULL) {
        g_propagate_error(error, g_error_copy(stream->failed));
        return NULL;
    }
    GByteArray *buf = stream->buf;

    if (stream->scanned == 0) {
        gsize skip = 0;
        while (skip < buf->len && ms_qmp_stream_is_space(buf->data[skip]))
            skip++;
        g_byte_array_remove_range(buf, 0, skip);
        if (buf->len == 0)
            return NULL;
        if (buf->data[0] != '{')
            return ms_qmp_stream_fail(stream, error, MS_QMP_ERROR_PROTOCOL,
                                      "unexpected byte 0x%02x outside a JSON object "
                                      "from QMP monitor", buf->data[0]);
    }

    gsize end = 0; /* length of the message once complete */
    for (gsize i = stream->scanned; i < buf->len && end == 0; i++) {
        guint8 c = buf->data[i];
        if (stream->in_string) {
            if (stream->escape)
                stream->escape = FALSE;
            else if (c == '\\')
                stream->escape = TRUE;
            else if (c == '"')
                stream->in_string = FALSE;
            continue;
        }
        switch (c) {
        case '"':
            stream->in_string = TRUE;
            break;
        case '{':
        case '[':
            if (++stream->depth > MS_QMP_STREAM_MAX_DEPTH)
                return ms_qmp_stream_fail(stream, error, MS_QMP_ERROR_PROTOCOL,
                                          "QMP message nests deeper than %d levels",
                                          MS_QMP_STREAM_MAX_DEPTH);
            break;
        case '}':
        case ']':
            /* Unbalanced closers end the message early; the parser then
             * rejects it, which is the right answer for such input. */
            if (stream->depth > 0 && --stream->depth == 0)
                end = i + 1;
            break;
        default:
            break;
        }
    }

    if (end == 0) {
        stream->scanned = buf->len;
        if (buf->len > stream->max_message)
            return ms_qmp_stream_fail(stream, error, MS_QMP_ERROR_TOO_BIG,
                                      "QMP message exceeds %" G_GSIZE_FORMAT " bytes",
                                      stream->max_message);
        return NULL;
    }
    if (end > stream->max_message)
        return ms_qmp_stream_fail(stream, error, MS_QMP_ERROR_TOO_BIG,
                                  "QMP message of %" G_GSIZE_FORMAT " bytes exceeds %"
                                  G_GSIZE_FORMAT " bytes", end, stream->max_message);

    JsonObject *obj = ms_qmp_stream_parse(buf->data, end, error);
    g_byte_array_remove_range(buf, 0, end);
    stream->scanned = 0;
    stream->depth = 0;
    stream->in_string = FALSE;
    stream->escape = FALSE;
    return obj;
}
