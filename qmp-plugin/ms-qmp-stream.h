/* qmp-plugin/ms-qmp-stream.h: QMP framing. Bytes go in as they arrive from
 * the monitor; complete JSON objects come out. No I/O here, so every framing
 * case (split reads, garbage, oversize, strings holding braces) is a unit
 * test on a buffer. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _MsQmpStream MsQmpStream;

/* max_message bounds one message (MS_QMP_MAX_MESSAGE for the client). */
MsQmpStream *ms_qmp_stream_new(gsize max_message);
void ms_qmp_stream_free(MsQmpStream *stream);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsQmpStream, ms_qmp_stream_free)

void ms_qmp_stream_feed(MsQmpStream *stream, const void *data, gsize len);

/* Returns the next complete message (a new reference), or NULL: with *error
 * set when the data is bad, without when more bytes are needed. After a
 * framing error (bytes outside an object, oversize, nesting too deep) the
 * stream stays failed; after an invalid object with balanced braces the
 * next message can still be read. */
JsonObject *ms_qmp_stream_pop(MsQmpStream *stream, GError **error);

/* Bytes fed but not yet returned as messages. */
gsize ms_qmp_stream_pending(MsQmpStream *stream);

G_END_DECLS
