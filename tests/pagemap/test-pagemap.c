/* tests/pagemap/test-pagemap.c: unit tests of qmp-plugin/ms-pagemap:
 * the pure classifier (a table), the scanner on synthetic snapshots
 * (snapshots/NAME.txt: page kinds per scan and the expected counts; the test
 * writes the binary pagemap, kpageflags and maps into a fixture tree), odd
 * input (short pagemap, vanished mapping), the used-page bitmap file, and a
 * live check on this process that the pread and PAGEMAP_SCAN paths give the
 * same, exact counts. */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ms-pagemap-compat.h"
#include "ms-pagemap.h"
#include "ms-error.h"
#include "ms-usedmap.h"
#include "ms-test-cases.h"

#define FIXTURE_PID 4242
#define FIXTURE_BASE G_GUINT64_CONSTANT(0x40000000)
#define FIXTURE_STRIDE G_GUINT64_CONSTANT(0x10000000)
#define ZERO_PFN 0x77
#define PFN_PRIVATE 0x1000
#define PFN_KSM 0x20000
#define PFN_HUGE_ZERO 0x30000

/* ---- the pure classifier ---- */

static void
test_classify_table(void)
{
    static const struct {
        guint64 entry;
        gboolean have_kpf;
        guint64 kpf;
        gboolean ever_used;
        MsPageClass want;
    } cases[] = {
        { 0, FALSE, 0, FALSE, MS_PAGE_UNPOPULATED },
        { 0, FALSE, 0, TRUE, MS_PAGE_FREED },
        { MS_PM_SOFT_DIRTY, FALSE, 0, FALSE, MS_PAGE_UNPOPULATED },
        { MS_PM_PRESENT | ZERO_PFN, FALSE, 0, FALSE, MS_PAGE_ZERO },
        { MS_PM_PRESENT | ZERO_PFN, TRUE, 0, TRUE, MS_PAGE_ZERO },
        { MS_PM_PRESENT | 0x1234, FALSE, 0, FALSE, MS_PAGE_PRIVATE },
        { MS_PM_PRESENT | 0x1234, TRUE, 0, FALSE, MS_PAGE_PRIVATE },
        { MS_PM_PRESENT | 0x1234, TRUE, MS_KPF_KSM, FALSE, MS_PAGE_KSM },
        { MS_PM_PRESENT | 0x1234, FALSE, MS_KPF_KSM, FALSE, MS_PAGE_PRIVATE },
        { MS_PM_PRESENT | 0x1234, TRUE, MS_KPF_ZERO_PAGE | MS_KPF_THP, FALSE, MS_PAGE_ZERO },
        { MS_PM_PRESENT | MS_PM_SOFT_DIRTY | 0x1234, TRUE, 0, TRUE, MS_PAGE_PRIVATE },
        { MS_PM_SWAPPED | 0x5678, FALSE, 0, FALSE, MS_PAGE_SWAPPED },
        { MS_PM_SWAPPED, TRUE, 0, TRUE, MS_PAGE_SWAPPED },
        /* PFNs hidden (no CAP_SYS_ADMIN): present with PFN 0 is data. */
        { MS_PM_PRESENT, FALSE, 0, FALSE, MS_PAGE_PRIVATE },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        MsPageClass got = ms_pagemap_classify_entry(cases[i].entry, ZERO_PFN,
                                                    cases[i].have_kpf, cases[i].kpf,
                                                    cases[i].ever_used);
        if (got != cases[i].want)
            g_error("case %u: got %s, want %s", i, ms_page_class_name(got),
                    ms_page_class_name(cases[i].want));
    }
    /* zero_pfn unknown (0): only kpageflags can tell the zero page. */
    g_assert_cmpint(ms_pagemap_classify_entry(MS_PM_PRESENT | ZERO_PFN, 0, FALSE, 0, FALSE),
                    ==, MS_PAGE_PRIVATE);
}

/* ---- synthetic snapshots ---- */

typedef struct {
    char *dir;            /* fixture proc root */
    int pagemap_fd;
    int kpf_fd;
    GPtrArray *blocks;    /* MsGuestMemBlock* */
} Fixture;

static void
fixture_free(Fixture *f)
{
    if (f->pagemap_fd >= 0)
        close(f->pagemap_fd);
    if (f->kpf_fd >= 0)
        close(f->kpf_fd);
    if (f->blocks)
        g_ptr_array_unref(f->blocks);
    if (f->dir) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
        (void)!system(cmd);
        g_free(f->dir);
    }
}

static void
pwrite_u64(int fd, guint64 value, guint64 index)
{
    guint64 le = GUINT64_TO_LE(value);
    g_assert_cmpint(pwrite(fd, &le, 8, (off_t)(index * 8)), ==, 8);
}

static void
write_maps(Fixture *f, gboolean include_blocks)
{
    GString *maps = g_string_new("55d0c8a00000-55d0c8b2e000 r--p 00000000 fd:01 1311 /usr/bin/qemu-system-x86_64\n");
    for (guint i = 0; include_blocks && i < f->blocks->len; i++) {
        MsGuestMemBlock *b = g_ptr_array_index(f->blocks, i);
        g_string_append_printf(maps, "%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER
                               "x rw-p 00000000 00:00 0\n", b->host_start,
                               b->host_start + b->size);
    }
    g_autofree char *path = g_strdup_printf("%s/%d/maps", f->dir, FIXTURE_PID);
    g_assert_true(g_file_set_contents(path, maps->str, -1, NULL));
    g_string_free(maps, TRUE);
}

/* Parses "N KIND [sd]" lines of one scan and writes them into the
 * fixture's pagemap (and kpageflags). The first scan creates the blocks. */
static void
write_scan(Fixture *f, GPtrArray *lines, gboolean create_blocks)
{
    guint block = 0;
    guint64 page = 0;
    guint64 next_private = PFN_PRIVATE, next_ksm = PFN_KSM, next_hz = PFN_HUGE_ZERO;
    gboolean started = FALSE;
    for (guint li = 0; li <= lines->len; li++) {
        const char *line = li < lines->len ? g_ptr_array_index(lines, li) : "block";
        if (g_str_equal(line, "block")) {
            if (started) {
                if (create_blocks) {
                    MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
                    b->memdev_id = g_strdup_printf("ram-node%u", block);
                    b->host_start = FIXTURE_BASE + block * FIXTURE_STRIDE;
                    b->size = page * 4096;
                    b->ram_offset = 0;
                    for (guint k = 0; k < f->blocks->len; k++)
                        b->ram_offset += ((MsGuestMemBlock *)g_ptr_array_index(f->blocks, k))->size;
                    g_ptr_array_add(f->blocks, b);
                } else {
                    MsGuestMemBlock *b = g_ptr_array_index(f->blocks, block);
                    g_assert_cmpuint(b->size, ==, page * 4096);
                }
                block++;
            }
            started = TRUE;
            page = 0;
            continue;
        }
        g_auto(GStrv) w = g_strsplit(line, " ", -1);
        g_assert_nonnull(w[0]);
        g_assert_nonnull(w[1]);
        guint64 n = g_ascii_strtoull(w[0], NULL, 10);
        gboolean sd = w[2] && g_str_equal(w[2], "sd");
        for (guint64 k = 0; k < n; k++, page++) {
            guint64 e = 0, pfn = 0, kpf = 0;
            if (g_str_equal(w[1], "none")) {
            } else if (g_str_equal(w[1], "zero")) {
                e = MS_PM_PRESENT | ZERO_PFN;
                pfn = ZERO_PFN;
                kpf = MS_KPF_ZERO_PAGE;
            } else if (g_str_equal(w[1], "zero-huge")) {
                pfn = next_hz++;
                e = MS_PM_PRESENT | pfn;
                kpf = MS_KPF_ZERO_PAGE | MS_KPF_THP;
            } else if (g_str_equal(w[1], "private")) {
                /* Scatter frames so the kpageflags lookups need sorting. */
                pfn = next_private;
                next_private += (page % 3 == 0) ? 5000 : 1;
                e = MS_PM_PRESENT | MS_PM_EXCLUSIVE | pfn;
            } else if (g_str_equal(w[1], "ksm")) {
                pfn = next_ksm++;
                e = MS_PM_PRESENT | pfn;
                kpf = MS_KPF_KSM;
            } else if (g_str_equal(w[1], "ksm-alone")) {
                /* A KSM frame whose other mappers went away: mapped once,
                 * so pagemap marks it exclusive; it saves nothing. */
                pfn = next_ksm++;
                e = MS_PM_PRESENT | MS_PM_EXCLUSIVE | pfn;
                kpf = MS_KPF_KSM;
            } else if (g_str_equal(w[1], "swap")) {
                e = MS_PM_SWAPPED | (page << 5) | 1;
            } else {
                g_error("unknown page kind '%s'", w[1]);
            }
            if (sd)
                e |= MS_PM_SOFT_DIRTY;
            guint64 va = FIXTURE_BASE + block * FIXTURE_STRIDE + page * 4096;
            pwrite_u64(f->pagemap_fd, e, va / 4096);
            if (pfn && f->kpf_fd >= 0)
                pwrite_u64(f->kpf_fd, kpf, pfn);
        }
    }
    /* A page past each block, mapped to nothing, guards the offset math. */
}

static guint64
expect_field(GHashTable *want, const char *key)
{
    const char *v = g_hash_table_lookup(want, key);
    if (!v)
        g_error("expect line lacks '%s'", key);
    return g_ascii_strtoull(v, NULL, 10);
}

/* EXPECT is the snapshot's "expect ..." line LINE; under MS_REGENERATE it
 * is rewritten from what the scanner counted. */
static void
check_counts(const MsPageCounts *c, const char *expect, const char *path, guint line, MsPagemapScanner *s)
{
    guint64 n = 0, used = 0;
    const guint8 *bm = ms_pagemap_scanner_get_used_bitmap(s, &n);
    g_assert_nonnull(bm);
    g_assert_cmpuint(n, ==, c->total_pages);
    for (guint64 i = 0; i < (n + 7) / 8; i++)
        used += __builtin_popcount(bm[i]);
    g_autoptr(GHashTable) want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autofree char *got = g_strdup_printf(
        "unpopulated=%" G_GUINT64_FORMAT " zero=%" G_GUINT64_FORMAT " private=%" G_GUINT64_FORMAT
        " ksm=%" G_GUINT64_FORMAT " swapped=%" G_GUINT64_FORMAT " freed=%" G_GUINT64_FORMAT
        " freed_since_last=%" G_GUINT64_FORMAT " soft_dirty=%" G_GUINT64_FORMAT,
        c->pages[MS_PAGE_UNPOPULATED], c->pages[MS_PAGE_ZERO], c->pages[MS_PAGE_PRIVATE],
        c->pages[MS_PAGE_KSM], c->pages[MS_PAGE_SWAPPED], c->pages[MS_PAGE_FREED],
        c->freed_since_last, c->soft_dirty_pages);
    g_test_message("got: %s", got);
    g_autofree char *regenerated = NULL;
    if (ms_test_regenerating()) {
        regenerated = g_strdup_printf("expect %s used=%" G_GUINT64_FORMAT, got, used);
        ms_test_regenerate_line(path, line, regenerated);
        expect = regenerated;
    }
    g_auto(GStrv) kv = g_strsplit(expect + strlen("expect "), " ", -1);
    for (guint i = 0; kv[i]; i++) {
        g_auto(GStrv) p = g_strsplit(kv[i], "=", 2);
        g_hash_table_insert(want, g_strdup(p[0]), g_strdup(p[1]));
    }
    g_assert_cmpuint(c->pages[MS_PAGE_UNPOPULATED], ==, expect_field(want, "unpopulated"));
    g_assert_cmpuint(c->pages[MS_PAGE_ZERO], ==, expect_field(want, "zero"));
    g_assert_cmpuint(c->pages[MS_PAGE_PRIVATE], ==, expect_field(want, "private"));
    g_assert_cmpuint(c->pages[MS_PAGE_KSM], ==, expect_field(want, "ksm"));
    g_assert_cmpuint(c->pages[MS_PAGE_SWAPPED], ==, expect_field(want, "swapped"));
    g_assert_cmpuint(c->pages[MS_PAGE_FREED], ==, expect_field(want, "freed"));
    g_assert_cmpuint(c->freed_since_last, ==, expect_field(want, "freed_since_last"));
    g_assert_cmpuint(c->soft_dirty_pages, ==, expect_field(want, "soft_dirty"));
    g_assert_cmpuint(used, ==, expect_field(want, "used"));
    g_assert_cmpuint(used, ==, c->pages[MS_PAGE_PRIVATE] + c->pages[MS_PAGE_KSM] +
                     c->pages[MS_PAGE_SWAPPED]);
}

static void
fixture_init(Fixture *f, gboolean with_kpf)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_dir_make_tmp("ms-pagemap-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *piddir = g_strdup_printf("%s/%d", f->dir, FIXTURE_PID);
    g_assert_cmpint(g_mkdir(piddir, 0755), ==, 0);
    g_autofree char *pm = g_build_filename(piddir, "pagemap", NULL);
    f->pagemap_fd = open(pm, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(f->pagemap_fd, >=, 0);
    f->kpf_fd = -1;
    if (with_kpf) {
        g_autofree char *kpf = g_build_filename(f->dir, "kpageflags", NULL);
        f->kpf_fd = open(kpf, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        g_assert_cmpint(f->kpf_fd, >=, 0);
    }
    g_autofree char *cr = g_build_filename(piddir, "clear_refs", NULL);
    g_assert_true(g_file_set_contents(cr, "", 0, NULL));
    f->blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
}

static void
test_snapshot(gconstpointer data)
{
    const char *name = data;
    g_autofree char *path = g_test_build_filename(G_TEST_DIST, "snapshots", name, NULL);
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

    gboolean with_kpf = !strstr(text, "kpageflags off");
    Fixture f = { 0 };
    fixture_init(&f, with_kpf);
    g_autoptr(MsPagemapScanner) s = NULL;
    g_autoptr(GPtrArray) scan = g_ptr_array_new();
    guint n_scans = 0;
    for (guint i = 0; lines[i]; i++) {
        char *l = g_strstrip(lines[i]);
        if (l[0] == '\0' || l[0] == '#' || g_str_has_prefix(l, "kpageflags"))
            continue;
        if (g_str_equal(l, "scan")) {
            g_ptr_array_set_size(scan, 0);
            continue;
        }
        if (!g_str_has_prefix(l, "expect ")) {
            g_ptr_array_add(scan, l);
            continue;
        }
        /* Rewrite the whole pagemap for this scan. */
        g_assert_cmpint(ftruncate(f.pagemap_fd, 0), ==, 0);
        write_scan(&f, scan, n_scans == 0);
        g_autoptr(GError) error = NULL;
        if (n_scans == 0) {
            write_maps(&f, TRUE);
            MsPagemapOptions opt = { .method = MS_PAGEMAP_METHOD_AUTO, .proc_root = f.dir,
                                     .zero_pfn = ZERO_PFN, .chunk_bytes = 8 * 5 };
            s = ms_pagemap_scanner_new(FIXTURE_PID, f.blocks, NULL, &opt, &error);
            g_assert_no_error(error);
            /* A regular file has no PAGEMAP_SCAN: AUTO falls back. */
            g_assert_cmpint(ms_pagemap_scanner_get_method(s), ==, MS_PAGEMAP_METHOD_READ);
            g_assert_true(ms_pagemap_scanner_start_window(s, &error));
            g_assert_no_error(error);
            g_autofree char *cr = g_strdup_printf("%s/%d/clear_refs", f.dir, FIXTURE_PID);
            g_autofree char *crv = NULL;
            g_assert_true(g_file_get_contents(cr, &crv, NULL, NULL));
            g_assert_cmpstr(crv, ==, "4");
        }
        MsPageCounts c;
        g_assert_true(ms_pagemap_scanner_scan(s, &c, &error));
        g_assert_no_error(error);
        g_assert_true(c.soft_dirty_valid);
        g_assert_cmpint(c.kpageflags_known, ==, with_kpf);
        check_counts(&c, l, path, i + 1, s);
        n_scans++;
    }
    g_assert_cmpuint(n_scans, >, 0);
    fixture_free(&f);
}

static void
test_snapshot_odd_input(void)
{
    Fixture f = { 0 };
    fixture_init(&f, TRUE);
    g_autoptr(GPtrArray) scan = g_ptr_array_new();
    g_ptr_array_add(scan, "block");
    g_ptr_array_add(scan, "64 private");
    write_scan(&f, scan, TRUE);
    write_maps(&f, TRUE);
    g_autoptr(GError) error = NULL;
    MsPagemapOptions opt = { .method = MS_PAGEMAP_METHOD_READ, .proc_root = f.dir,
                             .zero_pfn = ZERO_PFN };
    g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(FIXTURE_PID, f.blocks, NULL, &opt, &error);
    g_assert_no_error(error);
    MsPageCounts c = { 0 };
    g_assert_true(ms_pagemap_scanner_scan(s, &c, &error));
    g_assert_cmpuint(c.pages[MS_PAGE_PRIVATE], ==, 64);

    /* kpageflags shorter than the PFNs: those frames count as private. */
    g_assert_cmpint(ftruncate(f.kpf_fd, PFN_PRIVATE * 8 + 16), ==, 0);
    g_assert_true(ms_pagemap_scanner_scan(s, &c, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(c.pages[MS_PAGE_PRIVATE], ==, 64);

    /* The process exits mid-scan: pagemap ends early. An error, no counts. */
    MsPageCounts untouched = { .total_pages = 12345 };
    guint64 cut = (FIXTURE_BASE / 4096 + 10) * 8 + 3;
    g_assert_cmpint(ftruncate(f.pagemap_fd, cut), ==, 0);
    g_assert_false(ms_pagemap_scanner_scan(s, &untouched, &error));
    g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO);
    g_assert_nonnull(strstr(error->message, "ram-node0"));
    g_assert_cmpuint(untouched.total_pages, ==, 12345);
    g_clear_error(&error);

    /* The mapping vanished (memdev gone, pid reused): refused, not "all freed". */
    write_maps(&f, FALSE);
    g_assert_false(ms_pagemap_scanner_scan(s, &c, &error));
    g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO);
    g_assert_nonnull(strstr(error->message, "no longer mapped"));
    g_clear_error(&error);

    /* The process is gone entirely. */
    g_autofree char *maps = g_strdup_printf("%s/%d/maps", f.dir, FIXTURE_PID);
    g_assert_cmpint(g_unlink(maps), ==, 0);
    g_assert_false(ms_pagemap_scanner_scan(s, &c, &error));
    g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_IO);
    g_clear_error(&error);

    /* Misaligned or non-tiling blocks are refused up front. */
    MsGuestMemBlock *b0 = g_ptr_array_index(f.blocks, 0);
    b0->ram_offset = 4096;
    g_autoptr(MsPagemapScanner) s2 = ms_pagemap_scanner_new(FIXTURE_PID, f.blocks, NULL, &opt, &error);
    g_assert_null(s2);
    g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_INVALID);
    g_clear_error(&error);

    /* SCAN on a regular file: the kernel's answer is "not supported". */
    b0->ram_offset = 0;
    opt.method = MS_PAGEMAP_METHOD_SCAN;
    g_autoptr(MsPagemapScanner) s3 = ms_pagemap_scanner_new(FIXTURE_PID, f.blocks, NULL, &opt, &error);
    g_assert_null(s3);
    g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_NOT_SUPPORTED);
    fixture_free(&f);
}

/* ---- usedmap file ---- */

static void
test_crc32(void)
{
    /* The standard check value of CRC-32/ISO-HDLC (zlib's crc32). */
    g_assert_cmphex(ms_usedmap_crc32(0, (const guint8 *)"123456789", 9), ==, 0xcbf43926);
    guint32 part = ms_usedmap_crc32(0, (const guint8 *)"1234", 4);
    g_assert_cmphex(ms_usedmap_crc32(part, (const guint8 *)"56789", 5), ==, 0xcbf43926);
}

static void
test_usedmap_roundtrip(void)
{
    /* Extents whose page counts are not multiples of 8 exercise the bit
     * shifting between the packed input and the per-extent bitmaps. */
    static const struct { guint64 gpa, pages; } ext[] = {
        { 0, 13 }, { 0x100000000ULL, 64 }, { 0x200000000ULL, 5 }, { 0x300000000ULL, 1000 },
    };
    g_autoptr(GArray) extents = g_array_new(FALSE, FALSE, sizeof(MsGuestMemExtent));
    guint64 total = 0;
    for (guint i = 0; i < G_N_ELEMENTS(ext); i++) {
        MsGuestMemExtent e = { ext[i].gpa, total * 4096, ext[i].pages * 4096 };
        g_array_append_val(extents, e);
        total += ext[i].pages;
    }
    g_autofree guint8 *bm = g_malloc0((total + 7) / 8);
    g_autoptr(GRand) rand = g_rand_new_with_seed(42);
    for (guint64 i = 0; i < total; i++)
        if (g_rand_boolean(rand))
            bm[i / 8] |= 1u << (i % 8);
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("ms-usedmap-XXXXXX", &error);
    g_autofree char *path = g_build_filename(dir, "usedmap", NULL);
    g_assert_true(ms_usedmap_write(path, 4096, extents, bm, 1700000000000000ULL, &error));
    g_assert_no_error(error);

    g_autofree guint8 *buf = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, (char **)&buf, &len, NULL));
    /* Layout per docs/usedmap.md: header, extent table, padded bitmaps, CRC. */
    gsize want_len = 32 + 16 * G_N_ELEMENTS(ext) + 4;
    for (guint i = 0; i < G_N_ELEMENTS(ext); i++)
        want_len += ((ext[i].pages + 7) / 8 + 7) & ~7ULL;
    g_assert_cmpuint(len, ==, want_len);
    g_assert_cmpmem(buf, 8, "MSUSEDMP", 8);

    g_autoptr(MsUsedmap) m = ms_usedmap_parse(buf, len, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(m->page_size, ==, 4096);
    g_assert_cmpuint(m->scan_time_us, ==, 1700000000000000ULL);
    g_assert_cmpuint(m->n_pages, ==, total);
    g_assert_cmpuint(m->extents->len, ==, G_N_ELEMENTS(ext));
    for (guint i = 0; i < G_N_ELEMENTS(ext); i++) {
        MsGuestMemExtent *e = &g_array_index(m->extents, MsGuestMemExtent, i);
        g_assert_cmpuint(e->gpa, ==, ext[i].gpa);
        g_assert_cmpuint(e->length, ==, ext[i].pages * 4096);
    }
    g_assert_cmpmem(m->bitmap, (total + 7) / 8, bm, (total + 7) / 8);

    /* One flipped bit anywhere: refused. Truncated: refused. */
    for (gsize off = 0; off < len; off += 37) {
        buf[off] ^= 0x10;
        g_autoptr(GError) e2 = NULL;
        g_autoptr(MsUsedmap) bad = ms_usedmap_parse(buf, len, &e2);
        g_assert_null(bad);
        g_assert_error(e2, MS_ERROR, MS_ERROR_INVALID);
        buf[off] ^= 0x10;
    }
    for (gsize cut = 0; cut < len; cut += 11) {
        g_autoptr(GError) e3 = NULL;
        g_autoptr(MsUsedmap) bad = ms_usedmap_parse(buf, cut, &e3);
        g_assert_null(bad);
    }
    g_unlink(path);
    g_rmdir(dir);
}

/* ---- live: this process ---- */

#define LIVE_PAGES 16384   /* 64 MiB */

static void
live_scan(GPtrArray *blocks, MsPagemapMethod method, MsPageCounts *c1,
          void (*between)(guint8 *), guint8 *mem, MsPageCounts *c2)
{
    g_autoptr(GError) error = NULL;
    MsPagemapOptions opt = { .method = method };
    g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(getpid(), blocks, NULL, &opt, &error);
    g_assert_no_error(error);
    g_assert_cmpint(ms_pagemap_scanner_get_method(s), ==, method);
    g_test_message("live scan with %s", ms_pagemap_method_name(method));
    ms_pagemap_scanner_scan(s, c1, &error);
    g_assert_no_error(error);
    between(mem);
    ms_pagemap_scanner_scan(s, c2, &error);
    g_assert_no_error(error);
}

static void
live_touch(guint8 *mem)
{
    /* Written: every 4th of the first 4096 pages -> 1024 private. */
    for (guint i = 0; i < 4096; i += 4)
        mem[(gsize)i * 4096] = 1;
    /* Read only: pages 8192..10239 -> 2048 zero-page. */
    volatile guint8 sink = 0;
    for (guint i = 8192; i < 10240; i++)
        sink += ((volatile guint8 *)mem)[(gsize)i * 4096];
    (void)sink;
}

static void
live_free_half(guint8 *mem)
{
    /* The "guest" hands back the written pages of the first 2048 pages. */
    g_assert_cmpint(madvise(mem, 2048 * 4096, MADV_DONTNEED), ==, 0);
}

static void
live_retouch(guint8 *mem)
{
    live_touch(mem);
}

static void
test_live_equal(void)
{
    if (!ms_pagemap_pfns_visible()) {
        g_test_skip("PFNs hidden from this user: zero pages cannot be told apart");
        return;
    }
    /* Where the kernel maps read faults to a frame of their own instead of
     * the zero page (seen on a 6.18 host), read-only pages are data. */
    gboolean zero_page = ms_pagemap_zero_pfn() != 0;
    g_test_message("kernel maps the zero page on read faults: %s", zero_page ? "yes" : "no");
    guint64 want_zero = zero_page ? 2048 : 0;
    guint64 want_private = zero_page ? 1024 : 1024 + 2048;
    gsize len = (gsize)LIVE_PAGES * 4096;
    guint8 *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(mem != MAP_FAILED);
    /* 4 KiB faults only: a THP would populate 512 pages per touch. */
    g_assert_cmpint(madvise(mem, len, MADV_NOHUGEPAGE), ==, 0);

    g_autoptr(GPtrArray) blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
    MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
    b->memdev_id = g_strdup("self");
    b->host_start = (guint64)(uintptr_t)mem;
    b->size = len;
    g_ptr_array_add(blocks, b);

    live_touch(mem);
    MsPageCounts r1, r2, s1, s2;
    live_scan(blocks, MS_PAGEMAP_METHOD_READ, &r1, live_free_half, mem, &r2);
    g_assert_cmpuint(r1.pages[MS_PAGE_PRIVATE], ==, want_private);
    g_assert_cmpuint(r1.pages[MS_PAGE_ZERO], ==, want_zero);
    g_assert_cmpuint(r1.pages[MS_PAGE_KSM], ==, 0);
    g_assert_cmpuint(r1.pages[MS_PAGE_SWAPPED], ==, 0);
    g_assert_cmpuint(r1.pages[MS_PAGE_UNPOPULATED], ==, LIVE_PAGES - 3072);
    g_assert_cmpuint(r1.pages[MS_PAGE_FREED], ==, 0);
    g_assert_cmpuint(r2.pages[MS_PAGE_PRIVATE], ==, want_private - 512);
    g_assert_cmpuint(r2.pages[MS_PAGE_FREED], ==, 512);
    g_assert_cmpuint(r2.freed_since_last, ==, 512);
    g_assert_cmpuint(r2.pages[MS_PAGE_ZERO], ==, want_zero);

    if (!ms_pagemap_scan_supported()) {
        munmap(mem, len);
        g_test_skip("kernel lacks PAGEMAP_SCAN (Linux 6.7+): read path checked only");
        return;
    }
    live_retouch(mem);
    live_scan(blocks, MS_PAGEMAP_METHOD_SCAN, &s1, live_free_half, mem, &s2);
    g_assert_cmpint(s1.method, ==, MS_PAGEMAP_METHOD_SCAN);
    g_assert_cmpmem(s1.pages, sizeof(s1.pages), r1.pages, sizeof(r1.pages));
    g_assert_cmpmem(s2.pages, sizeof(s2.pages), r2.pages, sizeof(r2.pages));
    g_assert_cmpuint(s2.freed_since_last, ==, r2.freed_since_last);
    munmap(mem, len);
}

static void
test_live_soft_dirty(void)
{
    gsize len = 1024 * 4096;
    guint8 *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(mem != MAP_FAILED);
    g_assert_cmpint(madvise(mem, len, MADV_NOHUGEPAGE), ==, 0);
    memset(mem, 1, 512 * 4096);   /* populated before the window */

    g_autoptr(GPtrArray) blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
    MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
    b->memdev_id = g_strdup("self");
    b->host_start = (guint64)(uintptr_t)mem;
    b->size = len;
    g_ptr_array_add(blocks, b);

    if (!ms_pagemap_soft_dirty_supported()) {
        g_autoptr(GError) error = NULL;
        MsPagemapOptions opt = { .method = MS_PAGEMAP_METHOD_READ };
        g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(getpid(), blocks, NULL, &opt, &error);
        g_assert_no_error(error);
        g_assert_false(ms_pagemap_scanner_start_window(s, &error));
        g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_NOT_SUPPORTED);
        munmap(mem, len);
        g_test_skip("kernel without CONFIG_MEM_SOFT_DIRTY: refusal checked only");
        return;
    }
    MsPagemapMethod methods[] = { MS_PAGEMAP_METHOD_READ, MS_PAGEMAP_METHOD_SCAN };
    for (guint m = 0; m < G_N_ELEMENTS(methods); m++) {
        if (methods[m] == MS_PAGEMAP_METHOD_SCAN && !ms_pagemap_scan_supported())
            continue;
        g_autoptr(GError) error = NULL;
        MsPagemapOptions opt = { .method = methods[m] };
        g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(getpid(), blocks, NULL, &opt, &error);
        g_assert_no_error(error);
        g_assert_true(ms_pagemap_scanner_start_window(s, &error));
        g_assert_no_error(error);
        /* 100 old pages rewritten, 50 new ones written, 100 only read. */
        for (guint i = 0; i < 100; i++)
            mem[(gsize)i * 4096] = 2;
        for (guint i = 600; i < 650; i++)
            mem[(gsize)i * 4096] = 2;
        volatile guint8 sink = 0;
        for (guint i = 200; i < 300; i++)
            sink += ((volatile guint8 *)mem)[(gsize)i * 4096];
        (void)sink;
        MsPageCounts c;
        g_assert_true(ms_pagemap_scanner_scan(s, &c, &error));
        g_assert_no_error(error);
        g_assert_true(c.soft_dirty_valid);
        g_assert_cmpuint(c.soft_dirty_pages, ==, 150);
        g_assert_cmpuint(c.pages[MS_PAGE_PRIVATE], ==, 562);
    }
    munmap(mem, len);
}

static gint
cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pagemap/classify/table", test_classify_table);
    g_test_add_func("/pagemap/snapshot/odd-input", test_snapshot_odd_input);
    g_test_add_func("/pagemap/usedmap/crc32", test_crc32);
    g_test_add_func("/pagemap/usedmap/roundtrip", test_usedmap_roundtrip);
    g_test_add_func("/pagemap/live/read-equals-scan", test_live_equal);
    g_test_add_func("/pagemap/live/soft-dirty", test_live_soft_dirty);

    g_autofree char *dir = g_test_build_filename(G_TEST_DIST, "snapshots", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d)))
        if (g_str_has_suffix(name, ".txt"))
            g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, cmp_names);
    for (guint i = 0; i < names->len; i++) {
        const char *n = g_ptr_array_index(names, i);
        g_autofree char *base = g_strndup(n, strlen(n) - 4);
        g_autofree char *path = g_strdup_printf("/pagemap/snapshot/%s", base);
        g_test_add_data_func(path, n, test_snapshot);
    }
    return g_test_run();
}
