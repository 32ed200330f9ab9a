/* policies/ms-alloc.h: THE balloon allocation function. Pure: no I/O, no
 * clock; every agent computing from the same snapshot gets the same answer
 * bit for bit (domains are processed in uuid order). Formulas and safety
 * rules: docs/balloon.md. */
#pragma once

#include <glib.h>
#include "ms-sharing.h"

G_BEGIN_DECLS

typedef enum {
    MS_ALLOC_EQUAL,
    MS_ALLOC_WEIGHTED,
    MS_ALLOC_CONTRIBUTION,
} MsAllocMode;

typedef enum {
    MS_ALLOC_REASON_SHARE,        /* base + its share of the pool */
    MS_ALLOC_REASON_AT_FLOOR,
    MS_ALLOC_REASON_AT_CEILING,
    MS_ALLOC_REASON_SHORTAGE,     /* host below reserve: shrink only */
    MS_ALLOC_REASON_STUCK,        /* balloon not moving: keep current */
    MS_ALLOC_REASON_HYSTERESIS,   /* change too small: keep current */
    MS_ALLOC_REASON_STEP_LIMITED,
} MsAllocReason;

typedef struct {
    guint64 saved_bytes;          /* KSM saving; negative profit given as 0 */
    guint64 mem_available_bytes;  /* host MemAvailable */
    guint64 reserve_bytes;        /* MemAvailable never pushed below this */
} MsAllocHost;

typedef struct {
    char uuid[37];
    guint64 weight;
    guint64 base;
    guint64 floor;
    guint64 ceiling;              /* min(policy ceiling, <memory>) */
    guint64 contribution_bytes;
    guint64 current_target;
    guint64 working_set_floor;    /* 0 = unknown */
    gboolean stuck;
    /* sharing group (ms-sharing.h); "" = the domain's own, domain:UUID */
    char group[MS_SHARING_GROUP_MAX + 1];
} MsAllocDomain;

typedef struct {
    MsAllocMode mode;
    guint64 max_step;             /* 0 = unlimited */
    guint64 hysteresis;
} MsAllocParams;

typedef struct {
    guint64 target;
    guint64 ideal;                /* before hysteresis and step limit */
    MsAllocReason reason;
} MsAllocResult;

const char *ms_alloc_reason_name(MsAllocReason r);
const char *ms_alloc_mode_name(MsAllocMode m);
gboolean ms_alloc_mode_from_string(const char *s, MsAllocMode *out);

/* The pool the growing domains may share (see docs/balloon.md). */
guint64 ms_alloc_distributable(const MsAllocHost *host,
                               const MsAllocDomain *domains, gsize n);

/* results[i] belongs to domains[i]; input order does not matter. */
void ms_alloc_compute(const MsAllocHost *host, const MsAllocParams *params,
                      const MsAllocDomain *domains, gsize n,
                      MsAllocResult *results);

/* Per-group figures (docs/balloon.md, "Sharing groups"): KSM merges
 * host-wide, so a group's saving is the host saving attributed by its
 * members' own merging (contribution_bytes, from ksm_stat), never more than
 * they merge; what the host can give (MemAvailable + handed - reserve) is
 * split in proportion to the groups' savings. With one group: the host
 * saving and ms_alloc_distributable, exactly as without groups. */
typedef struct {
    char group[MS_SHARING_GROUP_MAX + 1];
    guint members;
    guint64 contribution_bytes;   /* sum over its members */
    guint64 saved_bytes;          /* its part of the host saving */
    guint64 pool_bytes;           /* what its members may share */
} MsAllocGroup;

/* The group a domain is in ("" -> domain:UUID). */
const char *ms_alloc_domain_group(const MsAllocDomain *d, char buf[MS_SHARING_GROUP_MAX + 1]);
/* An array of MsAllocGroup sorted by name. */
GArray *ms_alloc_groups(const MsAllocHost *host, const MsAllocDomain *domains, gsize n);
/* ms_alloc_compute per group: each group's pool goes only to its members;
 * the host-wide rules (shortage) stay host-wide. */
void ms_alloc_compute_grouped(const MsAllocHost *host, const MsAllocParams *params,
                              const MsAllocDomain *domains, gsize n,
                              MsAllocResult *results);

/* Stuck detection (docs/balloon.md): a balloon that stays off its target
 * by more than the slack without moving for MS_ALLOC_STUCK_TICKS periods
 * and at least MS_ALLOC_STUCK_US is stuck (no driver in the guest, or a
 * guest that refuses); the time bound is for a guest still booting, which
 * loads its balloon driver late (tens of seconds under TCG). Any movement
 * ends it. Pure: the caller passes the monotonic time. */
#define MS_ALLOC_STUCK_TICKS 3
#define MS_ALLOC_STUCK_US (30 * G_USEC_PER_SEC)
/* Within this of the target counts as there (the guest balloons in pages,
 * QEMU reports what it has). */
#define MS_ALLOC_STUCK_SLACK (2ULL << 20)

typedef struct {
    guint64 last_actual;  /* bytes, at the previous period */
    guint still_ticks;    /* periods actual did not move while off target */
    gint64 still_since;   /* monotonic time (us) of the first such period */
    gboolean stuck;
} MsAllocStuck;

typedef enum {
    MS_ALLOC_STUCK_SAME,     /* no change of state */
    MS_ALLOC_STUCK_BECAME,   /* stuck from this period on */
    MS_ALLOC_STUCK_MOVING,   /* was stuck, moves again */
} MsAllocStuckChange;

/* The state before the first period: the balloon at actual. */
void ms_alloc_stuck_init(MsAllocStuck *s, guint64 actual);
/* One period: what was asked (target) and what the balloon is (actual). */
MsAllocStuckChange ms_alloc_stuck_update(MsAllocStuck *s, guint64 target, guint64 actual,
                                         gint64 now_us);

/* Publication of one agent's inputs (RUNSTATEDIR/memshare/domains/UUID/inputs):
 * "key=value" lines. Unknown keys ignored, missing or duplicated ones and
 * malformed values are errors; input bounded to MS_ALLOC_INPUT_MAX. The
 * key group is optional (agents older than sharing groups): without it
 * the domain is alone in its group, the safe reading. */
#define MS_ALLOC_INPUT_MAX 4096
char *ms_alloc_input_to_keyfile(const MsAllocDomain *d, MsAllocMode mode);
gboolean ms_alloc_input_from_keyfile(const char *buf, gsize len, const char *what,
                                     MsAllocDomain *d, MsAllocMode *mode,
                                     GError **error);

G_END_DECLS
