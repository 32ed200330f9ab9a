/* qmp-plugin/ms-pagemap-probe.h: what the running kernel's page tables
 * show us, probed once on pages of our own (ms-pagemap-probe.c): the zero
 * page's PFN, whether PFNs are visible, soft-dirty tracking, PAGEMAP_SCAN.
 * The public probes are declared in ms-pagemap.h; these two are the
 * scanner's (ms-pagemap.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* pread until len bytes or EOF, retrying EINTR; *got says how many came.
 * FALSE on a read error (errno set). */
gboolean ms_pagemap_pread_full(int fd, void *buf, gsize len, guint64 offset, gsize *got);

/* PAGEMAP_SCAN on one page at addr of the pagemap fd: 1 supported, 0 not
 * (ENOTTY: no ioctl on pagemap at all, EINVAL: the kernel does not know
 * PAGEMAP_SCAN), -1 another failure (errno). MEMSHARE_HIDE=pagemap-scan
 * answers as a 6.1 kernel does: 0 with errno EINVAL. */
int ms_pagemap_probe_scan(int fd, guint64 addr, guint64 page_size);

G_END_DECLS
