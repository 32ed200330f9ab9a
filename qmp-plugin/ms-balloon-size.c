/* qmp-plugin/ms-balloon-size.c: the balloon's actual size, its one owner
 * (ms-balloon-size.h). */
#include "ms-balloon-size.h"
#include "ms-status-keys.h"

static gboolean
ms_balloon_size_value(JsonNode *n, guint64 *actual)
{
    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
        json_node_get_int(n) <= 0)
        return FALSE;
    *actual = (guint64)json_node_get_int(n);
    return TRUE;
}

gboolean
ms_balloon_size_parse(JsonNode *reply, guint64 *actual, GError **error)
{
    JsonObject *o = reply && JSON_NODE_HOLDS_OBJECT(reply) ? json_node_get_object(reply) : NULL;
    if (o == NULL || !ms_balloon_size_value(json_object_get_member(o, "actual"), actual)) {
        g_set_error(error, MS_QMP_ERROR, MS_QMP_ERROR_PROTOCOL,
                    "query-balloon: reply has no positive integer 'actual'");
        return FALSE;
    }
    return TRUE;
}

gboolean
ms_balloon_size_query(MsBalloonSize *size, MsQmpClient *qmp, GError **error)
{
    g_autoptr(JsonNode) r = ms_qmp_client_execute(qmp, "query-balloon", NULL, error);
    guint64 actual;
    if (r == NULL || !ms_balloon_size_parse(r, &actual, error))
        return FALSE;
    size->actual = actual;
    size->known = TRUE;
    return TRUE;
}

gboolean
ms_balloon_size_event(MsBalloonSize *size, const char *event, JsonObject *data)
{
    guint64 actual;
    if (!g_str_equal(event, "BALLOON_CHANGE") || data == NULL ||
        !ms_balloon_size_value(json_object_get_member(data, "actual"), &actual))
        return FALSE;
    size->actual = actual;
    size->known = TRUE;
    g_debug("BALLOON_CHANGE: actual %" G_GUINT64_FORMAT " MiB", actual >> 20);
    return TRUE;
}

void
ms_balloon_size_publish(const MsBalloonSize *size, GKeyFile *status)
{
    /* 0 while unknown (no balloon device): readers have always seen the key */
    g_key_file_set_uint64(status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_ACTUAL, size->actual);
}
