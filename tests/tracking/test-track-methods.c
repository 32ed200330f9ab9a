/* tests/tracking/test-track-methods.c: the two pagemap readers (pread and
 * PAGEMAP_SCAN) against real page tables, and the zero-page class.
 *   /tracking/zero-read        a mapping of our own: pages read but never
 *                              written are 'zero' where the kernel maps the
 *                              shared zero page, 'private' where it
 *                              allocates on read faults (this 6.18 host)
 *   /tracking/methods-self     both readers classify our own mapping alike
 *   /tracking/methods-live     both readers classify a live QEMU alike: run
 *                              by test-tracking-methods.sh with MS_QEMU_PID
 *                              and MS_QEMU_RAM_MIB while the guest is stopped
 * Root needed for PFNs (zero page, KSM); skipped otherwise. */
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ms-guestmem.h"
#include "ms-pagemap.h"

#define MiB (G_GUINT64_CONSTANT(1) << 20)

/* One block standing for a mapping of this process. */
static GPtrArray *
self_blocks(void *addr, guint64 size)
{
    GPtrArray *blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
    MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
    b->memdev_id = g_strdup("self");
    b->backend = MS_GUESTMEM_BACKEND_RAM;
    b->size = size;
    b->host_start = (guint64)(guintptr)addr;
    b->kernel_page_size = 4096;
    g_ptr_array_add(blocks, b);
    return blocks;
}

static void
scan_with(pid_t pid, GPtrArray *blocks, const MsGuestMemLayout *layout, MsPagemapMethod method,
          MsPageCounts *c, GBytes **bitmap)
{
    g_autoptr(GError) error = NULL;
    MsPagemapOptions opts = { .method = method };
    g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(pid, blocks, layout, &opts, &error);
    g_assert_no_error(error);
    g_assert_true(ms_pagemap_scanner_scan(s, c, &error));
    g_assert_no_error(error);
    g_assert_cmpint(c->method, ==, method);
    guint64 n = 0;
    const guint8 *bm = ms_pagemap_scanner_get_used_bitmap(s, &n);
    g_assert_nonnull(bm);
    *bitmap = g_bytes_new(bm, (n + 7) / 8);
}

static void
print_counts(const char *what, const MsPageCounts *c)
{
    GString *s = g_string_new(NULL);
    for (int k = 0; k < MS_PAGE_N_CLASSES; k++)
        g_string_append_printf(s, " %s=%" G_GUINT64_FORMAT, ms_page_class_name(k), c->pages[k]);
    g_test_message("%s (pages):%s", what, s->str);
    g_string_free(s, TRUE);
}

static gboolean
counts_equal(const MsPageCounts *a, const MsPageCounts *b)
{
    if (a->total_pages != b->total_pages || a->kpageflags_known != b->kpageflags_known)
        return FALSE;
    for (int k = 0; k < MS_PAGE_N_CLASSES; k++)
        if (a->pages[k] != b->pages[k])
            return FALSE;
    return TRUE;
}

/* The kernel may change a process's pages even while nothing in it runs:
 * KSM merges mergeable pages (QEMU marks guest RAM so, and other tests of the
 * suite turn host KSM on in parallel) and khugepaged collapses huge pages.
 * So the scan is bracketed by two reads: only when both reads agree was the
 * memory still, and then the scan must match them exactly. A few tries give
 * a quiet window; none in a row is a failure that says why. */
static void
compare_methods(pid_t pid, GPtrArray *blocks, const MsGuestMemLayout *layout)
{
    if (!ms_pagemap_scan_supported()) {
        g_test_skip("this kernel has no PAGEMAP_SCAN");
        return;
    }
    for (int attempt = 1; attempt <= 8; attempt++) {
        MsPageCounts r1, s, r2;
        g_autoptr(GBytes) rb1 = NULL, sb = NULL, rb2 = NULL;
        scan_with(pid, blocks, layout, MS_PAGEMAP_METHOD_READ, &r1, &rb1);
        scan_with(pid, blocks, layout, MS_PAGEMAP_METHOD_SCAN, &s, &sb);
        scan_with(pid, blocks, layout, MS_PAGEMAP_METHOD_READ, &r2, &rb2);
        print_counts("read", &r1);
        print_counts("scan", &s);
        if (!counts_equal(&r1, &r2) || !g_bytes_equal(rb1, rb2)) {
            print_counts("read again", &r2);
            g_test_message("attempt %d: the pages changed between the two reads "
                           "(KSM or khugepaged at work); trying again", attempt);
            g_usleep(200 * 1000);
            continue;
        }
        g_assert_cmpuint(r1.total_pages, ==, s.total_pages);
        for (int k = 0; k < MS_PAGE_N_CLASSES; k++)
            g_assert_cmpuint(r1.pages[k], ==, s.pages[k]);
        g_assert_cmpint(r1.kpageflags_known, ==, s.kpageflags_known);
        /* Same pages, not only same numbers. */
        g_assert_true(g_bytes_equal(rb1, sb));
        return;
    }
    g_test_fail_printf("the pages never held still across read, scan, read in 8 tries");
}

static void
test_zero_read(void)
{
    if (!ms_pagemap_pfns_visible()) {
        g_test_skip("PFNs hidden (not root): the zero page cannot be told");
        return;
    }
    const guint64 size = 64 * MiB;
    guint8 *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(p != MAP_FAILED);
    /* 4 KiB pages: no THP (a huge zero page would be one frame for 512). */
    madvise(p, size, MADV_NOHUGEPAGE);
    volatile guint8 sink = 0;
    for (guint64 off = 0; off < 16 * MiB; off += 4096)
        sink += p[off];                 /* read: never written */
    for (guint64 off = 32 * MiB; off < 48 * MiB; off += 4096)
        p[off] = 1;                     /* written */
    (void)sink;
    g_autoptr(GPtrArray) blocks = self_blocks(p, size);
    MsPageCounts c;
    g_autoptr(GBytes) bm = NULL;
    scan_with(getpid(), blocks, NULL, MS_PAGEMAP_METHOD_READ, &c, &bm);
    print_counts("self 64 MiB: 16 read, 16 written", &c);
    const guint64 pages16 = 16 * MiB / 4096;
    g_assert_cmpuint(c.pages[MS_PAGE_UNPOPULATED], ==, 2 * pages16);
    if (ms_pagemap_zero_pfn() != 0) {
        g_assert_cmpuint(c.pages[MS_PAGE_ZERO], ==, pages16);
        g_assert_cmpuint(c.pages[MS_PAGE_PRIVATE] + c.pages[MS_PAGE_KSM], ==, pages16);
    } else {
        /* This kernel allocates a frame on a read fault: reads cost memory
         * and are counted as used (docs/usedmap.md, section 3). */
        g_test_message("no shared zero page on this kernel: read faults allocate frames");
        g_assert_cmpuint(c.pages[MS_PAGE_ZERO], ==, 0);
        g_assert_cmpuint(c.pages[MS_PAGE_PRIVATE] + c.pages[MS_PAGE_KSM], ==, 2 * pages16);
    }
    munmap(p, size);
}

static void
test_methods_self(void)
{
    const guint64 size = 256 * MiB;
    guint8 *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(p != MAP_FAILED);
    madvise(p, size, MADV_NOHUGEPAGE);
    /* Runs of varied length, some reads, some scattered pages: many regions,
     * more than one PAGEMAP_SCAN batch of 512. */
    guint64 off = 0;
    for (guint i = 0; off < size; i++) {
        guint64 run = (1 + i % 7) * 4096;
        for (guint64 o = off; o < off + run && o < size; o += 4096) {
            if (i % 3 == 0)
                p[o] = (guint8)i;
            else if (i % 3 == 1)
                ((volatile guint8 *)p)[o];
        }
        off += run + (1 + i % 5) * 4096;
    }
    g_autoptr(GPtrArray) blocks = self_blocks(p, size);
    compare_methods(getpid(), blocks, NULL);
    munmap(p, size);
}

static void
test_methods_live(void)
{
    const char *pid_s = g_getenv("MS_QEMU_PID"), *mib_s = g_getenv("MS_QEMU_RAM_MIB");
    if (pid_s == NULL || mib_s == NULL) {
        g_test_skip("MS_QEMU_PID/MS_QEMU_RAM_MIB unset (run by test-tracking-methods.sh)");
        return;
    }
    pid_t pid = (pid_t)g_ascii_strtoll(pid_s, NULL, 10);
    guint64 size = g_ascii_strtoull(mib_s, NULL, 10) * MiB;
    g_autoptr(GPtrArray) memdevs = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_memdev_free);
    MsGuestMemdev *m = g_new0(MsGuestMemdev, 1);
    m->id = g_strdup("pc.ram");
    m->size = size;
    m->merge = TRUE;
    m->backend = MS_GUESTMEM_BACKEND_RAM;
    g_ptr_array_add(memdevs, m);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) blocks = ms_guestmem_discover(pid, memdevs, NULL, NULL, NULL, &error);
    g_assert_no_error(error);
    MsGuestMemLayout layout;
    g_assert_true(ms_guestmem_layout_init(&layout, MS_GUESTMEM_MACHINE_Q35, size, 0, &error));
    compare_methods(pid, blocks, &layout);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/tracking/zero-read", test_zero_read);
    g_test_add_func("/tracking/methods-self", test_methods_self);
    g_test_add_func("/tracking/methods-live", test_methods_live);
    return g_test_run();
}
