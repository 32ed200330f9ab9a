/* formats/ms-usedmap.c: the used-page bitmap file's codec (the layout is
 * in docs/usedmap.md and ms-usedmap.h). Little-endian on disk whatever the
 * host; every extent's bitmap is padded to 8 bytes so a reader can map it. */
#include "ms-usedmap.h"
#include "ms-error.h"
#include "ms-util.h"

#include <string.h>

#define USEDMAP_MAGIC "MSUSEDMP"
#define USEDMAP_VERSION 1
#define USEDMAP_HEADER 32
#define USEDMAP_EXTENT 16
#define USEDMAP_MAX_EXTENTS 65536

guint32
ms_usedmap_crc32(guint32 crc, const guint8 *buf, gsize len)
{
    static guint32 table[256];
    static gsize init = 0;
    if (g_once_init_enter(&init)) {
        for (guint32 i = 0; i < 256; i++) {
            guint32 c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        g_once_init_leave(&init, 1);
    }
    crc = ~crc;
    for (gsize i = 0; i < len; i++)
        crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void
put_le32(GByteArray *b, guint32 v)
{
    guint32 le = GUINT32_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&le, 4);
}

static void
put_le64(GByteArray *b, guint64 v)
{
    guint64 le = GUINT64_TO_LE(v);
    g_byte_array_append(b, (const guint8 *)&le, 8);
}

static inline gboolean
bytes_bit(const guint8 *map, guint64 bit)
{
    return (map[bit >> 3] >> (bit & 7)) & 1;
}

gboolean
ms_usedmap_write(const char *path, guint32 page_size, const GArray *extents,
                         const guint8 *bitmap, guint64 scan_time_us, GError **error)
{
    if (page_size == 0 || (page_size & (page_size - 1)) || !extents ||
        extents->len > USEDMAP_MAX_EXTENTS) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap '%s': bad page size %u or extent count", path, page_size);
        return FALSE;
    }
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_byte_array_append(b, (const guint8 *)USEDMAP_MAGIC, 8);
    put_le32(b, USEDMAP_VERSION);
    put_le32(b, page_size);
    put_le32(b, extents->len);
    put_le32(b, 0);
    put_le64(b, scan_time_us);
    for (guint i = 0; i < extents->len; i++) {
        const MsUsedmapExtent *e = &g_array_index(extents, MsUsedmapExtent, i);
        if (e->length % page_size || e->gpa % page_size) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "usedmap '%s': extent %u (0x%" G_GINT64_MODIFIER "x + %"
                        G_GUINT64_FORMAT ") is not page aligned", path, i, e->gpa,
                        e->length);
            return FALSE;
        }
        put_le64(b, e->gpa);
        put_le64(b, e->length / page_size);
    }
    guint64 src = 0;
    for (guint i = 0; i < extents->len; i++) {
        const MsUsedmapExtent *e = &g_array_index(extents, MsUsedmapExtent, i);
        guint64 n = e->length / page_size;
        gsize bytes = (gsize)((n + 7) / 8);
        gsize padded = (bytes + 7) & ~(gsize)7;
        guint off = b->len;
        g_byte_array_set_size(b, b->len + padded);
        memset(b->data + off, 0, padded);
        if ((src & 7) == 0) {
            memcpy(b->data + off, bitmap + src / 8, bytes);
            if (n & 7)
                b->data[off + bytes - 1] &= (guint8)((1u << (n & 7)) - 1);
        } else {
            for (guint64 k = 0; k < n; k++)
                if (bytes_bit(bitmap, src + k))
                    b->data[off + k / 8] |= (guint8)(1u << (k & 7));
        }
        src += n;
    }
    put_le32(b, ms_usedmap_crc32(0, b->data, b->len));
    return ms_file_write_atomic(path, (const char *)b->data, b->len, 0644, error);
}

void
ms_usedmap_free(MsUsedmap *map)
{
    if (!map)
        return;
    if (map->extents)
        g_array_unref(map->extents);
    g_free(map->bitmap);
    g_free(map);
}

static guint32
get_le32(const guint8 *p)
{
    guint32 v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_LE(v);
}

static guint64
get_le64(const guint8 *p)
{
    guint64 v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

MsUsedmap *
ms_usedmap_parse(const guint8 *buf, gsize len, GError **error)
{
    if (len < USEDMAP_HEADER + 4 || memcmp(buf, USEDMAP_MAGIC, 8) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap: not a memshare used-page map (bad magic or %" G_GSIZE_FORMAT
                    " bytes)", len);
        return NULL;
    }
    guint32 crc = get_le32(buf + len - 4);
    if (crc != ms_usedmap_crc32(0, buf, len - 4)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap: checksum mismatch (file damaged or truncated)");
        return NULL;
    }
    guint32 version = get_le32(buf + 8);
    guint32 page_size = get_le32(buf + 12);
    guint32 n_ext = get_le32(buf + 16);
    if (version != USEDMAP_VERSION) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap: version %u, only %d is known", version, USEDMAP_VERSION);
        return NULL;
    }
    if (page_size < 512 || (page_size & (page_size - 1)) || n_ext > USEDMAP_MAX_EXTENTS) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap: page size %u or %u extents out of range", page_size, n_ext);
        return NULL;
    }
    gsize pos = USEDMAP_HEADER;
    if ((guint64)n_ext * USEDMAP_EXTENT > len - 4 - pos) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap: %u extents do not fit in %" G_GSIZE_FORMAT " bytes", n_ext, len);
        return NULL;
    }
    g_autoptr(MsUsedmap) m = g_new0(MsUsedmap, 1);
    m->page_size = page_size;
    m->scan_time_us = get_le64(buf + 24);
    m->extents = g_array_new(FALSE, FALSE, sizeof(MsUsedmapExtent));
    guint64 bitmap_bytes = 0;
    for (guint i = 0; i < n_ext; i++, pos += USEDMAP_EXTENT) {
        MsUsedmapExtent e;
        e.gpa = get_le64(buf + pos);
        guint64 n = get_le64(buf + pos + 8);
        if (n == 0 || n > MS_USEDMAP_MAX_PAGES || m->n_pages + n > MS_USEDMAP_MAX_PAGES) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "usedmap: extent %u has %" G_GUINT64_FORMAT " pages", i, n);
            return NULL;
        }
        e.length = n * page_size;
        e.ram_offset = m->n_pages * page_size;
        g_array_append_val(m->extents, e);
        m->n_pages += n;
        bitmap_bytes += (((n + 7) / 8) + 7) & ~G_GUINT64_CONSTANT(7);
    }
    if (bitmap_bytes != len - 4 - pos) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "usedmap: %" G_GSIZE_FORMAT " bitmap bytes, extents need %"
                    G_GUINT64_FORMAT, len - 4 - pos, bitmap_bytes);
        return NULL;
    }
    m->bitmap = g_malloc0((gsize)((m->n_pages + 7) / 8));
    guint64 dst = 0;
    for (guint i = 0; i < n_ext; i++) {
        guint64 n = g_array_index(m->extents, MsUsedmapExtent, i).length / page_size;
        gsize bytes = (gsize)((n + 7) / 8);
        const guint8 *src = buf + pos;
        for (gsize k = bytes * 8; k-- > n;) {
            if (bytes_bit(src, k)) {
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "usedmap: extent %u has bits set past its %" G_GUINT64_FORMAT
                            " pages", i, n);
                return NULL;
            }
        }
        if ((dst & 7) == 0) {
            memcpy(m->bitmap + dst / 8, src, bytes);
        } else {
            for (guint64 k = 0; k < n; k++)
                if (bytes_bit(src, k))
                    m->bitmap[(dst + k) / 8] |= (guint8)(1u << ((dst + k) & 7));
        }
        dst += n;
        pos += (bytes + 7) & ~(gsize)7;
    }
    return g_steal_pointer(&m);
}
