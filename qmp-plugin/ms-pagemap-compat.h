/* qmp-plugin/ms-pagemap-compat.h: the PAGEMAP_SCAN ioctl ABI (Linux 6.7+)
 * for building against older kernel headers. Debian 12 ships 6.1 headers,
 * which lack it, while the hosts we run on may have a newer kernel; support
 * is detected at run time (the ioctl fails with ENOTTY or EINVAL where the
 * kernel lacks it), so the build must not depend on the headers.
 *
 * Values copied from upstream include/uapi/linux/fs.h (checked against the
 * 6.7..6.18 header text): PAGEMAP_SCAN is _IOWR('f', 16, struct pm_scan_arg),
 * struct pm_scan_arg is 12 x __u64 (96 bytes), struct page_region 3 x __u64.
 * Also the /proc/PID/pagemap entry bits and the /proc/kpageflags bits we use
 * (Documentation/admin-guide/mm/pagemap.rst, include/uapi/linux/kernel-page-flags.h). */
#pragma once

#include <linux/fs.h>
#include <linux/types.h>
#include <sys/ioctl.h>

#ifndef PAGEMAP_SCAN

#define PAGE_IS_WPALLOWED  (1 << 0)
#define PAGE_IS_WRITTEN    (1 << 1)
#define PAGE_IS_FILE       (1 << 2)
#define PAGE_IS_PRESENT    (1 << 3)
#define PAGE_IS_SWAPPED    (1 << 4)
#define PAGE_IS_PFNZERO    (1 << 5)
#define PAGE_IS_HUGE       (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
    __u64 start;
    __u64 end;          /* exclusive */
    __u64 categories;   /* PAGE_IS_* */
};

#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
    __u64 size;                /* sizeof(struct pm_scan_arg) */
    __u64 flags;
    __u64 start;
    __u64 end;
    __u64 walk_end;            /* written by the kernel: where the walk stopped */
    __u64 vec;                 /* struct page_region * */
    __u64 vec_len;
    __u64 max_pages;
    __u64 category_inverted;
    __u64 category_mask;
    __u64 category_anyof_mask;
    __u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

#endif /* PAGEMAP_SCAN */

/* PAGE_IS_SOFT_DIRTY arrived one release after the rest (6.7 has it too,
 * but some backports do not). */
#ifndef PAGE_IS_SOFT_DIRTY
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#endif

/* /proc/PID/pagemap: one little-endian u64 per virtual page. */
#define MS_PM_PFN_MASK      ((1ULL << 55) - 1)
#define MS_PM_SOFT_DIRTY    (1ULL << 55)
#define MS_PM_EXCLUSIVE     (1ULL << 56)
#define MS_PM_FILE_OR_SHARED (1ULL << 61)
#define MS_PM_SWAPPED       (1ULL << 62)
#define MS_PM_PRESENT       (1ULL << 63)

/* /proc/kpageflags: one u64 per PFN. */
#define MS_KPF_HUGE         (1ULL << 17)
#define MS_KPF_KSM          (1ULL << 21)
#define MS_KPF_THP          (1ULL << 22)
#define MS_KPF_ZERO_PAGE    (1ULL << 24)   /* the zero page or the huge zero page */
