/* formats/ms-status-keys.h: every group and key of an agent's status file
 * (RUNSTATEDIR/memshare/domains/UUID/status, a GKeyFile the agent replaces
 * each tick), as C constants. Writers (the agent's modules) and readers
 * (the field table in ms-export.c, the history columns, memsharectl, the
 * hook's migration seed) use these names, so a key is spelled once: a typo
 * is a compile error, and renaming a key is one line. The domstats names
 * users see are the field table's (ms-export.c, docs/domstats.md); most are
 * these same words.
 *
 * MS_STATUS_<GROUP> is a group, MS_STATUS_<GROUP>_<KEY> a key in it. Every
 * module's group may carry MS_STATUS_KEY_ERROR (why its last tick failed).
 * The images group also has per-image keys NAME.SUFFIX (MS_STATUS_IMAGE_*). */
#pragma once

/* any module's group: the last failure, cleared by a good tick */
#define MS_STATUS_KEY_ERROR "error"


/* [agent]: the agent (ms-agent.c) */
#define MS_STATUS_AGENT "agent"
#define MS_STATUS_AGENT_DOMAIN "domain"
#define MS_STATUS_AGENT_UUID "uuid"
#define MS_STATUS_AGENT_PID "pid"
#define MS_STATUS_AGENT_TRANSPORT "transport"
#define MS_STATUS_AGENT_TICKS "ticks"
#define MS_STATUS_AGENT_UPDATED "updated"

/* [qemu]: the agent, from QMP and libvirt */
#define MS_STATUS_QEMU "qemu"
#define MS_STATUS_QEMU_VERSION "version"
#define MS_STATUS_QEMU_PID "pid"

/* [policy]: the agent: the live policy's state */
#define MS_STATUS_POLICY "policy"
#define MS_STATUS_POLICY_STATE "state"
#define MS_STATUS_POLICY_REMOVED "removed"

/* [domain]: the agent, from the domain XML */
#define MS_STATUS_DOMAIN "domain"
#define MS_STATUS_DOMAIN_MEMORY "memory"
#define MS_STATUS_DOMAIN_CURRENT_MEMORY "current-memory"

/* [kernel]: ms-kcompat.c: which kernel interfaces were taken */
#define MS_STATUS_KERNEL "kernel"
#define MS_STATUS_KERNEL_RELEASE "release"
#define MS_STATUS_KERNEL_HIDDEN "hidden"
#define MS_STATUS_KERNEL_PAGEMAP "pagemap"
#define MS_STATUS_KERNEL_KSM_SAVED "ksm-saved"
#define MS_STATUS_KERNEL_KSM_CONTRIBUTION "ksm-contribution"
#define MS_STATUS_KERNEL_KSM_ADVISOR "ksm-advisor"

/* [tracking]: the tracking module (ms-tracking.c); the class keys are ms_page_class_name()'s */
#define MS_STATUS_TRACKING "tracking"
#define MS_STATUS_TRACKING_METHOD "method"
#define MS_STATUS_TRACKING_PAGE_SIZE "page-size"
#define MS_STATUS_TRACKING_TOTAL "total"
#define MS_STATUS_TRACKING_USED "used"
#define MS_STATUS_TRACKING_UNPOPULATED "unpopulated"
#define MS_STATUS_TRACKING_ZERO "zero"
#define MS_STATUS_TRACKING_PRIVATE "private"
#define MS_STATUS_TRACKING_KSM "ksm"
#define MS_STATUS_TRACKING_SWAPPED "swapped"
#define MS_STATUS_TRACKING_FREED "freed"
#define MS_STATUS_TRACKING_FREED_SINCE_LAST "freed-since-last"
#define MS_STATUS_TRACKING_KPAGEFLAGS "kpageflags"
#define MS_STATUS_TRACKING_SCAN_US "scan-us"
#define MS_STATUS_TRACKING_WORKING_SET "working-set"

/* [ksm]: the balloon module, from /proc/PID/ksm_stat */
#define MS_STATUS_KSM "ksm"
#define MS_STATUS_KSM_PROFIT "profit"
#define MS_STATUS_KSM_MERGING_PAGES "merging-pages"
#define MS_STATUS_KSM_CONTRIBUTION "contribution"
#define MS_STATUS_KSM_HOST_SAVED "host-saved"

/* [ksmtune]: the KSM tuner (ms-ksmtune.c) */
#define MS_STATUS_KSMTUNE "ksmtune"
#define MS_STATUS_KSMTUNE_LEADER "leader"
#define MS_STATUS_KSMTUNE_RUN "run"
#define MS_STATUS_KSMTUNE_PAGES_TO_SCAN "pages-to-scan"
#define MS_STATUS_KSMTUNE_ADVISOR "advisor"
#define MS_STATUS_KSMTUNE_REASON "reason"

/* [balloon]: the balloon module (ms-balloon.c); actual also the agent */
#define MS_STATUS_BALLOON "balloon"
#define MS_STATUS_BALLOON_MODE "mode"
#define MS_STATUS_BALLOON_DIVISION "division"
#define MS_STATUS_BALLOON_WEIGHT "weight"
#define MS_STATUS_BALLOON_BASE "base"
#define MS_STATUS_BALLOON_FLOOR "floor"
#define MS_STATUS_BALLOON_CEILING "ceiling"
#define MS_STATUS_BALLOON_MEMORY "memory"
#define MS_STATUS_BALLOON_TARGET "target"
#define MS_STATUS_BALLOON_ACTUAL "actual"
#define MS_STATUS_BALLOON_IDEAL "ideal"
#define MS_STATUS_BALLOON_HOST_SAVED "host-saved"
#define MS_STATUS_BALLOON_HOST_AVAILABLE "host-available"
#define MS_STATUS_BALLOON_HOST_RESERVE "host-reserve"
#define MS_STATUS_BALLOON_POOL "pool"
#define MS_STATUS_BALLOON_CONTRIBUTION "contribution"
#define MS_STATUS_BALLOON_SHARE "share"
#define MS_STATUS_BALLOON_STUCK "stuck"
#define MS_STATUS_BALLOON_PEERS "peers"
#define MS_STATUS_BALLOON_REASON "reason"
#define MS_STATUS_BALLOON_GROUP "group"
#define MS_STATUS_BALLOON_GROUP_SAVED "group-saved"
#define MS_STATUS_BALLOON_GROUP_POOL "group-pool"
#define MS_STATUS_BALLOON_GROUP_PEERS "group-peers"
#define MS_STATUS_BALLOON_GROUPS "groups"

/* [sharing]: the agent: the domain's sharing group (ms-sharing.h) */
#define MS_STATUS_SHARING "sharing"
#define MS_STATUS_SHARING_GROUP "group"
#define MS_STATUS_SHARING_SOURCE "source"
#define MS_STATUS_SHARING_MERGING "merging"
#define MS_STATUS_SHARING_PENDING "pending"

/* [images]: the images module (ms-images.c) */
#define MS_STATUS_IMAGES "images"
#define MS_STATUS_IMAGES_COUNT "count"
#define MS_STATUS_IMAGES_ATTACHED "attached"
#define MS_STATUS_IMAGES_BYTES "bytes"
#define MS_STATUS_IMAGES_NAMES "names"
/* the domain's sharing group's image copies (docs/images.md "Sharing groups") */
#define MS_STATUS_IMAGES_GROUP "group"
#define MS_STATUS_IMAGES_GROUP_COPIES "group-copies"
#define MS_STATUS_IMAGES_GROUP_BYTES "group-bytes"
#define MS_STATUS_IMAGES_GROUP_CACHED "group-cached"

/* [images] NAME.SUFFIX, one set per image the policy names */
#define MS_STATUS_IMAGE_MODE ".mode"
#define MS_STATUS_IMAGE_STATE ".state"
#define MS_STATUS_IMAGE_ERROR ".error"
#define MS_STATUS_IMAGE_SIZE ".size"
#define MS_STATUS_IMAGE_BLOB ".blob"
#define MS_STATUS_IMAGE_BLOB_ERROR ".blob-error"
#define MS_STATUS_IMAGE_SHA256 ".sha256"
#define MS_STATUS_IMAGE_NEWER_SHA256 ".newer-sha256"
