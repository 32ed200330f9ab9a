/* qmp-plugin/ms-balloon-size.h: the one owner of the balloon's actual size
 * (what QEMU says the guest has, bytes). It alone parses query-balloon and
 * BALLOON_CHANGE and writes status [balloon] actual; the agent's stats tick
 * and the balloon module both read it here, so they cannot disagree. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ms-qmp.h"

G_BEGIN_DECLS

typedef struct {
    guint64 actual; /* bytes; 0 until known */
    gboolean known;
} MsBalloonSize;

/* query-balloon's reply: an object with a positive integer "actual" (QEMU
 * reports the guest's RAM minus the inflated pages, never 0). */
gboolean ms_balloon_size_parse(JsonNode *reply, guint64 *actual, GError **error);

/* Runs query-balloon and records the answer. */
gboolean ms_balloon_size_query(MsBalloonSize *size, MsQmpClient *qmp, GError **error);

/* A QMP event: BALLOON_CHANGE {"actual": N} with the same rule as the
 * reply; TRUE when it was one (and well formed) and was recorded. */
gboolean ms_balloon_size_event(MsBalloonSize *size, const char *event, JsonObject *data);

/* status [balloon] actual (0 while unknown, as it always was). */
void ms_balloon_size_publish(const MsBalloonSize *size, GKeyFile *status);

G_END_DECLS
