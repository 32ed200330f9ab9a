/* policies/ms-sharing.c: sharing trust groups: names, resolution, the
 * KSM-group rule. Pure (see ms-sharing.h); docs/security.md says why each
 * rule exists. */
#include "ms-sharing.h"
#include "ms-util.h"

#include <string.h>

G_DEFINE_QUARK(ms-sharing-error-quark, ms_sharing_error)

static const char *const default_names[] = { "domain", "host", "nova-project" };
static const char *const source_names[] = { "policy", "domain", "host", "nova-project" };

const char *
ms_sharing_default_name(MsSharingDefault d)
{
    return (guint)d < G_N_ELEMENTS(default_names) ? default_names[d] : "?";
}

const char *
ms_sharing_source_name(MsSharingSource s)
{
    return (guint)s < G_N_ELEMENTS(source_names) ? source_names[s] : "?";
}

gboolean
ms_sharing_name_check(const char *name, gsize len, GError **error)
{
    if (len == 0) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "empty");
        return FALSE;
    }
    if (memchr(name, '\0', len) != NULL) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "contains a NUL byte");
        return FALSE;
    }
    if (len > MS_SHARING_NAME_MAX) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                    "longer than %d characters (%" G_GSIZE_FORMAT ")", MS_SHARING_NAME_MAX, len);
        return FALSE;
    }
    for (gsize i = 0; i < len; i++) {
        guchar c = (guchar)name[i];
        if (g_ascii_isalnum(c) || (i > 0 && (c == '.' || c == '_' || c == '-')))
            continue;
        if (c == '/') {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "contains '/' (a group is a name, never a path)");
        } else if (c < 0x20 || c == 0x7f) {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "contains control character 0x%02x", c);
        } else if (c == ':') {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "contains ':' (reserved for the groups memshare derives: domain:UUID, nova:PROJECT)");
        } else if (i == 0 && (c == '.' || c == '_' || c == '-')) {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "starts with '%c' (a group starts with a letter or digit)", c);
        } else if (c >= 0x80) {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "contains a non-ASCII byte");
        } else {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "contains '%c'", c);
        }
        return FALSE;
    }
    return TRUE;
}

gboolean
ms_sharing_nova_project_check(const char *project, GError **error)
{
    gsize n = strlen(project);
    g_autofree char *pp = ms_printable(project);
    if (n == 0 || n > 64) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                    "<nova:project uuid='%s'>: not a project id (1 to 64 characters)", pp);
        return FALSE;
    }
    for (gsize i = 0; i < n; i++) {
        if (!g_ascii_isalnum(project[i]) && project[i] != '-') {
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "<nova:project uuid='%s'>: not a project id (A-Z a-z 0-9 and '-' only)", pp);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
ms_sharing_group_is_valid(const char *group)
{
    if (group == NULL)
        return FALSE;
    if (strcmp(group, "host") == 0)
        return TRUE;
    if (g_str_has_prefix(group, "domain:"))
        return ms_uuid_is_valid(group + strlen("domain:"));
    if (g_str_has_prefix(group, "nova:"))
        return ms_sharing_nova_project_check(group + strlen("nova:"), NULL);
    return ms_sharing_name_check(group, strlen(group), NULL);
}

gboolean
ms_sharing_default_from_string(const char *s, MsSharingDefault *out, GError **error)
{
    for (guint i = 0; i < G_N_ELEMENTS(default_names); i++) {
        if (g_strcmp0(s, default_names[i]) == 0) {
            *out = (MsSharingDefault)i;
            return TRUE;
        }
    }
    g_autofree char *ps = ms_printable(s ? s : "");
    g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                "'%s' is not a default group (expected domain, host or nova-project)", ps);
    return FALSE;
}

gboolean
ms_sharing_default_from_config(GKeyFile *kf, const char *path, MsSharingDefault *out, GError **error)
{
    g_autofree char *v = ms_config_get_string(kf, "sharing", "default-group", "domain");
    g_autoptr(GError) local = NULL;
    if (!ms_sharing_default_from_string(v, out, &local)) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "%s: [sharing] default-group: %s",
                    path ? path : "memshare.conf", local->message);
        return FALSE;
    }
    return TRUE;
}

char *
ms_sharing_resolve(const char *explicit_group, const char *domain_uuid, const char *nova_project,
                   MsSharingDefault def, MsSharingSource *source_out, GError **error)
{
    g_autoptr(GError) local = NULL;

    if (explicit_group) {
        /* The parser has checked it already; a caller that did not (a
         * runtime file, a test) gets the same rule. */
        if (!ms_sharing_name_check(explicit_group, strlen(explicit_group), &local)) {
            g_autofree char *pg = ms_printable(explicit_group);
            g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                        "<sharing group='%s'>: %s", pg, local->message);
            return NULL;
        }
        if (source_out)
            *source_out = MS_SHARING_SOURCE_POLICY;
        return g_strdup(explicit_group);
    }
    if (def == MS_SHARING_DEFAULT_HOST) {
        if (source_out)
            *source_out = MS_SHARING_SOURCE_HOST;
        return g_strdup("host");
    }
    if (def == MS_SHARING_DEFAULT_NOVA && nova_project) {
        if (!ms_sharing_nova_project_check(nova_project, error))
            return NULL;
        if (source_out)
            *source_out = MS_SHARING_SOURCE_NOVA;
        return g_strconcat("nova:", nova_project, NULL);
    }
    /* domain, or nova-project on a domain Nova did not create: alone is
     * the only grouping that cannot put strangers together. */
    if (domain_uuid == NULL || !ms_uuid_is_valid(domain_uuid)) {
        g_autofree char *pu = ms_printable(domain_uuid ? domain_uuid : "");
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID,
                    "<uuid>%s</uuid>: not a UUID, and the domain's own sharing group is named by it", pu);
        return NULL;
    }
    if (source_out)
        *source_out = MS_SHARING_SOURCE_DOMAIN;
    g_autofree char *lower = g_ascii_strdown(domain_uuid, -1);
    return g_strconcat("domain:", lower, NULL);
}

static int
cmp_merger_uuid(gconstpointer a, gconstpointer b)
{
    const MsSharingMerger *const *ma = a, *const *mb = b;
    return g_strcmp0((*ma)->uuid, (*mb)->uuid);
}

gboolean
ms_sharing_ksm_check(const char *name, const char *uuid, const char *group, gboolean nosharepages,
                     const MsSharingMerger *running, gsize n_running, GError **error)
{
    if (nosharepages)
        return TRUE;
    g_autoptr(GPtrArray) others = g_ptr_array_new();
    for (gsize i = 0; i < n_running; i++) {
        const MsSharingMerger *m = &running[i];
        if (uuid && m->uuid && g_ascii_strcasecmp(uuid, m->uuid) == 0)
            continue;   /* our own record (a restart of the hook) */
        if (g_strcmp0(m->group, group) != 0)
            g_ptr_array_add(others, (gpointer)m);
    }
    if (others->len == 0)
        return TRUE;
    /* Several may be merging (a host that ran before the rule existed):
     * name one, the same one whatever the directory order. */
    g_ptr_array_sort(others, cmp_merger_uuid);
    const MsSharingMerger *o = g_ptr_array_index(others, 0);
    g_autofree char *pn = ms_printable(name ? name : "?");
    g_autofree char *pg = ms_printable(group ? group : "?");
    g_autofree char *on = ms_printable(o->name ? o->name : (o->uuid ? o->uuid : "?"));
    g_autofree char *og = ms_printable(o->group ? o->group : "?");
    g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_REFUSED,
                "domain '%s': sharing group '%s' cannot run with KSM merging: domain '%s' of group '%s' "
                "is already merging (add <memoryBacking><nosharepages/></memoryBacking> to domain '%s', "
                "or start it when no domain of group '%s' merges%s)", pn, pg, on, og, pn, og,
                /* the opt-in, for the single-tenant host the default refuses */
                "; or put them in one group: the same <memshare:sharing group=...> in both policies, or [sharing] default-group=host in memshare.conf on a host whose guests are all one tenant's");
    return FALSE;
}

char *
ms_sharing_record_format(const char *name, const char *group, gboolean merging)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    /* GKeyFile escapes what a domain name may hold (newlines included) */
    g_key_file_set_string(kf, "sharing", "name", name ? name : "");
    g_key_file_set_string(kf, "sharing", "group", group);
    g_key_file_set_boolean(kf, "sharing", "merging", merging);
    return g_key_file_to_data(kf, NULL, NULL);
}

gboolean
ms_sharing_record_parse(const char *buf, gsize len, const char *what, char **name_out,
                        char **group_out, gboolean *merging_out, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    if (len > MS_SHARING_RECORD_MAX) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "'%s': larger than %d bytes", what,
                    MS_SHARING_RECORD_MAX);
        return FALSE;
    }
    if (!g_key_file_load_from_data(kf, buf, len, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "'%s': %s", what, local->message);
        return FALSE;
    }
    g_autofree char *name = g_key_file_get_string(kf, "sharing", "name", NULL);
    g_autofree char *group = g_key_file_get_string(kf, "sharing", "group", NULL);
    gboolean merging = g_key_file_get_boolean(kf, "sharing", "merging", &local);
    if (local != NULL) {
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "'%s': merging: %s", what,
                    local->message);
        return FALSE;
    }
    if (group == NULL || !ms_sharing_group_is_valid(group) || strlen(group) > MS_SHARING_GROUP_MAX) {
        g_autofree char *pg = ms_printable(group ? group : "");
        g_set_error(error, MS_SHARING_ERROR, MS_SHARING_ERROR_INVALID, "'%s': group '%s' is not a sharing group",
                    what, pg);
        return FALSE;
    }
    *name_out = name ? g_steal_pointer(&name) : g_strdup("");
    *group_out = g_steal_pointer(&group);
    *merging_out = merging;
    return TRUE;
}
