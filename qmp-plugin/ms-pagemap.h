/* qmp-plugin/ms-pagemap.h: used-page tracking from the host's page tables.
 * Owns the classification of every guest page (never populated, zero page,
 * private data, KSM-merged, swapped, freed by the guest), the two ways of
 * reading it (pread of /proc/PID/pagemap, and the PAGEMAP_SCAN ioctl of
 * Linux 6.7+, chosen at run time), the soft-dirty working-set window, the
 * used-page bitmap. The capability probes below live in ms-pagemap-probe.c,
 * the bitmap's file format in formats/ms-usedmap.h.
 *
 * Host page tables are the whole source: no guest cooperation, no
 * userfaultfd, no introspection. What the guest frees becomes "not present"
 * only once it is handed back (balloon, free page reporting). */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "ms-guestmem.h"

G_BEGIN_DECLS

#define MS_PAGEMAP_ERROR (ms_pagemap_error_quark())
GQuark ms_pagemap_error_quark(void);

typedef enum {
    MS_PAGEMAP_ERROR_IO,            /* /proc unreadable, short read: QEMU gone? */
    MS_PAGEMAP_ERROR_INVALID,       /* bad blocks, no scan to write yet */
    MS_PAGEMAP_ERROR_NOT_SUPPORTED, /* asked for PAGEMAP_SCAN, kernel lacks it */
    MS_PAGEMAP_ERROR_TOO_BIG,
} MsPagemapErrorCode;

/* Every page is in exactly one class. */
typedef enum {
    MS_PAGE_UNPOPULATED,  /* not present, not swapped, never used in our scans */
    MS_PAGE_ZERO,         /* mapped to the shared zero page: read, never written */
    MS_PAGE_PRIVATE,      /* present with its own frame: guest data */
    MS_PAGE_KSM,          /* present, frame is a KSM page (kpageflags KSM) */
    MS_PAGE_SWAPPED,      /* guest data on swap */
    MS_PAGE_FREED,        /* used in an earlier scan, now unpopulated */
    MS_PAGE_N_CLASSES
} MsPageClass;

const char *ms_page_class_name(MsPageClass cls);

typedef enum {
    MS_PAGEMAP_METHOD_AUTO,   /* PAGEMAP_SCAN when the kernel has it, else READ */
    MS_PAGEMAP_METHOD_READ,   /* pread /proc/PID/pagemap, linear pass */
    MS_PAGEMAP_METHOD_SCAN,   /* PAGEMAP_SCAN; fails if unsupported */
} MsPagemapMethod;

const char *ms_pagemap_method_name(MsPagemapMethod method);

typedef struct {
    guint64 page_size;                  /* bytes per page counted */
    guint64 total_pages;
    guint64 pages[MS_PAGE_N_CLASSES];
    /* Used (private, KSM or swapped) at the previous scan, unpopulated now:
     * what the guest handed back since then. */
    guint64 freed_since_last;
    /* Present or swapped pages with the soft-dirty bit: pages written since
     * ms_pagemap_scanner_start_window(); valid only when soft_dirty_valid. */
    guint64 soft_dirty_pages;
    gboolean soft_dirty_valid;
    /* FALSE when /proc/kpageflags was unreadable: KSM pages are then counted
     * as private (and a huge zero page too). */
    gboolean kpageflags_known;
    MsPagemapMethod method;             /* READ or SCAN: what this scan used */
} MsPageCounts;

static inline guint64
ms_page_counts_bytes(const MsPageCounts *counts, MsPageClass cls)
{
    return counts->pages[cls] * counts->page_size;
}

/* Pure classification of one pagemap entry; the unit of both paths.
 * zero_pfn: the shared zero page's PFN (0: unknown); kpf: the frame's
 * /proc/kpageflags word if have_kpf. ever_used: the page was private, KSM
 * or swapped in an earlier scan. */
MsPageClass ms_pagemap_classify_entry(guint64 entry, guint64 zero_pfn,
                                      gboolean have_kpf, guint64 kpf,
                                      gboolean ever_used);

/* The PFN of the shared zero page, found by read-faulting two fresh private
 * pages of our own and looking them up in /proc/self/pagemap; cached. 0
 * when PFNs are hidden from us (no CAP_SYS_ADMIN) or when the kernel
 * allocates a frame on read faults instead of mapping the zero page. */
guint64 ms_pagemap_zero_pfn(void);

/* Whether /proc/self/pagemap shows us PFNs (root; else they read as 0). */
gboolean ms_pagemap_pfns_visible(void);

/* Whether the running kernel has PAGEMAP_SCAN (probed once on our own
 * pagemap; EINVAL/ENOTTY mean no) and MEMSHARE_HIDE does not hide it
 * (ms-kcompat; the scanner's own probe answers EINVAL then, as 6.1). */
gboolean ms_pagemap_scan_supported(void);

typedef struct {
    MsPagemapMethod method;
    const char *proc_root;    /* NULL: "/proc"; tests use fixture trees */
    guint64 zero_pfn;         /* 0: ms_pagemap_zero_pfn() (tests set it) */
    gsize chunk_bytes;        /* pagemap bytes per pread; 0: 8 MiB (4 GiB of guest) */
} MsPagemapOptions;

typedef struct _MsPagemapScanner MsPagemapScanner;

/* blocks: MsGuestMemBlock* from ms_guestmem_discover (copied); layout: for
 * the guest-physical extents of the used bitmap (NULL: flat). Opens
 * PROC_ROOT/PID/pagemap now and keeps it: if the process exits, later scans
 * fail instead of reading a new process that reused the pid. */
MsPagemapScanner *ms_pagemap_scanner_new(pid_t pid, GPtrArray *blocks,
                                         const MsGuestMemLayout *layout,
                                         const MsPagemapOptions *options,
                                         GError **error);
void ms_pagemap_scanner_free(MsPagemapScanner *scanner);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsPagemapScanner, ms_pagemap_scanner_free)

/* The method scans use (READ or SCAN, AUTO resolved). */
MsPagemapMethod ms_pagemap_scanner_get_method(MsPagemapScanner *scanner);

/* Classifies every page of every block. counts is written only on success. */
gboolean ms_pagemap_scanner_scan(MsPagemapScanner *scanner, MsPageCounts *counts,
                                 GError **error);

/* Whether the running kernel tracks soft-dirty bits (CONFIG_MEM_SOFT_DIRTY;
 * some distribution and cloud kernels leave it off). Probed once. */
gboolean ms_pagemap_soft_dirty_supported(void);

/* Starts a soft-dirty window: writes "4" to PROC_ROOT/PID/clear_refs
 * (MS_PAGEMAP_ERROR_NOT_SUPPORTED where the kernel lacks soft-dirty). This
 * write-protects every page of the WHOLE QEMU process (not only guest RAM),
 * so each page's next write takes a minor fault; see docs/usedmap.md. */
gboolean ms_pagemap_scanner_start_window(MsPagemapScanner *scanner, GError **error);

/* The used bitmap of the last scan: bit i (LSB-first in each byte) is page i
 * of RAM-offset space, which is guest-physical order. NULL before a scan. */
const guint8 *ms_pagemap_scanner_get_used_bitmap(MsPagemapScanner *scanner,
                                                 guint64 *n_pages);

/* The guest-physical extents the bitmap covers (MsGuestMemExtent). */
GArray *ms_pagemap_scanner_get_extents(MsPagemapScanner *scanner);

/* Writes the last scan's used bitmap as a usedmap file (formats/ms-usedmap.h,
 * docs/usedmap.md), atomically. */
gboolean ms_pagemap_scanner_write_usedmap(MsPagemapScanner *scanner,
                                          const char *path, GError **error);

G_END_DECLS
