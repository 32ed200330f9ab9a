/* policies/ms-sharing.h: sharing trust groups (docs/security.md). Owns the
 * rules, all pure: which names a group may have, how a domain's group is
 * resolved (its policy, else the host default of memshare.conf: the domain
 * alone, the whole host, or its OpenStack Nova project), and the KSM-group
 * rule the hook applies at `prepare` (only one group may run with KSM
 * merging on, because Linux merges across every mergeable region of the
 * host). No I/O: the callers read the config, the domain XML and the
 * runtime directory and hand the facts in. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MS_SHARING_ERROR (ms_sharing_error_quark())
GQuark ms_sharing_error_quark(void);

typedef enum {
    MS_SHARING_ERROR_INVALID,  /* a name, a setting or metadata is malformed */
    MS_SHARING_ERROR_REFUSED,  /* the KSM-group rule refuses the start */
} MsSharingErrorCode;

/* Longest name a policy may give (same alphabet and bound as image names,
 * so that a group can become a directory of the image store). */
#define MS_SHARING_NAME_MAX 64
/* Longest resolved group: "nova:" + a 64-character project id. */
#define MS_SHARING_GROUP_MAX 72

/* [sharing] default-group= of memshare.conf: the group of a domain whose
 * policy names none. */
typedef enum {
    MS_SHARING_DEFAULT_DOMAIN = 0, /* "domain": each domain alone (safe) */
    MS_SHARING_DEFAULT_HOST,       /* "host": every domain together */
    MS_SHARING_DEFAULT_NOVA,       /* "nova-project": the Nova project,
                                    * else the domain alone */
} MsSharingDefault;

/* Where a resolved group came from (memshare.sharing.source). */
typedef enum {
    MS_SHARING_SOURCE_POLICY = 0,  /* <memshare:sharing group='...'/> */
    MS_SHARING_SOURCE_DOMAIN,      /* default: the domain's own group */
    MS_SHARING_SOURCE_HOST,        /* default: the host group */
    MS_SHARING_SOURCE_NOVA,        /* default: the Nova project */
} MsSharingSource;

const char *ms_sharing_default_name(MsSharingDefault d);
const char *ms_sharing_source_name(MsSharingSource s);

/* A group name a policy may write: 1 to 64 of A-Z a-z 0-9 . _ -, starting
 * with a letter or digit. On failure the error says why, without echoing
 * the name (the caller names the attribute and its printable value). */
gboolean ms_sharing_name_check(const char *name, gsize len, GError **error);

/* A Nova project id as it may become part of a group: 1 to 64 of
 * A-Z a-z 0-9 -, which covers Keystone's 32 hex digits and dashed UUIDs. */
gboolean ms_sharing_nova_project_check(const char *project, GError **error);

/* A resolved group as published in runtime files (inputs, sharing):
 * a policy name, "domain:UUID", "nova:PROJECT" or "host". */
gboolean ms_sharing_group_is_valid(const char *group);

gboolean ms_sharing_default_from_string(const char *s, MsSharingDefault *out, GError **error);
/* [sharing] default-group of kf (NULL or missing: domain), read through
 * ms_config_get_string. The error names the file and the setting. */
gboolean ms_sharing_default_from_config(GKeyFile *kf, const char *path, MsSharingDefault *out,
                                        GError **error);

/* The group of a domain. explicit_group: the policy's group or NULL;
 * domain_uuid: the domain's <uuid> (required for the domain fallback);
 * nova_project: the Nova project uuid of the domain XML or NULL.
 * Explicit names live in their own namespace: derived groups contain ':'
 * (or are "host"), which a policy name cannot, so a policy can never name
 * its way into another domain's or another project's derived group. */
char *ms_sharing_resolve(const char *explicit_group, const char *domain_uuid,
                         const char *nova_project, MsSharingDefault def,
                         MsSharingSource *source_out, GError **error);

/* A running domain that has KSM merging on (no <nosharepages/>), as read
 * from RUNTIME/domains/UUID/sharing. */
typedef struct {
    const char *uuid;
    const char *name;
    const char *group;
} MsSharingMerger;

/* The KSM-group rule, at `prepare`: a domain without <nosharepages/> may
 * start only when every running domain with merging on (other than itself,
 * by uuid) is of its own group. With nosharepages it may always start.
 * Refusal (MS_SHARING_ERROR_REFUSED), naming the first other-group domain
 * in uuid order:
 *   domain 'NAME': sharing group 'G' cannot run with KSM merging: domain
 *   'OTHER' of group 'H' is already merging (add
 *   <memoryBacking><nosharepages/></memoryBacking> to 'NAME', or stop
 *   group 'H''s domains first) */
gboolean ms_sharing_ksm_check(const char *name, const char *uuid, const char *group,
                              gboolean nosharepages, const MsSharingMerger *running,
                              gsize n_running, GError **error);

/* The hook's record of a started domain, RUNTIME/domains/UUID/sharing, from
 * `prepare` to `release`: a GKeyFile group [sharing] with name, group and
 * merging (true unless <nosharepages/>). At most MS_SHARING_RECORD_MAX
 * bytes; the group must be a valid resolved group. */
#define MS_SHARING_RECORD_MAX 4096
char *ms_sharing_record_format(const char *name, const char *group, gboolean merging);
gboolean ms_sharing_record_parse(const char *buf, gsize len, const char *what, char **name_out,
                                 char **group_out, gboolean *merging_out, GError **error);

G_END_DECLS
