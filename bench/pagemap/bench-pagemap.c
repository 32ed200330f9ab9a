/* bench/pagemap/bench-pagemap.c: what one full classification of guest RAM
 * costs, per GiB, for each way of reading host page tables:
 *   scan       ms_pagemap scanner, PAGEMAP_SCAN + PFNs of populated ranges
 *   read       ms_pagemap scanner, one pread of pagemap + linear pass
 *   ioctl      the bare PAGEMAP_SCAN ioctl (regions only, no accounting)
 *   pread      one bare pread of the range's pagemap (no accounting)
 * on a sparse mapping of this process (default 4 GiB, 256 MiB touched,
 * clustered or scattered), or on a live QEMU's guest RAM (--pid, --range).
 * Prints the median of --runs runs and ratios to the bare pread. Not a
 * test: timings depend on the machine. MEMSHARE_HIDE=linux-6.1 (or
 * pagemap-scan) leaves out what Debian 12's 6.1 kernel lacks. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ms-kcompat.h"
#include "ms-pagemap-compat.h"
#include "ms-pagemap.h"

typedef struct {
    const char *name;
    double *samples;
} Series;

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double
now_ms(void)
{
    return g_get_monotonic_time() / 1000.0;
}

static int
bare_pread(int fd, guint64 start, guint64 size, guint64 *buf)
{
    gsize want = size / 4096 * 8, done = 0;
    while (done < want) {
        ssize_t r = pread(fd, (char *)buf + done, want - done,
                          (off_t)(start / 4096 * 8 + done));
        if (r <= 0)
            return -1;
        done += r;
    }
    return 0;
}

static long
bare_ioctl(int fd, guint64 start, guint64 size, struct page_region *vec, gsize vec_len)
{
    long regions = 0;
    guint64 end = start + size;
    while (start < end) {
        struct pm_scan_arg arg = {
            .size = sizeof(arg), .start = start, .end = end,
            .vec = (guint64)(uintptr_t)vec, .vec_len = vec_len,
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO,
        };
        int n = ioctl(fd, PAGEMAP_SCAN, &arg);
        if (n < 0)
            return -1;
        regions += n;
        if ((gsize)n < vec_len)
            break;
        start = MAX(arg.walk_end, vec[n - 1].end);
    }
    return regions;
}

static gboolean
run_case(const char *label, pid_t pid, guint64 start, guint64 size, int runs)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
    MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
    b->memdev_id = g_strdup(label);
    b->host_start = start;
    b->size = size;
    g_ptr_array_add(blocks, b);

    gboolean have_scan = ms_pagemap_scan_supported();
    MsPagemapOptions ropt = { .method = MS_PAGEMAP_METHOD_READ };
    MsPagemapOptions sopt = { .method = MS_PAGEMAP_METHOD_SCAN };
    g_autoptr(MsPagemapScanner) rs = ms_pagemap_scanner_new(pid, blocks, NULL, &ropt, &error);
    if (!rs) {
        fprintf(stderr, "%s: %s\n", label, error->message);
        return FALSE;
    }
    g_autoptr(MsPagemapScanner) ss = NULL;
    if (have_scan) {
        ss = ms_pagemap_scanner_new(pid, blocks, NULL, &sopt, &error);
        if (!ss) {
            fprintf(stderr, "%s: %s\n", label, error->message);
            return FALSE;
        }
    }
    g_autofree char *pm = g_strdup_printf("/proc/%d/pagemap", (int)pid);
    int fd = open(pm, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(pm);
        return FALSE;
    }
    g_autofree guint64 *buf = g_malloc(size / 4096 * 8);
    g_autofree struct page_region *vec = g_new(struct page_region, 4096);

    Series series[4] = {
        { "scan", g_new0(double, runs) },
        { "read", g_new0(double, runs) },
        { "ioctl", g_new0(double, runs) },
        { "pread", g_new0(double, runs) },
    };
    MsPageCounts rc = { 0 }, sc = { 0 };
    long regions = 0;
    /* One warm-up of each: first touches of the buffers are not the cost. */
    for (int run = -1; run < runs; run++) {
        double t0 = now_ms();
        if (ss && !ms_pagemap_scanner_scan(ss, &sc, &error))
            goto fail;
        double t1 = now_ms();
        if (!ms_pagemap_scanner_scan(rs, &rc, &error))
            goto fail;
        double t2 = now_ms();
        if (have_scan)
            regions = bare_ioctl(fd, start, size, vec, 4096);
        double t3 = now_ms();
        if (bare_pread(fd, start, size, buf) < 0) {
            fprintf(stderr, "%s: pread failed\n", label);
            close(fd);
            return FALSE;
        }
        double t4 = now_ms();
        if (run >= 0) {
            series[0].samples[run] = t1 - t0;
            series[1].samples[run] = t2 - t1;
            series[2].samples[run] = t3 - t2;
            series[3].samples[run] = t4 - t3;
        }
    }
    close(fd);

    double gib = size / (double)(1ULL << 30);
    printf("\n== %s: %.2f GiB, %" G_GUINT64_FORMAT " MiB populated, %ld regions, median of %d runs\n",
           label, gib, (rc.total_pages - rc.pages[MS_PAGE_UNPOPULATED] - rc.pages[MS_PAGE_FREED]) * 4096 >> 20,
           regions, runs);
    printf("   classes (read): unpopulated %" G_GUINT64_FORMAT " zero %" G_GUINT64_FORMAT
           " private %" G_GUINT64_FORMAT " ksm %" G_GUINT64_FORMAT " swapped %" G_GUINT64_FORMAT "\n",
           rc.pages[MS_PAGE_UNPOPULATED], rc.pages[MS_PAGE_ZERO], rc.pages[MS_PAGE_PRIVATE],
           rc.pages[MS_PAGE_KSM], rc.pages[MS_PAGE_SWAPPED]);
    if (ss && memcmp(rc.pages, sc.pages, sizeof(rc.pages)) != 0)
        printf("   NOTE: scan and read classes differ (pages changed between them?)\n");
    double pread_med = median(series[3].samples, runs);
    printf("   %-6s %10s %10s %8s\n", "method", "ms", "ms/GiB", "x pread");
    for (int i = 0; i < 4; i++) {
        if (!have_scan && (i == 0 || i == 2)) {
            printf("   %-6s %10s\n", series[i].name,
                   ms_kcompat_hidden(MS_KCOMPAT_PAGEMAP_SCAN) ? "n/a (PAGEMAP_SCAN hidden by MEMSHARE_HIDE)"
                                                              : "n/a (no PAGEMAP_SCAN)");
            continue;
        }
        double m = median(series[i].samples, runs);
        printf("   %-6s %10.3f %10.3f %8.3f\n", series[i].name, m, m / gib, m / pread_med);
    }
    for (int i = 0; i < 4; i++)
        g_free(series[i].samples);
    return TRUE;
fail:
    fprintf(stderr, "%s: %s\n", label, error->message);
    close(fd);
    return FALSE;
}

int
main(int argc, char **argv)
{
    gint runs = 15, pid = 0;
    gint64 self_gib = 4, touched_mib = 256;
    g_autofree char *range = NULL;
    GOptionEntry entries[] = {
        { "runs", 'n', 0, G_OPTION_ARG_INT, &runs, "runs per method (median)", "N" },
        { "size-gib", 0, 0, G_OPTION_ARG_INT64, &self_gib, "self mapping size", "GIB" },
        { "touched-mib", 0, 0, G_OPTION_ARG_INT64, &touched_mib, "self mapping touched", "MIB" },
        { "pid", 'p', 0, G_OPTION_ARG_INT, &pid, "also measure this QEMU process", "PID" },
        { "range", 'r', 0, G_OPTION_ARG_STRING, &range,
          "its guest RAM mapping START-END (hex, from /proc/PID/maps)", "RANGE" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- pagemap classification cost");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error) || runs < 1 || self_gib < 1 ||
        touched_mib < 1 || touched_mib > self_gib * 1024 || (pid && !range)) {
        fprintf(stderr, "%s\n", error ? error->message : "bad arguments (--pid needs --range)");
        return 2;
    }
    /* MEMSHARE_HIDE=pagemap-scan (or linux-6.1) measures what a Debian 12
     * host's agent runs: the read path only. */
    if (!ms_kcompat_init(&error)) {
        fprintf(stderr, "%s\n", error->message);
        return 2;
    }
    g_autofree char *hidden = ms_kcompat_hidden_names();
    printf("kernel PAGEMAP_SCAN: %s; zero page PFN: %#" G_GINT64_MODIFIER "x; page size 4096\n",
           ms_pagemap_scan_supported() ? "yes"
           : ms_kcompat_hidden(MS_KCOMPAT_PAGEMAP_SCAN) ? "hidden (MEMSHARE_HIDE)" : "no",
           ms_pagemap_zero_pfn());
    if (*hidden)
        printf("MEMSHARE_HIDE hides: %s\n", hidden);

    guint64 size = (guint64)self_gib << 30;
    guint64 touched = (guint64)touched_mib << 20;
    for (int pattern = 0; pattern < 2; pattern++) {
        guint8 *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        /* 4 KiB pages, as a guest's scattered allocations look once THPs
         * are split; THP would make both readers look better. */
        madvise(mem, size, MADV_NOHUGEPAGE);
        const char *label;
        if (pattern == 0) {
            /* 64 clusters spread evenly. */
            label = "self, clustered (64 runs)";
            guint64 cl = touched / 64, step = size / 64;
            for (guint64 c = 0; c < 64; c++)
                for (guint64 o = 0; o < cl; o += 4096)
                    mem[c * step + o] = 1;
        } else {
            /* One page in every size/touched: the most regions. */
            label = "self, scattered (1 page in N)";
            guint64 step = size / (touched / 4096);
            for (guint64 o = 0; o < size; o += step)
                mem[o] = 1;
        }
        g_autofree char *l = g_strdup_printf("%s, %" G_GINT64_FORMAT " GiB / %" G_GINT64_FORMAT
                                             " MiB", label, self_gib, touched_mib);
        if (!run_case(l, getpid(), (guint64)(uintptr_t)mem, size, runs))
            return 1;
        munmap(mem, size);
    }

    if (pid) {
        guint64 s = 0, e = 0;
        if (sscanf(range, "%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x", &s, &e) != 2 ||
            e <= s || s % 4096 || e % 4096) {
            fprintf(stderr, "bad --range '%s'\n", range);
            return 2;
        }
        g_autofree char *l = g_strdup_printf("QEMU pid %d guest RAM", pid);
        if (!run_case(l, pid, s, e - s, runs))
            return 1;
    }
    return 0;
}
