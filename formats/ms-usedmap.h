/* formats/ms-usedmap.h: the used-page bitmap file (docs/usedmap.md), as the
 * agent writes it (qmp-plugin/ms-pagemap.c, on SIGUSR1) and memsharectl or
 * any other reader parses it back. Pure codec: no /proc, no libvirt, so the
 * readers link only the formats library. The file may come from anywhere:
 * the parser bounds every count and checks the CRC before trusting it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* 4 PiB of guest RAM in 4 KiB pages: more than any guest, and the bound
 * keeps bitmap sizes far from overflow. */
#define MS_USEDMAP_MAX_PAGES (G_GUINT64_CONSTANT(1) << 40)

/* A guest-physically contiguous stretch of RAM: what the file records per
 * block (qmp-plugin/ms-guestmem.h calls it MsGuestMemExtent). */
typedef struct {
    guint64 gpa;            /* guest-physical base */
    guint64 ram_offset;     /* where it starts in RAM-offset space */
    guint64 length;         /* bytes */
} MsUsedmapExtent;

/* Writes the file atomically. extents (MsUsedmapExtent, lengths multiples
 * of page_size) in guest-physical order; bitmap covers their pages in that
 * order, LSB-first. Errors are MS_ERROR_INVALID. */
gboolean ms_usedmap_write(const char *path, guint32 page_size,
                          const GArray *extents, const guint8 *bitmap,
                          guint64 scan_time_us, GError **error);

typedef struct {
    guint32 page_size;
    guint64 scan_time_us;
    GArray *extents;          /* MsUsedmapExtent; ram_offset = position in bitmap */
    guint8 *bitmap;           /* all extents' bits, concatenated, LSB-first */
    guint64 n_pages;
} MsUsedmap;

void ms_usedmap_free(MsUsedmap *map);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsUsedmap, ms_usedmap_free)

/* Parses a usedmap file's contents (checks magic, version, sizes, CRC);
 * MS_ERROR_INVALID names what is wrong. */
MsUsedmap *ms_usedmap_parse(const guint8 *buf, gsize len, GError **error);

/* CRC-32 as zlib's crc32() (IEEE 802.3, reflected): the file's trailer. */
guint32 ms_usedmap_crc32(guint32 crc, const guint8 *buf, gsize len);

G_END_DECLS
