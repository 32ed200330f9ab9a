/* tests/lib/fake-qmp.h: a fake QEMU monitor for unit tests of any module
 * that talks QMP (the QMP client, balloon, images, tracking), in the way of
 * libvirt's qemumonitortestutils: a thread on a real unix socket replays a
 * transcript recorded from the real QEMU 7.2 (tests/qmp/record-transcripts.py)
 * and checks that the client sends the recorded commands, in order, with the
 * recorded arguments.
 *
 * Transcript lines (blank lines and "# ..." comments are skipped):
 *   S: {...}   a message QEMU sent (greeting, reply, event); replies whose
 *              "id" is a recorded command's go out with the id the client
 *              chose for it, so no client's id scheme is baked in
 *   C: {...}   a command the client must send now: same "execute", same
 *              "arguments" (JSON equality), and an "id"
 *   R: text    raw bytes (C escapes) for malformed input
 *   BIG: N     an N-byte never-ending string (an oversize reply)
 *   CLOSE      the monitor hangs up
 *   HANG       the monitor stops answering (commands after it are ignored)
 * A command other than the expected one, or one after the last line, is a
 * failure, answered with a GenericError so the client does not wait for
 * nothing.
 *
 * What differs per run (a temporary store's path) is recorded as a
 * placeholder such as @STORE@ and filled in by ms_fake_qmp_substitute. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ms-qmp.h"

G_BEGIN_DECLS

typedef struct _MsFakeQmp MsFakeQmp;

/* The lines of a transcript file. A relative name is looked up in the
 * test's data/ directory (G_TEST_SRCDIR/data/NAME). */
GPtrArray *ms_fake_qmp_load(const char *name);

/* Replaces PLACEHOLDER by VALUE in every line of SCRIPT, VALUE escaped as
 * the inside of a JSON string: placeholders stand only in strings, in what
 * the client must send and in what QEMU answers alike. */
void ms_fake_qmp_substitute(GPtrArray *script, const char *placeholder, const char *value);

/* A JSON object from a transcript line (asserts it is one). */
JsonObject *ms_fake_qmp_parse_object(const char *text);

/* Starts the monitor on a fresh socket; bytewise sends every message one
 * byte at a time (framing tests). */
MsFakeQmp *ms_fake_qmp_start(GPtrArray *script, gboolean bytewise);
const char *ms_fake_qmp_socket(MsFakeQmp *fake);
/* A QMP client on the fake's socket, connected (greeting and
 * qmp_capabilities, the transcript's first lines). */
MsQmpClient *ms_fake_qmp_connect(MsFakeQmp *fake);
/* How many of the transcript's C: lines the client has not sent yet. */
guint ms_fake_qmp_commands_left(MsFakeQmp *fake);
/* Call after the client is freed (its hang-up ends the monitor): asserts
 * the monitor saw nothing wrong and frees it. */
void ms_fake_qmp_finish(MsFakeQmp *fake);
/* The same, but returns what went wrong (NULL: nothing) instead of
 * asserting, for tests of misbehaving clients. */
char *ms_fake_qmp_finish_failure(MsFakeQmp *fake);

G_END_DECLS
