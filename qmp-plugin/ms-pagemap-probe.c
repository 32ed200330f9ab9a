/* qmp-plugin/ms-pagemap-probe.c: capability probes of used-page tracking
 * (ms-pagemap-probe.h). Each one maps fresh private pages of this process,
 * touches them and reads their own pagemap entries back
 * (probe_own_pages): the kernel that answers for our pages answers the
 * same for QEMU's. Results are cached; the MEMSHARE_HIDE knob is asked
 * every time (tests change it). */
#include "ms-pagemap.h"
#include "ms-pagemap-probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ms-kcompat.h"
#include "ms-pagemap-compat.h"

gboolean
ms_pagemap_pread_full(int fd, void *buf, gsize len, guint64 offset, gsize *got)
{
    gsize done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *got = done;
            return FALSE;
        }
        if (r == 0)
            break;
        done += (gsize)r;
    }
    *got = done;
    return TRUE;
}

#define PROBE_MAX_PAGES 2

/* Maps n (<= PROBE_MAX_PAGES) fresh private anonymous pages, faults each
 * in (a write, or a read when read_fault) and reads their pagemap entries
 * into entries[]. FALSE when any step fails: the caller's "no". A read
 * fault on untouched private anonymous memory maps the shared zero page
 * where the kernel uses one; where THP applies (enabled=always, and the
 * pages merged into a larger anonymous VMA) it could map the huge zero
 * page instead, whose consecutive PFNs differ: so no huge pages here. */
static gboolean
probe_own_pages(guint n, gboolean read_fault, guint64 *entries)
{
    g_assert(n >= 1 && n <= PROBE_MAX_PAGES);
    gboolean ok = FALSE;
    long ps = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (p != MAP_FAILED && fd >= 0) {
        if (read_fault) {
            (void)madvise(p, n * ps, MADV_NOHUGEPAGE);
            /* The loaded values are stored: valgrind's translator drops
             * loads whose result is unused, volatile or not, and then no
             * fault happens under it. */
            static volatile char sink G_GNUC_UNUSED;
            for (guint i = 0; i < n; i++)
                sink = *(volatile char *)(p + i * ps);
        } else {
            for (guint i = 0; i < n; i++)
                *(volatile char *)(p + i * ps) = 1;
        }
        gsize got = 0;
        ok = ms_pagemap_pread_full(fd, entries, n * sizeof(guint64),
                                   ((guint64)(uintptr_t)p / ps) * 8, &got) &&
             got == n * sizeof(guint64);
    }
    if (fd >= 0)
        close(fd);
    if (p != MAP_FAILED)
        munmap(p, n * ps);
    return ok;
}

guint64
ms_pagemap_zero_pfn(void)
{
    static gsize cached = 0;   /* pfn + 1, so that "unknown" (0) caches too */
    if (g_once_init_enter(&cached)) {
        guint64 pfn = 0;
        guint64 e[2] = { 0, 0 };
        /* two zero-page mappings share a PFN; distinct PFNs mean the kernel
         * allocated frames on the read faults: "no zero page" */
        if (probe_own_pages(2, TRUE, e) && (e[0] & MS_PM_PRESENT) && (e[1] & MS_PM_PRESENT) &&
            (e[0] & MS_PM_PFN_MASK) == (e[1] & MS_PM_PFN_MASK))
            pfn = e[0] & MS_PM_PFN_MASK;
        g_once_init_leave(&cached, (gsize)pfn + 1);
    }
    return (guint64)cached - 1;
}

gboolean
ms_pagemap_pfns_visible(void)
{
    static gsize cached = 0;   /* 1 no, 2 yes */
    if (g_once_init_enter(&cached)) {
        guint64 e = 0;
        gboolean yes = probe_own_pages(1, FALSE, &e) && (e & MS_PM_PRESENT) && (e & MS_PM_PFN_MASK);
        g_once_init_leave(&cached, yes ? 2 : 1);
    }
    return cached == 2;
}

gboolean
ms_pagemap_soft_dirty_supported(void)
{
    static gsize cached = 0;   /* 1 no, 2 yes */
    if (g_once_init_enter(&cached)) {
        /* A new VMA is soft-dirty as a whole (VM_SOFTDIRTY) wherever the
         * kernel tracks soft-dirty at all. */
        guint64 e = 0;
        gboolean yes = probe_own_pages(1, FALSE, &e) && (e & MS_PM_SOFT_DIRTY);
        g_once_init_leave(&cached, yes ? 2 : 1);
    }
    return cached == 2;
}

/* What the kernel says, whatever MEMSHARE_HIDE says. */
static int
probe_scan_kernel(int fd, guint64 addr, guint64 page_size)
{
    struct page_region r;
    struct pm_scan_arg arg = {
        .size = sizeof(arg),
        .start = addr,
        .end = addr + page_size,
        .vec = (guint64)(uintptr_t)&r,
        .vec_len = 1,
        .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    };
    int ret;
    do
        ret = ioctl(fd, PAGEMAP_SCAN, &arg);
    while (ret < 0 && errno == EINTR);
    if (ret >= 0)
        return 1;
    if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP)
        return 0;
    return -1;
}

int
ms_pagemap_probe_scan(int fd, guint64 addr, guint64 page_size)
{
    if (ms_kcompat_hidden(MS_KCOMPAT_PAGEMAP_SCAN)) {
        errno = EINVAL;
        return 0;
    }
    return probe_scan_kernel(fd, addr, page_size);
}

gboolean
ms_pagemap_scan_supported(void)
{
    /* The kernel's answer is cached; the knob is asked every time, as
     * ms_pagemap_probe_scan() does for a scanner. */
    static gsize cached = 0;   /* 1 no, 2 yes */
    if (g_once_init_enter(&cached)) {
        gsize v = 1;
        int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            long ps = sysconf(_SC_PAGESIZE);
            guint64 addr = (guint64)(uintptr_t)&cached & ~((guint64)ps - 1);
            if (probe_scan_kernel(fd, addr, ps) == 1)
                v = 2;
            close(fd);
        }
        g_once_init_leave(&cached, v);
    }
    return cached == 2 && !ms_kcompat_hidden(MS_KCOMPAT_PAGEMAP_SCAN);
}
