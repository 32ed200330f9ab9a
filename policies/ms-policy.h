/* policies/ms-policy.h: the memshare policy model. Parses the
 * <memshare:policy> element of a domain's <metadata> (libxml2) into a plain
 * struct with documented defaults, and cross-checks it against the rest of the
 * domain XML. No I/O besides parsing, except the optional image-store lookup
 * (see MsPolicyCheckFlags). docs/policy.md is the user reference. */
#pragma once

#include <glib.h>

#include "ms-units.h"
#include "ms-config.h"
#include "ms-sharing.h"

G_BEGIN_DECLS

/* The versioned namespace of the metadata element (MS_POLICY_NS). */
#define MS_POLICY_NAMESPACE MS_POLICY_NS

#define MS_POLICY_ERROR (ms_policy_error_quark())
GQuark ms_policy_error_quark(void);

typedef enum {
    MS_POLICY_ERROR_INVALID,   /* policy or domain XML is wrong; message says where */
    MS_POLICY_ERROR_XML,       /* not well-formed XML */
} MsPolicyErrorCode;

typedef enum {
    MS_ON_ERROR_REFUSE = 0,    /* default: an invalid policy stops `virsh start` */
    MS_ON_ERROR_IGNORE,        /* start the domain anyway, without memshare */
} MsOnError;

typedef enum {
    MS_BALLOON_OFF = 0,
    MS_BALLOON_KSM_SHARE,      /* hand KSM's savings back through the balloon */
} MsBalloonMode;

typedef enum {
    MS_DIVIDE_EQUAL = 0,
    MS_DIVIDE_WEIGHTED,
    MS_DIVIDE_CONTRIBUTION,
} MsDivision;

typedef enum {
    MS_IMAGE_DAX = 0,
    MS_IMAGE_BLK,
} MsImageMode;

typedef struct {
    char *name;                /* image name in the store; never a path */
    char *mount;               /* where the guest mounts it (advisory) */
    MsImageMode mode;
    gboolean fallback_blk;     /* dax impossible -> blk instead of failing */
} MsSharedImage;

/* Facts about the domain read from the rest of its XML. */
typedef struct {
    char *name;
    char *uuid;
    guint64 memory_kib;         /* <memory> (boot size, balloon ceiling) */
    guint64 current_memory_kib; /* <currentMemory> */
    guint64 max_memory_kib;     /* <maxMemory>, 0 if absent */
    guint max_memory_slots;     /* <maxMemory slots=...>, 0 if absent */
    gboolean has_balloon;       /* <memballoon model='virtio*'> */
    char *balloon_alias;        /* e.g. "balloon0" */
    gboolean free_page_reporting;
    /* <qemu:override> sets the balloon's free-page-hint=true (libvirt 9.0
     * has no element for it; docs/migration.md) */
    gboolean free_page_hint;
    char *machine;              /* <os><type machine=...> */
    char *domain_type;          /* kvm / qemu */
    gboolean nosharepages;      /* <memoryBacking><nosharepages/>: KSM off */
    /* <metadata><nova:instance><nova:owner><nova:project uuid=...>, NULL
     * if absent; checked only when it becomes a group (ms-sharing.h) */
    char *nova_project;
} MsDomainInfo;

typedef struct {
    MsOnError on_error;
    MsDomainInfo domain;

    struct {
        MsBalloonMode mode;
        MsDivision division;
        guint weight;           /* default 1 */
        guint64 base_kib;       /* default: currentMemory */
        guint64 floor_kib;      /* default: base */
        guint64 ceiling_kib;    /* default: memory */
        guint64 period_ms;      /* default 5000 */
        guint64 max_step_kib;   /* default 64 MiB */
        guint64 hysteresis_kib; /* default 16 MiB */
        /* Which of base/floor/ceiling the user wrote; the others are
         * derived (from <currentMemory>, base, <memory>) and are 0 in a
         * standalone policy, where there is no domain to derive them from. */
        gboolean base_set, floor_set, ceiling_set;
    } balloon;

    struct {
        gboolean used_pages;    /* default off */
        guint64 period_ms;      /* default 5000 */
        gboolean working_set;   /* default off */
        guint64 ws_window_ms;   /* default 30000 */
        gboolean require_free_page_reporting;
    } tracking;

    GPtrArray *images;          /* of MsSharedImage*, owned */

    struct {
        guint64 period_ms;      /* stats publication period, default 5000 */
    } stats;

    struct {
        /* <sharing group='NAME'/>; NULL: the host default decides
         * (ms_sharing_resolve, [sharing] default-group of memshare.conf) */
        char *group;
    } sharing;

    struct {
        /* <migration free-page-hint='on'/>: the domain's definition should
         * carry virtio-balloon free-page-hint (docs/migration.md); default off */
        gboolean free_page_hint;
        /* <migration missing-images='fetch'/>: at an incoming migration,
         * the destination's hook fetches a shared image its store lacks
         * from the peers memshare.conf trusts ([migration] image-peers)
         * instead of refusing; default refuse */
        gboolean fetch_missing_images;
    } migration;
} MsPolicy;

typedef enum {
    MS_POLICY_CHECK_NONE = 0,
    MS_POLICY_CHECK_IMAGES = 1 << 0, /* named images must exist in image_store */
} MsPolicyCheckFlags;

/* Parses a whole domain XML document.
 * Returns TRUE and sets *policy_out to NULL when the domain carries no
 * memshare policy (the common case: the hook must have zero effect then).
 * Returns TRUE and a policy when valid. Returns FALSE with error when the
 * policy (or the domain XML it depends on) is invalid; *on_error_out is then
 * still set from the policy's on-error attribute when it could be read, so
 * the hook can honour on-error="ignore". Error messages have the shape
 *   domain 'web1': <balloon floor='2GiB'>: larger than <memory> (1GiB) */
gboolean ms_policy_parse_domain_xml(const char *xml, gssize len,
                                    MsPolicyCheckFlags flags,
                                    const char *image_store,
                                    MsPolicy **policy_out,
                                    MsOnError *on_error_out,
                                    GError **error);

/* The balloon's base defaults to <currentMemory> as the domain was
 * started, but libvirt's live XML reports the balloon's current size there
 * (and that is what memshare moves). The agent calls this with the boot
 * value (recorded by the hook at `prepare`) to re-derive base and floor
 * when the policy does not set them; values above <memory> are clamped. */
void ms_policy_rebase(MsPolicy *policy, guint64 current_memory_kib);

/* <shared-image name=>: [A-Za-z0-9][A-Za-z0-9._-]{0,63}, the one rule for
 * image names (the store's file names obey it too). FALSE for NULL. */
#define MS_POLICY_IMAGE_NAME_MAX 64
gboolean ms_policy_image_name_is_valid(const char *name);

/* Parses a standalone <memshare:policy> document (memsharectl policy
 * validate FILE) without domain cross-checks. */
gboolean ms_policy_parse_standalone(const char *xml, gssize len,
                                    MsPolicy **policy_out, GError **error);

/* Serialises the policy's canonical XML (defaults made explicit). */
char *ms_policy_to_xml(const MsPolicy *policy);

MsPolicy *ms_policy_copy(const MsPolicy *policy);
void ms_policy_free(MsPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsPolicy, ms_policy_free)

G_END_DECLS
