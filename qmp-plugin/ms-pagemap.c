/* qmp-plugin/ms-pagemap.c: classifies guest pages from the QEMU process's
 * page tables. Two readers feed one accounting: a pread of
 * /proc/PID/pagemap over each RAM block with a linear pass, and the
 * PAGEMAP_SCAN ioctl (Linux 6.7+), which returns only populated regions and
 * needs pagemap PFNs only where KSM must be told from private data. Both
 * end in the same bitmaps (populated, used) so that "freed by the guest"
 * and the counts are computed once, the same way, whatever the reader.
 * What the kernel can do is probed in ms-pagemap-probe.c; the usedmap
 * file it writes is encoded by formats/ms-usedmap.c. */
#include "ms-pagemap.h"
#include "ms-pagemap-probe.h"
#include "ms-status-keys.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ms-error.h"
#include "ms-kcompat.h"
#include "ms-pagemap-compat.h"
#include "ms-usedmap.h"
#include "ms-util.h"

G_DEFINE_QUARK(ms-pagemap-error-quark, ms_pagemap_error)

/* 8 MiB of pagemap entries describe 4 GiB of guest RAM: one pread covers a
 * typical guest, and the buffer stays small for a huge one. */
#define MS_PAGEMAP_DEFAULT_CHUNK (8 * 1024 * 1024)
#define MS_PAGEMAP_MAX_CHUNK (256 * 1024 * 1024)
/* kpageflags is read in windows of up to this many PFNs (32 KiB). */
#define MS_KPF_WINDOW 4096
/* PAGEMAP_SCAN output regions per ioctl; the walk resumes at walk_end. */
#define MS_SCAN_REGIONS 4096

typedef struct {
    guint64 pfn;
    guint64 bit;
} PendingPfn;

typedef struct {
    guint64 host_start;
    guint64 size;
    guint64 first_bit;   /* ram_offset / page_size */
    char *memdev_id;
} ScanBlock;

struct _MsPagemapScanner {
    pid_t pid;
    char *proc_root;
    int pagemap_fd;
    int kpf_fd;               /* -1 if /proc/kpageflags is unreadable */
    MsPagemapMethod method;   /* READ or SCAN */
    guint64 zero_pfn;
    guint64 page_size;
    gsize chunk_entries;

    ScanBlock *blocks;
    guint n_blocks;
    GArray *extents;          /* MsGuestMemExtent */

    guint64 n_pages;
    gsize n_words;
    guint64 *populated;       /* this scan: present or swapped */
    guint64 *building;        /* this scan: used (private, KSM, swapped) */
    guint64 *used;            /* last completed scan */
    guint64 *ever_used;
    gboolean scanned;
    gboolean window_open;

    guint64 *entries;         /* reused pagemap buffer, chunk_entries long */
    guint64 *kpf_buf;         /* MS_KPF_WINDOW */
    GArray *pending;          /* PendingPfn */
    struct page_region *regions;
};

const char *
ms_page_class_name(MsPageClass cls)
{
    /* the status file's [tracking] keys are these names */
    static const char *const names[MS_PAGE_N_CLASSES] = {
        [MS_PAGE_UNPOPULATED] = MS_STATUS_TRACKING_UNPOPULATED,
        [MS_PAGE_ZERO] = MS_STATUS_TRACKING_ZERO,
        [MS_PAGE_PRIVATE] = MS_STATUS_TRACKING_PRIVATE,
        [MS_PAGE_KSM] = MS_STATUS_TRACKING_KSM,
        [MS_PAGE_SWAPPED] = MS_STATUS_TRACKING_SWAPPED,
        [MS_PAGE_FREED] = MS_STATUS_TRACKING_FREED,
    };
    return (guint)cls < MS_PAGE_N_CLASSES ? names[cls] : "invalid";
}

const char *
ms_pagemap_method_name(MsPagemapMethod method)
{
    switch (method) {
    case MS_PAGEMAP_METHOD_READ: return "read";
    case MS_PAGEMAP_METHOD_SCAN: return "scan";
    case MS_PAGEMAP_METHOD_AUTO: break;
    }
    return "auto";
}

static inline MsPageClass
classify_present(guint64 pfn, guint64 zero_pfn, gboolean have_kpf, guint64 kpf)
{
    if (zero_pfn != 0 && pfn == zero_pfn)
        return MS_PAGE_ZERO;
    if (have_kpf) {
        /* KPF_ZERO_PAGE also covers the huge zero page, whose PFNs differ
         * from the 4 KiB zero page's (THP read faults map it). */
        if (kpf & MS_KPF_ZERO_PAGE)
            return MS_PAGE_ZERO;
        if (kpf & MS_KPF_KSM)
            return MS_PAGE_KSM;
    }
    return MS_PAGE_PRIVATE;
}

MsPageClass
ms_pagemap_classify_entry(guint64 entry, guint64 zero_pfn, gboolean have_kpf,
                          guint64 kpf, gboolean ever_used)
{
    if (entry & MS_PM_PRESENT)
        return classify_present(entry & MS_PM_PFN_MASK, zero_pfn, have_kpf, kpf);
    if (entry & MS_PM_SWAPPED)
        return MS_PAGE_SWAPPED;
    return ever_used ? MS_PAGE_FREED : MS_PAGE_UNPOPULATED;
}

/* ---- bitmaps ---- */

static inline void
bit_set(guint64 *map, guint64 bit)
{
    map[bit >> 6] |= G_GUINT64_CONSTANT(1) << (bit & 63);
}

static inline gboolean
bit_test(const guint64 *map, guint64 bit)
{
    return (map[bit >> 6] >> (bit & 63)) & 1;
}

static void
bit_set_range(guint64 *map, guint64 first, guint64 count)
{
    guint64 end = first + count;
    while (first < end && (first & 63)) {
        bit_set(map, first);
        first++;
    }
    while (first + 64 <= end) {
        map[first >> 6] = G_MAXUINT64;
        first += 64;
    }
    while (first < end) {
        bit_set(map, first);
        first++;
    }
}

/* ---- scanner ---- */

void
ms_pagemap_scanner_free(MsPagemapScanner *s)
{
    if (!s)
        return;
    if (s->pagemap_fd >= 0)
        close(s->pagemap_fd);
    if (s->kpf_fd >= 0)
        close(s->kpf_fd);
    for (guint i = 0; i < s->n_blocks; i++)
        g_free(s->blocks[i].memdev_id);
    g_free(s->blocks);
    if (s->extents)
        g_array_unref(s->extents);
    g_free(s->populated);
    g_free(s->building);
    g_free(s->used);
    g_free(s->ever_used);
    g_free(s->entries);
    g_free(s->kpf_buf);
    if (s->pending)
        g_array_unref(s->pending);
    g_free(s->regions);
    g_free(s->proc_root);
    g_free(s);
}

MsPagemapScanner *
ms_pagemap_scanner_new(pid_t pid, GPtrArray *blocks, const MsGuestMemLayout *layout,
                       const MsPagemapOptions *options, GError **error)
{
    MsPagemapOptions defaults = { 0 };
    if (!options)
        options = &defaults;
    if (!blocks || blocks->len == 0) {
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_INVALID,
                    "QEMU process %d: no RAM blocks to scan", (int)pid);
        return NULL;
    }
    g_autoptr(MsPagemapScanner) s = g_new0(MsPagemapScanner, 1);
    s->pagemap_fd = -1;
    s->kpf_fd = -1;
    s->pid = pid;
    s->proc_root = g_strdup(options->proc_root ? options->proc_root : "/proc");
    s->page_size = (guint64)sysconf(_SC_PAGESIZE);
    s->zero_pfn = options->zero_pfn ? options->zero_pfn : ms_pagemap_zero_pfn();
    gsize chunk = options->chunk_bytes ? options->chunk_bytes : MS_PAGEMAP_DEFAULT_CHUNK;
    chunk = CLAMP(chunk, 8, MS_PAGEMAP_MAX_CHUNK);
    s->chunk_entries = chunk / 8;

    /* Blocks must tile RAM-offset space in order: that is what makes the
     * bitmap's order the guest-physical order. */
    s->n_blocks = blocks->len;
    s->blocks = g_new0(ScanBlock, blocks->len);
    guint64 expect = 0;
    for (guint i = 0; i < blocks->len; i++) {
        const MsGuestMemBlock *b = g_ptr_array_index(blocks, i);
        if (b->size == 0 || b->size % s->page_size || b->host_start % s->page_size ||
            b->ram_offset != expect || b->host_start + b->size < b->host_start) {
            g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_INVALID,
                        "RAM block '%s': start 0x%" G_GINT64_MODIFIER "x, size %"
                        G_GUINT64_FORMAT ", RAM offset %" G_GUINT64_FORMAT
                        ": not page aligned or not following the previous block",
                        b->memdev_id, b->host_start, b->size, b->ram_offset);
            return NULL;
        }
        s->blocks[i] = (ScanBlock){ b->host_start, b->size,
                                    b->ram_offset / s->page_size,
                                    g_strdup(b->memdev_id) };
        expect += b->size;
    }
    s->n_pages = expect / s->page_size;
    if (s->n_pages > MS_USEDMAP_MAX_PAGES) {
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_TOO_BIG,
                    "QEMU process %d: %" G_GUINT64_FORMAT " guest pages is too many",
                    (int)pid, s->n_pages);
        return NULL;
    }

    MsGuestMemLayout flat;
    if (!layout) {
        if (!ms_guestmem_layout_init(&flat, MS_GUESTMEM_MACHINE_FLAT, expect, 0, error))
            return NULL;
        layout = &flat;
    }
    if (layout->ram_size != expect) {
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_INVALID,
                    "layout RAM size %" G_GUINT64_FORMAT " differs from the blocks' %"
                    G_GUINT64_FORMAT, layout->ram_size, expect);
        return NULL;
    }
    s->extents = g_array_new(FALSE, FALSE, sizeof(MsGuestMemExtent));
    for (guint i = 0; i < blocks->len; i++) {
        const MsGuestMemBlock *b = g_ptr_array_index(blocks, i);
        g_autoptr(GArray) ext = ms_guestmem_layout_extents(layout, b->ram_offset, b->size);
        g_array_append_vals(s->extents, ext->data, ext->len);
    }

    g_autofree char *pm_path = g_strdup_printf("%s/%d/pagemap", s->proc_root, (int)pid);
    s->pagemap_fd = open(pm_path, O_RDONLY | O_CLOEXEC);
    if (s->pagemap_fd < 0) {
        int e = errno;
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                    "cannot open '%s': %s", pm_path, g_strerror(e));
        return NULL;
    }
    g_autofree char *kpf_path = g_build_filename(s->proc_root, "kpageflags", NULL);
    s->kpf_fd = open(kpf_path, O_RDONLY | O_CLOEXEC);
    if (s->kpf_fd < 0)
        g_debug("'%s' unreadable (%s): KSM pages will count as private",
                kpf_path, g_strerror(errno));

    s->method = options->method;
    if (s->method != MS_PAGEMAP_METHOD_READ) {
        int r = ms_pagemap_probe_scan(s->pagemap_fd, s->blocks[0].host_start, s->page_size);
        if (r == 1) {
            s->method = MS_PAGEMAP_METHOD_SCAN;
        } else if (options->method == MS_PAGEMAP_METHOD_SCAN) {
            g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_NOT_SUPPORTED,
                        "PAGEMAP_SCAN on '%s': %s", pm_path,
                        ms_kcompat_hidden(MS_KCOMPAT_PAGEMAP_SCAN) ? "hidden by MEMSHARE_HIDE"
                        : r == 0 ? "not supported by this kernel (Linux 6.7+ needed)"
                                 : g_strerror(errno));
            return NULL;
        } else {
            s->method = MS_PAGEMAP_METHOD_READ;
        }
    }

    s->n_words = (s->n_pages + 63) / 64;
    s->populated = g_new0(guint64, s->n_words);
    s->building = g_new0(guint64, s->n_words);
    s->used = g_new0(guint64, s->n_words);
    s->ever_used = g_new0(guint64, s->n_words);
    /* Never larger than the biggest block needs. */
    guint64 max_block_pages = 0;
    for (guint i = 0; i < s->n_blocks; i++)
        max_block_pages = MAX(max_block_pages, s->blocks[i].size / s->page_size);
    s->chunk_entries = MIN(s->chunk_entries, max_block_pages);
    s->entries = g_new(guint64, s->chunk_entries);
    s->kpf_buf = g_new(guint64, MS_KPF_WINDOW);
    s->pending = g_array_new(FALSE, FALSE, sizeof(PendingPfn));
    if (s->method == MS_PAGEMAP_METHOD_SCAN)
        s->regions = g_new(struct page_region, MS_SCAN_REGIONS);
    return g_steal_pointer(&s);
}

MsPagemapMethod
ms_pagemap_scanner_get_method(MsPagemapScanner *s)
{
    return s->method;
}

/* The QEMU process may unmap or remap a block (memdev deleted) or exit and
 * have its pid reused; pagemap would then read as "nothing populated" and
 * every page would look freed. One look at maps per scan catches it. */
static gboolean
check_blocks_mapped(MsPagemapScanner *s, GError **error)
{
    g_autofree char *path = g_strdup_printf("%s/%d/maps", s->proc_root, (int)s->pid);
    g_autofree char *maps = NULL;
    gsize len = 0;
    g_autoptr(GError) local = NULL;
    if (!ms_file_read_bounded(path, 64 * 1024 * 1024, &maps, &len, &local)) {
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                    "QEMU process %d gone? %s", (int)s->pid, local->message);
        return FALSE;
    }
    g_autoptr(GPtrArray) maps_list = ms_guestmem_parse_maps(maps, len, NULL, 0, error);
    if (!maps_list)
        return FALSE;
    for (guint i = 0; i < s->n_blocks; i++) {
        const ScanBlock *b = &s->blocks[i];
        guint64 covered = b->host_start, end = b->host_start + b->size;
        /* maps is sorted; a block may be split into several VMAs. */
        for (guint j = 0; j < maps_list->len && covered < end; j++) {
            MsGuestMemCandidate *c = g_ptr_array_index(maps_list, j);
            if (c->start <= covered && c->end > covered)
                covered = c->end;
        }
        if (covered < end) {
            g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                        "QEMU process %d: RAM block '%s' at 0x%" G_GINT64_MODIFIER
                        "x is no longer mapped (from 0x%" G_GINT64_MODIFIER "x)",
                        (int)s->pid, b->memdev_id, b->host_start, covered);
            return FALSE;
        }
    }
    return TRUE;
}

typedef struct {
    guint64 pages[MS_PAGE_N_CLASSES];
    guint64 soft_dirty;
} Tally;

static int
pending_cmp(const void *a, const void *b)
{
    guint64 pa = ((const PendingPfn *)a)->pfn, pb = ((const PendingPfn *)b)->pfn;
    return pa < pb ? -1 : pa > pb;
}

/* Looks up the frames of present pages in /proc/kpageflags, sorted by PFN
 * and read in windows, so a run of nearby frames costs one pread. */
static void
resolve_pending(MsPagemapScanner *s, Tally *t)
{
    GArray *pend = s->pending;
    if (pend->len == 0)
        return;
    PendingPfn *p = (PendingPfn *)pend->data;
    gboolean sorted = TRUE;
    for (guint i = 1; i < pend->len && sorted; i++)
        sorted = p[i - 1].pfn <= p[i].pfn;
    if (!sorted)
        qsort(p, pend->len, sizeof(PendingPfn), pending_cmp);

    guint i = 0;
    while (i < pend->len) {
        guint64 base = p[i].pfn;
        guint j = i;
        while (j < pend->len && p[j].pfn - base < MS_KPF_WINDOW)
            j++;
        gsize want = (gsize)(p[j - 1].pfn - base + 1);
        gsize got = 0;
        if (!ms_pagemap_pread_full(s->kpf_fd, s->kpf_buf, want * 8, base * 8, &got))
            got = 0;   /* unreadable frames count as private, never fail a scan */
        for (guint k = i; k < j; k++) {
            gsize idx = (gsize)(p[k].pfn - base);
            gboolean have = (idx + 1) * 8 <= got;
            MsPageClass cls = classify_present(p[k].pfn, s->zero_pfn, have,
                                               have ? s->kpf_buf[idx] : 0);
            t->pages[cls]++;
            if (cls != MS_PAGE_ZERO)
                bit_set(s->building, p[k].bit);
        }
        i = j;
    }
    g_array_set_size(pend, 0);
}

/* The linear pass over pagemap entries of one stretch: first_bit is the
 * bitmap position of entries[0]. */
static void
account_entries(MsPagemapScanner *s, const guint64 *entries, gsize n,
                guint64 first_bit, Tally *t)
{
    gboolean kpf = s->kpf_fd >= 0;
    for (gsize i = 0; i < n; i++) {
        guint64 e = entries[i];
        if (!(e & (MS_PM_PRESENT | MS_PM_SWAPPED)))
            continue;
        guint64 bit = first_bit + i;
        bit_set(s->populated, bit);
        if (e & MS_PM_SOFT_DIRTY)
            t->soft_dirty++;
        if (!(e & MS_PM_PRESENT)) {
            t->pages[MS_PAGE_SWAPPED]++;
            bit_set(s->building, bit);
            continue;
        }
        guint64 pfn = e & MS_PM_PFN_MASK;
        if (s->zero_pfn && pfn == s->zero_pfn) {
            t->pages[MS_PAGE_ZERO]++;
        } else if (kpf && pfn != 0 && !(e & MS_PM_EXCLUSIVE)) {
            /* Only a frame mapped more than once can be a KSM page that
             * saves memory or the huge zero page (never marked exclusive):
             * an exclusive one is private data, no kpageflags lookup
             * needed. That lookup is the kernel's per-frame cost and
             * dominated a scan when every present frame took one. */
            PendingPfn pp = { pfn, bit };
            g_array_append_val(s->pending, pp);
        } else {
            t->pages[MS_PAGE_PRIVATE]++;
            bit_set(s->building, bit);
        }
    }
}

static gboolean
read_entries(MsPagemapScanner *s, const ScanBlock *b, guint64 va, gsize n,
             GError **error)
{
    gsize got = 0;
    if (!ms_pagemap_pread_full(s->pagemap_fd, s->entries, n * 8, (va / s->page_size) * 8, &got) ||
        got != n * 8) {
        int e = errno;
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                    "QEMU process %d, RAM block '%s': pagemap read at 0x%"
                    G_GINT64_MODIFIER "x returned %" G_GSIZE_FORMAT " of %"
                    G_GSIZE_FORMAT " bytes (%s)", (int)s->pid, b->memdev_id,
                    va, got, n * 8, got ? "short read" :
                    (e ? g_strerror(e) : "end of file: process gone?"));
        return FALSE;
    }
    return TRUE;
}

/* Reads pagemap entries of [addr, addr + n pages) in chunks and accounts
 * them. A short read means the process is gone: an error, never a guess. */
static gboolean
read_and_account(MsPagemapScanner *s, const ScanBlock *b, guint64 addr,
                 guint64 n_pages, Tally *t, GError **error)
{
    guint64 done = 0;
    while (done < n_pages) {
        gsize n = (gsize)MIN(n_pages - done, (guint64)s->chunk_entries);
        guint64 va = addr + done * s->page_size;
        if (!read_entries(s, b, va, n, error))
            return FALSE;
        guint64 first_bit = b->first_bit + (va - b->host_start) / s->page_size;
        account_entries(s, s->entries, n, first_bit, t);
        resolve_pending(s, t);
        done += n;
    }
    return TRUE;
}

/* Populated ranges whose frames must be looked up (present, not the zero
 * page), gathered so that nearby ones share one pagemap pread: with many
 * small regions a pread per region would cost more than the whole read. */
typedef struct {
    guint64 span_start, span_end;   /* host virtual, covers all ranges */
    GArray *ranges;                 /* pairs of guint64: start, end */
} PfnSpan;

/* Regions closer than this (in pages) share a pread: 8 KiB of entries. */
#define MS_SPAN_GAP 1024

static gboolean
span_flush(MsPagemapScanner *s, const ScanBlock *b, PfnSpan *sp, Tally *t,
           GError **error)
{
    if (sp->ranges->len == 0)
        return TRUE;
    gsize n = (gsize)((sp->span_end - sp->span_start) / s->page_size);
    if (!read_entries(s, b, sp->span_start, n, error))
        return FALSE;
    const guint64 *r = (const guint64 *)sp->ranges->data;
    for (guint i = 0; i < sp->ranges->len; i += 2) {
        gsize off = (gsize)((r[i] - sp->span_start) / s->page_size);
        gsize cnt = (gsize)((r[i + 1] - r[i]) / s->page_size);
        guint64 first_bit = b->first_bit + (r[i] - b->host_start) / s->page_size;
        account_entries(s, s->entries + off, cnt, first_bit, t);
    }
    g_array_set_size(sp->ranges, 0);
    /* Bound the pending list; sorting more at once buys little. */
    if (s->pending->len >= s->chunk_entries)
        resolve_pending(s, t);
    return TRUE;
}

static gboolean
span_add(MsPagemapScanner *s, const ScanBlock *b, PfnSpan *sp, guint64 start,
         guint64 end, Tally *t, GError **error)
{
    while (start < end) {
        /* A region longer than the buffer is cut into buffer-sized parts. */
        guint64 part_end = MIN(end, start + s->chunk_entries * s->page_size);
        if (sp->ranges->len > 0 &&
            (start - sp->span_end > MS_SPAN_GAP * s->page_size ||
             part_end - sp->span_start > s->chunk_entries * s->page_size)) {
            if (!span_flush(s, b, sp, t, error))
                return FALSE;
        }
        if (sp->ranges->len == 0)
            sp->span_start = start;
        sp->span_end = part_end;
        g_array_append_val(sp->ranges, start);
        g_array_append_val(sp->ranges, part_end);
        start = part_end;
    }
    return TRUE;
}

static gboolean
scan_block_scan(MsPagemapScanner *s, const ScanBlock *b, Tally *t, GError **error)
{
    guint64 end = b->host_start + b->size;
    guint64 start = b->host_start;
    gboolean kpf = s->kpf_fd >= 0;
    g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(guint64));
    PfnSpan sp = { 0, 0, ranges };
    while (start < end) {
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .start = start,
            .end = end,
            .vec = (guint64)(uintptr_t)s->regions,
            .vec_len = MS_SCAN_REGIONS,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO |
                           PAGE_IS_SOFT_DIRTY,
        };
        int n;
        /* Valgrind does not know that PAGEMAP_SCAN fills the vector;
         * clearing it keeps the memcheck run of the tests meaningful and
         * costs less than the ioctl itself. */
        memset(s->regions, 0, sizeof(*s->regions) * MS_SCAN_REGIONS);
        do
            n = ioctl(s->pagemap_fd, PAGEMAP_SCAN, &arg);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            int e = errno;
            g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                        "QEMU process %d, RAM block '%s': PAGEMAP_SCAN at 0x%"
                        G_GINT64_MODIFIER "x: %s", (int)s->pid, b->memdev_id,
                        start, g_strerror(e));
            return FALSE;
        }
        if (n > MS_SCAN_REGIONS) {
            g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                        "PAGEMAP_SCAN returned %d regions for %d slots", n,
                        MS_SCAN_REGIONS);
            return FALSE;
        }
        for (int i = 0; i < n; i++) {
            const struct page_region *r = &s->regions[i];
            if (r->start < start || r->end > end || r->end <= r->start ||
                r->start % s->page_size || r->end % s->page_size) {
                g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                            "PAGEMAP_SCAN returned region 0x%llx-0x%llx outside "
                            "0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER "x",
                            (unsigned long long)r->start, (unsigned long long)r->end,
                            start, end);
                return FALSE;
            }
            guint64 first = b->first_bit + (r->start - b->host_start) / s->page_size;
            guint64 count = (r->end - r->start) / s->page_size;
            if ((r->categories & PAGE_IS_PRESENT) &&
                !(r->categories & PAGE_IS_PFNZERO) && kpf) {
                /* Only frames tell KSM pages from private ones. */
                if (!span_add(s, b, &sp, r->start, r->end, t, error))
                    return FALSE;
                continue;
            }
            bit_set_range(s->populated, first, count);
            if (r->categories & PAGE_IS_SOFT_DIRTY)
                t->soft_dirty += count;
            if (r->categories & PAGE_IS_PRESENT) {
                if (r->categories & PAGE_IS_PFNZERO) {
                    t->pages[MS_PAGE_ZERO] += count;
                } else {
                    t->pages[MS_PAGE_PRIVATE] += count;
                    bit_set_range(s->building, first, count);
                }
            } else {
                t->pages[MS_PAGE_SWAPPED] += count;
                bit_set_range(s->building, first, count);
            }
        }
        /* Only a full output vector means the walk stopped early. A walk
         * that completes can leave walk_end stale (seen on 6.18 when the
         * kernel's internal 512-region batches ran more than once): trusting
         * it would scan the tail again and count it twice. */
        if ((guint64)n < MS_SCAN_REGIONS)
            break;
        guint64 next = MAX(arg.walk_end, s->regions[n - 1].end);
        if (next <= start || next > end) {
            g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                        "PAGEMAP_SCAN stopped at 0x%llx, outside 0x%" G_GINT64_MODIFIER
                        "x-0x%" G_GINT64_MODIFIER "x", (unsigned long long)next,
                        start, end);
            return FALSE;
        }
        start = next;
    }
    if (!span_flush(s, b, &sp, t, error))
        return FALSE;
    resolve_pending(s, t);
    return TRUE;
}

gboolean
ms_pagemap_scanner_scan(MsPagemapScanner *s, MsPageCounts *counts, GError **error)
{
    if (!check_blocks_mapped(s, error))
        return FALSE;
    memset(s->populated, 0, s->n_words * 8);
    memset(s->building, 0, s->n_words * 8);
    g_array_set_size(s->pending, 0);
    Tally t = { { 0 }, 0 };
    for (guint i = 0; i < s->n_blocks; i++) {
        const ScanBlock *b = &s->blocks[i];
        gboolean ok = s->method == MS_PAGEMAP_METHOD_SCAN
                      ? scan_block_scan(s, b, &t, error)
                      : read_and_account(s, b, b->host_start, b->size / s->page_size,
                                         &t, error);
        if (!ok)
            return FALSE;
    }

    guint64 populated = 0, freed = 0, freed_since_last = 0;
    for (gsize w = 0; w < s->n_words; w++) {
        populated += __builtin_popcountll(s->populated[w]);
        freed += __builtin_popcountll(s->ever_used[w] & ~s->populated[w]);
        freed_since_last += __builtin_popcountll(s->used[w] & ~s->populated[w]);
    }
    guint64 sum = t.pages[MS_PAGE_ZERO] + t.pages[MS_PAGE_PRIVATE] +
                  t.pages[MS_PAGE_KSM] + t.pages[MS_PAGE_SWAPPED];
    if (sum != populated) {
        /* Only a kernel returning overlapping regions could do this. */
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                    "QEMU process %d: %" G_GUINT64_FORMAT " pages classified (zero %"
                    G_GUINT64_FORMAT ", private %" G_GUINT64_FORMAT ", KSM %"
                    G_GUINT64_FORMAT ", swapped %" G_GUINT64_FORMAT ") but %"
                    G_GUINT64_FORMAT " populated", (int)s->pid, sum,
                    t.pages[MS_PAGE_ZERO], t.pages[MS_PAGE_PRIVATE], t.pages[MS_PAGE_KSM],
                    t.pages[MS_PAGE_SWAPPED], populated);
        return FALSE;
    }

    MsPageCounts c = { 0 };
    c.page_size = s->page_size;
    c.total_pages = s->n_pages;
    memcpy(c.pages, t.pages, sizeof(c.pages));
    c.pages[MS_PAGE_FREED] = freed;
    c.pages[MS_PAGE_UNPOPULATED] = s->n_pages - populated - freed;
    c.freed_since_last = s->scanned ? freed_since_last : 0;
    c.soft_dirty_pages = t.soft_dirty;
    c.soft_dirty_valid = s->window_open;
    c.kpageflags_known = s->kpf_fd >= 0;
    c.method = s->method;

    for (gsize w = 0; w < s->n_words; w++)
        s->ever_used[w] |= s->building[w];
    guint64 *tmp = s->used;
    s->used = s->building;
    s->building = tmp;
    s->scanned = TRUE;
    *counts = c;
    return TRUE;
}

gboolean
ms_pagemap_scanner_start_window(MsPagemapScanner *s, GError **error)
{
    /* Only the real /proc speaks for the running kernel; fixture trees are
     * taken at their word. */
    if (g_str_equal(s->proc_root, "/proc") && !ms_pagemap_soft_dirty_supported()) {
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_NOT_SUPPORTED,
                    "this kernel does not track soft-dirty pages "
                    "(CONFIG_MEM_SOFT_DIRTY is off): no working-set window");
        return FALSE;
    }
    g_autofree char *path = g_strdup_printf("%s/%d/clear_refs", s->proc_root, (int)s->pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "4", 1) != 1) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO,
                    "cannot clear soft-dirty bits via '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    close(fd);
    s->window_open = TRUE;
    return TRUE;
}

const guint8 *
ms_pagemap_scanner_get_used_bitmap(MsPagemapScanner *s, guint64 *n_pages)
{
    if (!s->scanned)
        return NULL;
    if (n_pages)
        *n_pages = s->n_pages;
    /* guint64 words on a little-endian host are LSB-first bytes. */
    G_STATIC_ASSERT(G_BYTE_ORDER == G_LITTLE_ENDIAN);
    return (const guint8 *)s->used;
}

GArray *
ms_pagemap_scanner_get_extents(MsPagemapScanner *s)
{
    return s->extents;
}

gboolean
ms_pagemap_scanner_write_usedmap(MsPagemapScanner *s, const char *path, GError **error)
{
    const guint8 *bm = ms_pagemap_scanner_get_used_bitmap(s, NULL);
    if (!bm) {
        g_set_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_INVALID,
                    "usedmap '%s': no scan yet", path);
        return FALSE;
    }
    return ms_usedmap_write(path, (guint32)s->page_size, s->extents, bm,
                            (guint64)g_get_real_time(), error);
}
